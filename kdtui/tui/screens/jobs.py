"""Jobs: the queue by experiment, live — state, attempts, progress — and the tail of the selected job's log.

Keys: c cancel (a running job stops at its next step), r retry, p pause/resume the job's experiment,
a enqueue an experiment file (and start the worker if none runs), enter the whole log.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from kdtui.render import as_text, duration, visible
from kdtui.store.jobs import JobRow
from kdtui.tui.screens.base import RowFilter, StoreScreen
from kdtui.tui.screens.dialogs import ConfirmScreen, DetailScreen
from kdtui.tui.screens.grid import ListTable

COLUMNS = ["experiment", "job", "kind", "run", "state", "tries", "progress", "time", "ETA", "error"]
STATE_STYLE = {"done": "green", "running": "bold cyan", "queued": "dim", "failed": "bold red",
               "dependency_failed": "red", "cancelled": "yellow"}
TAIL_LINES = 4  # at least; as many as the log panel holds


def bar(fraction: float | None, width: int = 12) -> Text:
    if fraction is None:
        return Text("")
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return Text("█" * filled + "░" * (width - filled) + f" {fraction:4.0%}", style="cyan")


def eta(job: JobRow) -> float | None:
    """Seconds left for a running job at the pace of its current attempt."""
    if job.state != "running" or not job.progress:
        return None
    elapsed = took(job)
    return elapsed * (1 - job.progress) / job.progress if elapsed else None


def took(job: JobRow) -> float | None:
    """Seconds the job's current (or last) attempt has run, or ran: until now while it runs, else until it ended."""
    if job.started_at is None or job.state == "queued":
        return None
    end = job.finished_at if job.state != "running" and job.finished_at is not None else datetime.now()
    seconds = (end - job.started_at).total_seconds()  # both naive: the store's local clock
    return seconds if seconds >= 0 else None


