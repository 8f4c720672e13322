"""The Jobs screen (F8) with Pilot: an experiment's jobs progress live under a real worker the TUI starts."""

from __future__ import annotations

from pathlib import Path

from kdtui.jobs.daemon import holder
from kdtui.jobs.experiment import load_experiment
from kdtui.jobs.graph import expand
from kdtui.store import Store
from kdtui.tui.app import KdtuiApp
from kdtui.tui.screens.jobs import JobsScreen
from tests.pilot_helpers import until
from tests.test_jobs import experiment, stop_worker


async def test_jobs_progress_live_and_cancel_works(tiny_model: Path, tmp_path: Path,
                                                   monkeypatch: object) -> None:
    store = Store(tmp_path / "store")
    spec = load_experiment(experiment(tmp_path / "exp.toml", tiny_model, ["base"], steps=4))
    store.jobs.enqueue(expand(spec, store.root))
    monkeypatch.setenv("KDTUI_LOGS", str(tmp_path / "logs"))  # type: ignore[attr-defined]
    app = KdtuiApp(store.root)
    try:
        async with app.run_test(size=(140, 36)) as pilot:
            await until(pilot, lambda: holder(store.root) is not None, "the TUI to start a worker", timeout=60)
            await pilot.press("f8")
            screen = app.screen
            assert isinstance(screen, JobsScreen)
            await until(pilot, lambda: any(j.state == "done" for j in screen.jobs), "a job to finish", timeout=120)
            assert "worker on" in app.sub_title
            # the no-distil evaluation never waits for anything: cancel whatever is still queued
            queued = [j for j in screen.jobs if j.state == "queued"]
            if queued:
                row = screen.jobs.index(queued[-1])
                screen.query_one("#jobs").move_cursor(row=row)  # type: ignore[attr-defined]
                await pilot.press("c")
                job = queued[-1].id
                await until(pilot, lambda: getattr(store.jobs.get(job), "state", "") == "cancelled", "the cancel",
                            timeout=30)
            await until(pilot, lambda: all(j.state in ("done", "cancelled", "dependency_failed")
                                           for j in screen.jobs), "the queue to drain", timeout=240)
            done = next(i for i, j in enumerate(screen.jobs) if j.state == "done")
            screen.query_one("#jobs").move_cursor(row=done)  # type: ignore[attr-defined]
            await until(pilot, lambda: "job done" in str(screen.query_one("#jobs-log").render()),
                        "the finished job's log tail", timeout=30)
    finally:
        stop_worker(store.root)
