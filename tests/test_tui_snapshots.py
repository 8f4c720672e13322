"""Snapshots of every screen at 80x24 (tmux over SSH, the size it is designed for) and 120x40, on a seeded store
(pytest-textual-snapshot).

Update after an intended change of look: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from kdtui.jobs.graph import JobSpec
from kdtui.tui.app import KdtuiApp
from tests.pilot_helpers import settle, until
from tests.tui_store import build_store, copy_store, seed_run

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture(scope="module")
def snapshot_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three-run store, two distill runs with curves, a capture and a queue of three jobs (built once)."""
    store = build_store(tmp_path_factory.mktemp("snapshots") / "store")
    seed_run(store, "study/ai-to-ai", 600)
    seed_run(store, "study/teacher", 450)
    store.captures.register("study-base", {
        "teacher": "Llama-3.1-405B-Instruct", "backend": "exllamav2", "strategy": {"name": "base"},
        "mode": "answer", "format": "topk", "k": 64, "temperatures": [1.0, 5.94], "n_examples": 7473,
        "n_tokens": 1_500_000, "status": "done",
        "shards": [{"bytes": 400_000_000, "entropy_hist": [0, 5, 20, 40, 20, 10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    "entropy_sum": 1_200_000.0, "kept_mass_sum": [1_450_000.0, 12_000.0]}]},
        store.root / "captures" / "study-base")
    store.jobs.enqueue([JobSpec(f"job-{name}", f"study/{name}", kind, {}, gpus, "study", max_attempts=3)
                        for name, kind, gpus in (("base", "capture", 4), ("tiny/base", "distill", 1),
                                                 ("eval/tiny/base", "eval", 1))])
    return store.root


@pytest.fixture
def app(tmp_path: Path, snapshot_store: Path) -> KdtuiApp:
    """The snapshot store, copied for this test, in an app."""
    store = copy_store(snapshot_store, tmp_path / "store")
    app = KdtuiApp(store.root)
    app.sub_title = "store/kdtui.duckdb"  # the real title holds the temporary folder's absolute path
    return app


def _keys(*keys: str) -> Any:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await until(pilot, lambda: "3 queued" in pilot.app.sub_title, "the header's queue summary")
        pilot.app.clear_notifications()  # the no-worker notice times out after 10 s: not part of a screen's look
        await pilot.pause(0.05)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


# each screen by its key (the leaderboard with a baseline set); Training: two runs overlaid, smoothed, an eval
# point every 100 steps, and at 80x24 one plot with its legend under it
SCREENS = [pytest.param(("b",), id="leaderboard"), pytest.param(("f2",), id="triage"),
           pytest.param(("f3",), id="predictions"), pytest.param(("f6",), id="captures"),
           pytest.param(("f7",), id="training"), pytest.param(("f8",), id="jobs")]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("keys", SCREENS)
def test_screen(snap_compare: Any, app: KdtuiApp, keys: tuple[str, ...], size: tuple[int, int]) -> None:
    assert snap_compare(app, terminal_size=size, run_before=_keys(*keys))


@pytest.mark.parametrize("size", SIZES)
def test_sql(snap_compare: Any, app: KdtuiApp, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _keys("f4", "f5")(pilot)
        # The editor's blinking cursor would make pixels differ run to run: look at the results instead.
        pilot.app.screen.query_one("#results").focus()
        status = pilot.app.screen.query_one("#sql-status", Static)
        assert str(status.render()).startswith("3 rows in ")
        status.update("3 rows in (seconds vary)")  # the only non-deterministic text on screen
        await pilot.pause(0.05)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