def tail(path: str | None, lines: int = TAIL_LINES) -> str:
    if not path or not Path(path).is_file():
        return "(no log yet)"
    with Path(path).open("rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 16_384))
        text = fh.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


class JobsScreen(RowFilter, StoreScreen):
    """The job queue and its worker."""

    BINDINGS = [
        Binding("c", "cancel", "Cancel"),
        Binding("R", "retry", "Retry"),
        Binding("p", "pause", "Pause"),
        Binding("a", "enqueue", "Add"),
        Binding("w", "start_worker", "Worker"),
        Binding("slash", "filter", "Filter"),
        Binding("enter", "log", "Log", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[JobRow] = []  # as shown (filtered, sorted): the table's rows, in order
        self.loaded: tuple[list[JobRow], set[str], int | None] = ([], set(), None)
        self.paused: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Jobs — loading…", id="jobs-status", classes="status")
        table: DataTable[Any] = ListTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield table
        yield Input(placeholder="experiment TOML to enqueue, e.g. experiments/demo.toml (enter)", id="jobs-file")
        yield Static("", id="jobs-log", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#jobs", DataTable).add_columns(*COLUMNS)
        self.query_one("#jobs-file", Input).display = False
        self.watch_store()
        self.load()

    def load(self) -> None:
        store = self.kdtui.store

        def read() -> tuple[list[JobRow], set[str], int | None]:
            from kdtui.jobs.daemon import holder

            if not store.path.exists():
                return [], set(), None
            return store.jobs.all(), store.jobs.paused_groups(), holder(store.root)

        self.fetch(read, self._loaded, group="jobs")

    def reload(self) -> None:
        self.load()

    def _loaded(self, loaded: tuple[list[JobRow], set[str], int | None]) -> None:
        self.loaded = loaded
        self.refilter()

    def refilter(self) -> None:
        chosen = self._selected()  # the cursor follows this job, wherever its row moves (never its index)
        jobs, self.paused, worker = self.loaded
        jobs = self.shown(jobs, lambda j: f"{j.grp} {j.id} {j.kind} {j.name} {j.state}")
        self.jobs = sorted(jobs, key=lambda j: (j.grp, ["running", "queued"].index(j.state)
                                                if j.state in ("running", "queued") else 2))
        table = self.query_one("#jobs", DataTable)
        keep = table.cursor_row
        table.clear()
        for job in self.jobs:
            group = job.grp + (" (paused)" if job.grp in self.paused else "")
            table.add_row(as_text(group), job.id, job.kind, as_text(job.name),
                          Text(job.state, style=STATE_STYLE.get(job.state, "")), f"{job.attempts}/{job.max_attempts}",
                          bar(job.progress if job.state != "done" else 1.0), duration(took(job)), duration(eta(job)),
                          as_text((job.error or "")[:50]))
        if self.jobs:
            ids = [j.id for j in self.jobs]
            row = ids.index(chosen.id) if chosen is not None and chosen.id in ids else min(max(keep, 0), len(ids) - 1)
            table.move_cursor(row=row)
        running = [j for j in self.jobs if j.state == "running"]
        cards = sorted({c for j in running for c in j.gpu_ids})
        self.query_one("#jobs-status", Static).update(as_text(
            f"worker {'pid ' + str(worker) if worker else 'not running'}"
            f"{self.filter_note(len(self.jobs), len(self.loaded[0]))} · {len(running)} running · "
            f"{sum(j.state == 'queued' for j in self.jobs)} queued · GPUs in use: {', '.join(cards) or 'none'}"
            " · enter: log"))
        self._show_tail()

    def _selected(self) -> JobRow | None:
        row = self.query_one("#jobs", DataTable).cursor_row
        return self.jobs[row] if 0 <= row < len(self.jobs) else None

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_tail()

    def _show_tail(self) -> None:
        job = self._selected()
        if job is None:
            self.query_one("#jobs-log", Static).update("")
            return
        path = job.log_path
        panel = self.query_one("#jobs-log", Static)
        lines = max(TAIL_LINES, panel.size.height - 1)  # the log's end fills the panel (a title line above it)
        self.fetch(lambda: tail(path, lines), lambda text: panel.update(
            as_text(f"{job.name} · {job.state}\n{text}")), group="jobs-tail")

    def _act(self, what: str, call: Any) -> None:
        self.fetch(call, lambda message: self.notify(visible(message), markup=False), group=f"jobs-{what}",
                   exclusive=False)

    def action_cancel(self) -> None:
        job, store = self._selected(), self.kdtui.store
        if job is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act("cancel", lambda: f"{job.name}: {store.jobs.cancel(job.id)}")

        # destructive: asked, naming the job the cursor is on
        self.app.push_screen(ConfirmScreen(f"cancel {job.kind} {job.name} ({job.id}, {job.state})?"), answered)

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_log()  # Enter on a row: the table takes Enter before a screen binding could

    def action_retry(self) -> None:
        job, store = self._selected(), self.kdtui.store
        if job is not None:
            def retry() -> str:
                before = store.jobs.retry(job.id)
                if before in ("failed", "cancelled", "dependency_failed"):
                    return f"{job.name}: queued again"
                return f"{job.name}: {before}; nothing to retry (`kdtui retry --rerun` runs a done job again)"

            self._act("retry", retry)

    def action_pause(self) -> None:
        job, store = self._selected(), self.kdtui.store
        if job is not None:
            paused = job.grp not in self.paused

            def pause() -> str:
                store.jobs.set_paused(job.grp, paused)
                return f"{job.grp}: {'paused' if paused else 'resumed'}"

            self._act("pause", pause)

    def action_start_worker(self) -> None:
        """Start the store's worker with default options (an experiment's [executor] comes with `a`)."""
        store, logs = self.kdtui.store, self.kdtui.logs

        def start() -> str:
            from kdtui.jobs.daemon import start_detached, worker_options

            started = start_detached(store.root, logs, worker_options())
            return (f"worker started, pid {started.pid}; its log: {logs / 'worker.log'}" if started.started
                    else f"a worker already runs (pid {started.pid})")

        self._act("worker", start)

    def action_enqueue(self) -> None:
        box = self.query_one("#jobs-file", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#jobs-file")
    def _enqueue(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.query_one("#jobs", DataTable).focus()
        store, path, logs = self.kdtui.store, event.value.strip(), self.kdtui.logs

        def enqueue() -> tuple[str, Any, list[str]]:
            from kdtui.jobs.daemon import worker_options
            from kdtui.jobs.experiment import load_experiment
            from kdtui.jobs.submit import submit

            spec = load_experiment(path)
            # the experiment's [executor] table, as `kdtui run` reads it; the app's --logs
            options = worker_options(spec.executor)
            submitted = submit(spec, store, logs, options)
            return submitted.summary(spec.name), submitted.worker, options

        def enqueued(result: tuple[str, Any, list[str]]) -> None:
            summary, worker, options = result
            self.notify(visible(summary), markup=False)
            if worker is not None and worker.ignored:
                self._offer_restart(worker, options)

        self.fetch(enqueue, enqueued, group="jobs-enqueue", exclusive=False)

    def _offer_restart(self, worker: Any, options: list[str]) -> None:
        """A worker running without the experiment's options is never silently reused: the person chooses."""
        from kdtui.jobs.daemon import RESTART_NOTE, start_detached

        store, logs = self.kdtui.store, self.kdtui.logs

        def answered(yes: bool | None) -> None:
            if yes:
                self._act("restart", lambda: start_detached(store.root, logs, options, restart=True).replaced_note()
                          or "the worker already has these options")
            else:
                self.notify(visible(worker.ignored_note()), markup=False)

        self.app.push_screen(ConfirmScreen(f"worker {worker.pid} runs without {' '.join(worker.ignored)}. "
                                           f"Restart it with them? ({RESTART_NOTE})"), answered)

    def action_log(self) -> None:
        job = self._selected()
        if job is not None:
            path = job.log_path
            self.fetch(lambda: tail(path, 2000), lambda text: self.app.push_screen(
                DetailScreen(f"{job.name} · log", as_text(text))), group="jobs-log")
