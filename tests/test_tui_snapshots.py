"""Snapshots of each screen at 100x30 on a seeded store (pytest-textual-snapshot).

Update after an intended change of look: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from kdtui.tui.app import KdtuiApp
from tests.pilot_helpers import settle
from tests.tui_store import build_store

SIZE = (100, 30)


@pytest.fixture
def app(tmp_path: Path) -> KdtuiApp:
    app = KdtuiApp(build_store(tmp_path / "store").root)
    app.sub_title = "store/kdtui.duckdb"  # the real title holds the temporary folder's absolute path
    return app


def _keys(*keys: str) -> Any:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def test_leaderboard(snap_compare: Any, app: KdtuiApp) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=_keys("b"))


def test_triage(snap_compare: Any, app: KdtuiApp) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=_keys("f2"))


def test_predictions(snap_compare: Any, app: KdtuiApp) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=_keys("f3"))


def test_sql(snap_compare: Any, app: KdtuiApp) -> None:
    async def run_before(pilot: Any) -> None:
        await _keys("f4", "f5")(pilot)
        # The editor's blinking cursor would make pixels differ run to run: look at the results instead.
        pilot.app.screen.query_one("#results").focus()
        status = pilot.app.screen.query_one("#sql-status", Static)
        assert str(status.render()).startswith("3 rows in ")
        status.update("3 rows in (seconds vary)")  # the only non-deterministic text on screen
        await pilot.pause(0.05)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_training(snap_compare: Any, tmp_path: Path) -> None:
    """The Training screen: two distill runs overlaid, smoothed, an eval point every 100 steps."""
    from tests.test_tui_training import seed_run

    store = build_store(tmp_path / "store")
    seed_run(store, "study/ai-to-ai", 600)
    seed_run(store, "study/teacher", 450)
    app = KdtuiApp(store.root)
    app.sub_title = "store/kdtui.duckdb"
    assert snap_compare(app, terminal_size=(120, 36), run_before=_keys("f7"))
