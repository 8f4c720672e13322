"""The kdtui Textual app: a shell of modes over the results store.

The app never holds the DuckDB file open: every store call runs in a worker thread
as a short session (see ``kdtui.store``) and comes back as a message.  A
timer watches the file's modification time so screens refresh when workers or
other users write.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen

from kdtui.config.layout import StoreLayout
from kdtui.config.limits import TUI_SQL_TIMEOUT_S
from kdtui.config.paths import logs_dir
from kdtui.errors import KdtuiError
from kdtui.render import visible
from kdtui.store import Store
from kdtui.store.user_sql import interrupt_all
from kdtui.tui.keys import GLOBAL_BINDINGS
from kdtui.tui.screens.captures import CapturesScreen
from kdtui.tui.screens.jobs import JobsScreen
from kdtui.tui.screens.leaderboard import LeaderboardScreen
from kdtui.tui.screens.predictions import PredictionsScreen
from kdtui.tui.screens.sql import SqlScreen
from kdtui.tui.screens.training import TrainingScreen
from kdtui.tui.screens.triage import TriageScreen

POLL_SECONDS = 1.0
SCREEN_TITLES = {
    "leaderboard": ("Leaderboard (F1)", "Accuracy per run with intervals and McNemar vs the baseline"),
    "triage": ("Triage (F2)", "Decide the answers extraction could not settle"),
    "predictions": ("Predictions (F3)", "Browse and filter every prediction"),
    "sql": ("SQL console (F4)", "Read-only DuckDB SQL over the store"),
    "captures": ("Captures (F6)", "Teacher captures: size, format, entropy"),
    "training": ("Training (F7)", "Live loss curves of distill runs"),
    "jobs": ("Jobs (F8)", "The job queue, its worker and each job's log"),
}
SUMMARY_SECONDS = 5.0


class KdtuiApp(App[None]):
    """Leaderboard, triage queue, predictions browser, SQL console, training curves and captures over one store."""

    TITLE = "kdtui"
    CSS_PATH = "app.tcss"
    MODES = {
        "leaderboard": LeaderboardScreen,
        "triage": TriageScreen,
        "predictions": PredictionsScreen,
        "sql": SqlScreen,
        "training": TrainingScreen,
        "captures": CapturesScreen,
        "jobs": JobsScreen,
    }
    DEFAULT_MODE = "leaderboard"
    BINDINGS = GLOBAL_BINDINGS

    store_version: reactive[int] = reactive(0)

    def __init__(self, store_root: Path | str, first_screen: str | None = None,
                 sql_timeout: float = TUI_SQL_TIMEOUT_S, logs: Path | str | None = None) -> None:
        super().__init__()
        self.sql_timeout = sql_timeout
        self.logs = logs_dir(logs)  # where a worker the TUI starts writes (`kdtui tui --logs`)
        if first_screen is not None:  # e.g. the demo opens on its training curves
            self._screen_stacks = {first_screen: []}
            self._current_mode = first_screen
        # create=False: the TUI reads; it never makes a store where a path was mistyped.
        self.store = Store(store_root, create=False, report_wait=self._report_wait)
        self.sub_title = visible(self.store.path.resolve())
        self._stamp: tuple[int, ...] = ()

    def _report_wait(self, message: str) -> None:
        """Called from worker threads while they wait for a busy store."""
        with suppress(RuntimeError):  # on the UI thread itself, or the app is closing
            self.call_from_thread(self.notify, message, severity="warning", timeout=6, markup=False)

    def on_mount(self) -> None:
        self._stamp = self.store.change_stamp()
        self.set_interval(POLL_SECONDS, self._poll_store)
        self.set_interval(SUMMARY_SECONDS, self._summarise)
        self._summarise(first=True)

    def _summarise(self, first: bool = False) -> None:
        """Workers, running jobs and GPUs in use, in the header (read in a worker thread). Opening the TUI starts
        nothing: queued work with no worker is said, once, with the key that starts one."""
        store, title = self.store, self.sub_title.split(" · ")[0]

        def read() -> None:
            from kdtui.jobs.daemon import holder

            if not store.path.exists():
                return
            pid = holder(store.root)
            jobs = store.jobs.all()
            if not jobs and pid is None:
                return  # no queue here: the header stays the store's path
            running = [j for j in jobs if j.state == "running"]
            queued = sum(j.state == "queued" for j in jobs)
            cards = sorted({c for j in running for c in j.gpu_ids})
            summary = (f"{title} · {'worker on' if pid else 'no worker'} · {len(running)} running"
                       + (f" · {queued} queued" if queued else "") + (f" · GPUs {len(cards)}" if cards else ""))
            with suppress(RuntimeError):
                self.call_from_thread(setattr, self, "sub_title", summary)
                if first and pid is None and queued:
                    self.call_from_thread(self.notify, f"{queued} jobs are queued and no worker runs: "
                                          "press w on Jobs (F8) to start one", timeout=10)

        def safe() -> None:
            with suppress(Exception):  # the header is decoration: a busy store just keeps the old one
                read()

        self.run_worker(safe, thread=True, group="summary", exclusive=True, exit_on_error=False)

    def _poll_store(self) -> None:
        stamp = self.store.change_stamp()  # no DuckDB session unless the files moved
        if stamp != self._stamp:
            self._stamp = stamp
            self.store_version += 1

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette (ctrl+p) also opens every screen by name."""
        yield from super().get_system_commands(screen)
        for mode, (title, help_text) in SCREEN_TITLES.items():
            yield SystemCommand(title, help_text, partial(self.switch_mode, mode))
        yield SystemCommand("Report", "Write an HTML report of every run (kdtui report) to the store's exports "
                            "folder", self.action_report)

    def action_report(self) -> None:
        """The HTML report of every run, written in a worker thread into ``exports/``; says where."""
        store = self.store

        def write() -> None:
            from datetime import datetime

            from kdtui.report.build import write_report
            from kdtui.store.exports import ready_exports_folder

            try:
                out = ready_exports_folder(store.root) / f"report-{datetime.now():%Y%m%d-%H%M%S}.html"
                write_report(store, [], out)
            except (KdtuiError, OSError) as exc:
                self.call_from_thread(self.report_error, f"report not written: {exc}")
                return
            self.call_from_thread(self.notify, f"report written: {out}", markup=False, timeout=10)

        self.run_worker(write, thread=True, group="report", exclusive=True, exit_on_error=False)

    async def action_mode(self, mode: str) -> None:
        """Switch screens and wait until the new one is up, so keys typed right after F4 reach it."""
        await self.switch_mode(mode)

    def open_predictions(self, run: str | None) -> None:
        """Show the predictions browser filtered to one run."""
        self.switch_mode("predictions")
        screen = self.screen
        if isinstance(screen, PredictionsScreen):
            screen.show_run(run)

    def open_triage(self, run_id: int, item_id: str) -> None:
        """Show one prediction in the triage screen."""
        self.switch_mode("triage")
        screen = self.screen
        if isinstance(screen, TriageScreen):
            screen.focus_item(run_id, item_id)

    def report_error(self, message: str) -> None:
        self.notify(message, severity="error", timeout=8, markup=False)


    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """An SVG of the screen into the store's ``screenshots/`` (a headless server has no Downloads folder),
        saying where; in a browser (`kdtui serve`) the browser downloads it, as Textual does. The palette's
        "Screenshot" and ``action_screenshot`` both come here."""
        if self.is_web:
            return super().deliver_screenshot(filename, path, time_format)
        folder = Path(path) if path else StoreLayout(self.store.root).screenshots
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(filename, str(folder), time_format)
        except OSError as exc:
            self.notify(f"screenshot not saved in {folder}: {exc.strerror or exc}", severity="error", markup=False)
            return None
        self.notify(f"screenshot saved: {saved}", markup=False, timeout=8)
        return saved

    def action_toggle_keys(self) -> None:
        """``?``: the keys of the screen in front and its focused widget (Textual's key panel); again hides it."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    async def action_back(self) -> None:
        """``q``: close the dialog in front; with none, quit (as ctrl+q)."""
        if isinstance(self.screen, ModalScreen):
            self.screen.dismiss(None)
        else:
            await self.action_quit()

    async def action_quit(self) -> None:
        interrupt_all("the app is closing")  # a query in a worker thread would keep the process alive
        await super().action_quit()


def run_app(store_root: Path | str, first_screen: str | None = None, sql_timeout: float = TUI_SQL_TIMEOUT_S,
            logs: Path | str | None = None) -> int:
    """Run the app; its exit status (non-zero after a crash, whose error Textual prints on the way out)."""
    app = KdtuiApp(store_root, first_screen, sql_timeout=sql_timeout, logs=logs)
    try:
        app.run()
    finally:
        interrupt_all("the app is closing")
    return exit_status(app)


def exit_status(app: App[Any]) -> int:
    """The process's exit status after ``app`` ended: Textual's (1 after an unhandled error), never a silent 0."""
    return app.return_code or 0
