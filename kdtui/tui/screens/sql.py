"""SQL console: read-only DuckDB SQL over the store, results in a lazily drawn grid."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, Header, Input, Static, TextArea, Tree
from textual_fastdatatable import DataTable

from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError
from kdtui.render import SHOWN_CHARS, as_text, visible
from kdtui.store import UserQuery
from kdtui.store.exports import exports_folder, tui_export_target
from kdtui.store.reads import schema
from kdtui.store.user_sql import write_rows
from kdtui.tui.keys import GLOBAL_ACTIONS
from kdtui.tui.screens.base import StoreScreen
from kdtui.tui.screens.dialogs import ConfirmScreen, DetailScreen, InputScreen, replace_grid
from kdtui.tui.screens.grid import Grid

MAX_ROWS = 10_000
STARTER = "SELECT name, n, accuracy, ci_low, ci_high, pending_review\nFROM leaderboard\nORDER BY accuracy DESC"


class SqlScreen(StoreScreen):
    """An editor, a result grid, the schema, history, cancel and export."""

    AUTO_FOCUS = "#editor"
    BINDINGS = [
        Binding("ctrl+enter,f5,ctrl+r", "run", "Run", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
        Binding("ctrl+s", "export", "Export", priority=True),
        Binding("ctrl+up", "history(-1)", "Older", priority=True),
        Binding("ctrl+down", "history(1)", "Newer", priority=True),
    ]

    class Result(Message):
        def __init__(self, table: Any, more: bool, seconds: float) -> None:
            super().__init__()
            self.table, self.more, self.seconds = table, more, seconds

    class QueryFailed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.running: UserQuery | None = None
        self.query_lock = threading.Lock()
        self.last_table: Any = None
        self.history: list[str] = []
        self.history_index = 0

    @property
    def history_path(self) -> Path:
        return StoreLayout(self.kdtui.store.root).sql_history

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("SQL · read-only · ctrl+enter/F5 runs · esc cancels · ctrl+s exports", id="sql-status",
                     classes="status")
        with Horizontal(id="sql-body"):
            tree: Tree[str] = Tree("store", id="schema")
            yield tree
            with Vertical():
                yield TextArea.code_editor(STARTER, language=self._language(), id="editor")
                yield Grid(id="results", data=[["run a query"]], column_labels=["result"])
        yield Footer()

    @staticmethod
    def _language() -> str | None:
        try:
            import tree_sitter_sql  # noqa: F401
        except ImportError:
            return None  # no highlighting without textual[syntax]; still a fine editor
        return "sql"

    def on_mount(self) -> None:
        self._focus_editor()
        self._load_history()
        self.load_schema()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._focus_editor()

    def on_key(self, event: events.Key) -> None:
        """Characters typed before the editor has focus (right after F4) still go to its end; the global keys
        (``?``, ``q``) keep their meaning outside the editor (no query begins with either)."""
        editor = self.query_one("#editor", TextArea)
        if event.is_printable and event.character and self.focused is not editor and \
                not isinstance(self.focused, Input) and event.key not in GLOBAL_ACTIONS:
            event.stop()
            event.prevent_default()
            self._focus_editor()
            editor.insert(event.character)

    def _focus_editor(self) -> None:
        """Typing goes to the editor at once, after the text already there."""
        editor = self.query_one("#editor", TextArea)
        editor.focus()
        editor.move_cursor(editor.document.end)
        # moved before the editor had its width, the view scrolled sideways (the query's start out of sight):
        # once laid out, the cursor's own column decides
        def from_the_left() -> None:
            editor.scroll_to(x=0, animate=False, immediate=True)
            editor.scroll_cursor_visible(animate=False)

        self.call_after_refresh(from_the_left)

    def _load_history(self) -> None:
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
            self.history = [json.loads(line)["sql"] for line in lines if line.strip()][-200:]
        except (OSError, ValueError, KeyError):
            self.history = []
        self.history_index = len(self.history)

    def load_schema(self) -> None:
        store = self.kdtui.store
        self.fetch(lambda: schema(store), self._show_schema, group="sql-schema")

    def _show_schema(self, tables: dict[str, list[tuple[str, str]]]) -> None:
        tree = self.query_one("#schema", Tree)
        tree.clear()
        tree.root.expand()
        for table, columns in tables.items():
            node = tree.root.add(as_text(table), data=table)
            for column, kind in columns:
                label = as_text(column)
                label.append(f" {kind.lower()}", style="dim")
                node.add_leaf(label, data=column)

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        if event.node.data:
            self.query_one("#editor", TextArea).insert(event.node.data)

    # ------------------------------------------------------------------ running

    def action_run(self) -> None:
        sql = self.query_one("#editor", TextArea).text.strip()
        if not sql:
            return
        self._remember(sql)
        self.query_one("#sql-status", Static).update("running… (esc cancels)")
        self._run(sql)

    @work(thread=True, exclusive=True, group="sql-run")
    def _run(self, sql: str) -> None:
        start = time.monotonic()
        try:
            query = UserQuery(self.kdtui.store, sql, timeout=self.kdtui.sql_timeout)
            with self.query_lock:
                self.running = query
            table, more = query.arrow(MAX_ROWS)
            self.post_message(self.Result(table, more, time.monotonic() - start))
        except KdtuiError as exc:
            self.post_message(self.QueryFailed(str(exc)))
        finally:
            with self.query_lock:
                self.running = None

    def action_cancel(self) -> None:
        with self.query_lock:
            if self.running is not None:
                self.running.interrupt()

    @on(Result)
    async def _show(self, message: Result) -> None:
        self.last_table = message.table
        await replace_grid(self.query_one("#results", DataTable), message.table)
        rows = message.table.num_rows
        shown = f"first {rows:,} of more than {rows:,} rows" if message.more else f"{rows:,} rows"
        self.query_one("#sql-status", Static).update(f"{shown} in {message.seconds:.2f}s")

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        """Enter on a result cell: the whole value, however long (the grid cuts cells at 60 cells and 2,000
        characters), multi-line text in its lines, in a dialog that q, Enter or Escape closes."""
        event.stop()
        table = self.last_table
        row, column = event.coordinate.row, event.coordinate.column
        if table is None or not (0 <= row < table.num_rows and 0 <= column < table.num_columns):
            return
        value = table.column(column)[row].as_py()
        name = table.column_names[column]
        text = json.dumps(value, indent=2, default=str) if isinstance(value, (dict, list)) else value
        self.app.push_screen(DetailScreen(f"{visible(name)} · row {row + 1:,}", as_text(visible(text, SHOWN_CHARS))))

    @on(QueryFailed)
    async def _query_failed(self, message: QueryFailed) -> None:
        """A failed query empties the grid (the last result must not pass for this query's) and says why in
        the status line only: one toast per typo piled up over the editor."""
        import pyarrow as pa
        from textual.widget import MountError

        self.last_table = None
        try:
            await replace_grid(self.query_one("#results", DataTable), pa.table({}))
        except MountError:
            return  # the app is closing (quitting cancels a running query): nothing left to show it on
        self.query_one("#sql-status", Static).update(as_text(message.error, style="red"))

    def show_error(self, error: str) -> None:
        self.query_one("#sql-status", Static).update(as_text(error, style="red"))
        self.kdtui.report_error(error)

    # ------------------------------------------------------------------ history

    def _remember(self, sql: str) -> None:
        if self.history and self.history[-1] == sql:
            self.history_index = len(self.history)
            return
        self.history.append(sql)
        self.history_index = len(self.history)
        try:
            with self.history_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"at": time.time(), "sql": sql}) + "\n")
        except OSError:
            pass  # history is a convenience; a read-only store folder must not break the console

    def action_history(self, step: int) -> None:
        editor = self.query_one("#editor", TextArea)
        index = self.history_index
        while 0 <= index + step < len(self.history):
            index += step
            if self.history[index] != editor.text:  # skip what is already in the editor
                self.history_index = index
                editor.text = self.history[index]
                return

    # ------------------------------------------------------------------- export

    def action_export(self) -> None:
        if self.last_table is None:
            self.notify("run a query first", severity="warning")
            return
        table = self.last_table
        folder = exports_folder(self.kdtui.store.root)

        def chosen(name: str | None) -> None:
            if not name:
                return
            try:
                path = tui_export_target(name, self.kdtui.store.root)
            except KdtuiError as exc:
                self.show_error(str(exc))
                return
            if path.exists():
                def confirmed(yes: bool | None) -> None:
                    if yes:
                        self._export(table, path)

                self.app.push_screen(ConfirmScreen(f"{path} exists. Overwrite it?"), confirmed)
            else:
                self._export(table, path)

        self.app.push_screen(InputScreen(f"Export the shown rows to {folder}/ as (.csv, .json or .parquet)",
                                         value="result.csv"), chosen)

    @work(thread=True, group="sql-export")
    def _export(self, table: Any, path: Path) -> None:
        try:
            count = write_rows(table.to_reader(), path, path.suffix.lstrip("."))
            self.app.call_from_thread(self.notify, f"wrote {count:,} rows to {path}", markup=False)
        except (KdtuiError, ValueError) as exc:
            self.post_message(self.Failed(f"export failed: {exc}"))
