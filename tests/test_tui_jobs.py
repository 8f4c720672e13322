"""The Jobs screen (F8) with Pilot: an experiment's jobs progress live under a real worker started from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdtui.jobs.daemon import holder
from kdtui.jobs.experiment import load_experiment
from kdtui.jobs.graph import expand
from kdtui.store import Store
from kdtui.tui.app import KdtuiApp
from kdtui.tui.screens.jobs import JobsScreen
from tests.helpers import experiment, stop_worker
from tests.pilot_helpers import until


@pytest.mark.slow
async def test_jobs_progress_live_and_cancel_works(tiny_model: Path, tmp_path: Path,
                                                   monkeypatch: object) -> None:
    store = Store(tmp_path / "store")
    spec = load_experiment(experiment(tmp_path / "exp.toml", tiny_model, ["base"], steps=4))
    store.jobs.enqueue(expand(spec, store.root))
    monkeypatch.setenv("KDTUI_LOGS", str(tmp_path / "logs"))  # type: ignore[attr-defined]
    app = KdtuiApp(store.root)
    try:
        async with app.run_test(size=(140, 36)) as pilot:
            # opening starts nothing: the header and a notice say no worker runs, and `w` on Jobs starts one
            await until(pilot, lambda: re.search(r"no worker · 0 running · \d+ queued", app.sub_title) is not None,
                        "the queue's summary")
            await until(pilot, lambda: any("press w on Jobs" in n.message for n in app._notifications), "the notice")
            assert holder(store.root) is None
            await pilot.press("f8")
            screen = app.screen
            assert isinstance(screen, JobsScreen)
            await pilot.press("w")
            await until(pilot, lambda: holder(store.root) is not None, "the worker `w` starts", timeout=60)
            await until(pilot, lambda: any(j.state == "done" for j in screen.jobs), "a job to finish", timeout=120)
            assert "worker on" in app.sub_title
            # the no-distil evaluation never waits for anything: cancel whatever is still queued
            queued = [j for j in screen.jobs if j.state == "queued"]
            if queued:
                row = screen.jobs.index(queued[-1])
                screen.query_one("#jobs").move_cursor(row=row)  # type: ignore[attr-defined]
                await pilot.press("c")
                await pilot.press("y")  # cancel asks first
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


async def test_the_cursor_follows_its_job_enter_shows_the_log_and_cancel_asks(tmp_path: Path) -> None:
    """After `r` the retried job's row moves (queued sorts first): the cursor moves with it, so a `c` pressed next
    is about the job the panel shows. Enter opens the log (the table used to swallow it); `c` asks, and `n`
    cancels nothing."""
    from kdtui.jobs.graph import JobSpec
    from kdtui.tui.screens.dialogs import ConfirmScreen, DetailScreen
    from tests.pilot_helpers import settle

    store = Store(tmp_path / "store")
    store.jobs.enqueue([JobSpec(name, name, "eval", {}, 0, "g", max_attempts=1) for name in ("a", "b", "c")])
    for name, outcome in (("a", "done"), ("b", "failed"), ("c", "done")):
        log = tmp_path / f"{name}.log"
        log.write_text(f"log of {name}\n")
        attempt = store.jobs.claim(name, "w", "host", [], str(log))
        assert attempt is not None
        store.jobs.finish(name, attempt, outcome, 0 if outcome == "done" else 1)
    app = KdtuiApp(store.root)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("f8")
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: len(screen.jobs) == 3, "the jobs")
        table = screen.query_one("#jobs")
        from kdtui.tui.screens.jobs import COLUMNS

        times = {j.id: str(table.get_row_at(i)[COLUMNS.index("time")])  # type: ignore[attr-defined]
                 for i, j in enumerate(screen.jobs)}
        assert all(re.fullmatch(r"\d+m\d\ds", t) for t in times.values()), times  # how long each attempt ran
        table.move_cursor(row=[j.id for j in screen.jobs].index("b"))  # type: ignore[attr-defined]
        await settle(pilot)
        before = [j.id for j in screen.jobs].index("b")
        await pilot.press("R")
        await until(pilot, lambda: any(j.id == "b" and j.state == "queued" for j in screen.jobs), "the retry")
        after = [j.id for j in screen.jobs].index("b")
        assert after != before  # the row moved ...
        selected = screen._selected()
        assert selected is not None and selected.id == "b"  # ... and the cursor with it
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the log")
        assert "log of b" in str(app.screen.body)  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "back on the jobs")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("n")
        await settle(pilot)
        job = store.jobs.get("b")
        assert job is not None and job.state == "queued" and not job.cancel_requested


async def test_enqueue_from_the_tui_starts_the_worker_the_experiment_asks_for(tiny_model: Path,
                                                                              tmp_path: Path) -> None:
    """F8's enqueue reads the experiment's [executor] table, as `kdtui run` does, and the worker writes to the
    app's --logs folder: an unreachable Ray address shows in that folder's worker.log, not a local worker."""
    from textual.widgets import Input

    from tests.pilot_helpers import settle

    store = Store(tmp_path / "store")
    store.migrate()
    spec = experiment(tmp_path / "ray.toml", tiny_model, ["base"])
    spec.write_text(spec.read_text() + '[executor]\nkind = "ray"\naddress = "http://127.0.0.1:9"\n')
    logs = tmp_path / "my-logs"
    app = KdtuiApp(store.root, logs=logs)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("f8")
            await settle(pilot)
            await pilot.press("a")
            box = app.screen.query_one("#jobs-file", Input)
            box.value = str(spec)
            await pilot.press("enter")
            # a Ray worker: it cannot reach that address (or, without the ray extra, cannot import Ray) and
            # says so in the app's logs folder; a local worker would have started and said nothing of Ray
            await until(pilot, lambda: (logs / "worker.log").is_file() and "ray" in
                        (logs / "worker.log").read_text(errors="replace").lower(), "the Ray worker's log",
                        timeout=120)
    finally:
        stop_worker(store.root)


async def test_enqueue_beside_a_worker_with_other_options_lets_the_person_choose(toy_plugin: None,
                                                                                  tmp_path: Path) -> None:
    """F8's enqueue never silently reuses a worker started with other options: it asks; n keeps the worker (and
    names what it lacks), y restarts it with the experiment's options."""
    from textual.widgets import Input

    from kdtui.jobs.daemon import running_options, start_detached
    from kdtui.tui.screens.dialogs import ConfirmScreen
    from tests.pilot_helpers import settle
    from tests.toy_kind import TOY_EXPERIMENT

    store = Store(tmp_path / "store")
    store.migrate()
    spec = tmp_path / "toy.toml"
    spec.write_text(TOY_EXPERIMENT)
    logs = tmp_path / "logs"
    first = start_detached(store.root, logs, ["--slots", "2"]).pid
    app = KdtuiApp(store.root, logs=logs)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("f8")
            await settle(pilot)
            for answer in ("n", "y"):
                await pilot.press("a")
                app.screen.query_one("#jobs-file", Input).value = str(spec)
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the restart question")
                await pilot.press(answer)
                if answer == "n":
                    await settle(pilot)
                    assert holder(store.root) == first  # kept
            # holder() is -1 while the new worker holds the lock but has not written its pid yet
            await until(pilot, lambda: (holder(store.root) or -1) > 0 and holder(store.root) != first,
                        "the restarted worker's pid", timeout=120)
            assert running_options(holder(store.root) or 0) == ["--slots", "1"]
    finally:
        stop_worker(store.root)
