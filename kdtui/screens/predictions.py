"""Predictions browser: filter by run, correctness, rule and review; read one in full."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer, Header, Select, Static
from textual_fastdatatable import DataTable

from kdtui.backend.queries import (
    PREDICTION_LIST_COLUMNS,
    PredictionFilter,
    predictions,
    run_names,
    triage_item,
)
from kdtui.errors import KdtuiError
from kdtui.screens.base import StoreScreen
from kdtui.screens.dialogs import DetailScreen, replace_grid

LIMIT = 5000
RULES = ["boxed", "first_line", "gsm8k_marker", "answer_phrase", "last_number", "none"]


class PredictionsScreen(StoreScreen):
    """Every prediction, filterable; Enter shows one in full, t opens it in triage."""

    AUTO_FOCUS = "#predictions"
    BINDINGS = [
        Binding("enter", "view", "View"),
        Binding("t", "triage", "Triage it"),
        Binding("r", "refresh", "Refresh"),
    ]

    class Loaded(Message):
        def __init__(self, rows: list[tuple[Any, ...]], more: bool, runs: list[str]) -> None:
            super().__init__()
            self.rows, self.more, self.runs = rows, more, runs

    class Detail(Message):
        def __init__(self, title: str, body: Text) -> None:
            super().__init__()
            self.title, self.body = title, body

    def __init__(self) -> None:
        super().__init__()
        self.filter = PredictionFilter()
        self.rows: list[tuple[Any, ...]] = []
        self.known_runs: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Predictions — loading…", id="pr-status", classes="status")
        with Horizontal(id="filters"):
            yield Select[str]([], prompt="all runs", id="f-run")
            yield Select[str]([("correct", "yes"), ("wrong", "no")], prompt="right or wrong", id="f-correct")
            yield Select[str]([(r, r) for r in RULES], prompt="any rule", id="f-rule")
            yield Select[str]([("needs review", "yes"), ("settled", "no")], prompt="any review", id="f-review")
        yield DataTable(id="predictions", data=[["loading"]], column_labels=["…"], cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.watch_store()
        self.load()

    def show_run(self, run: str | None) -> None:
        self.filter.run = run
        self.load()

    @work(thread=True, exclusive=True, group="predictions")
    def load(self) -> None:
        try:
            rows, more = predictions(self.kdtui.store, self.filter, LIMIT)
            self.post_message(self.Loaded(rows, more, run_names(self.kdtui.store)))
        except KdtuiError as exc:
            self.post_message(self.Failed(str(exc)))

    @on(Loaded)
    async def _loaded(self, message: Loaded) -> None:
        import pyarrow as pa

        self.rows = message.rows
        if message.runs != self.known_runs:
            self.known_runs = message.runs
            with self.prevent(Select.Changed):
                select = self.query_one("#f-run", Select)
                select.set_options([(name, name) for name in message.runs])
                if self.filter.run in message.runs:
                    select.value = self.filter.run
        columns: list[Any] = list(zip(*message.rows, strict=True)) if message.rows else \
            [() for _ in PREDICTION_LIST_COLUMNS]
        table = pa.table({name: pa.array([str(v) if v is not None else "" for v in values], pa.string())
                          for name, values in zip(PREDICTION_LIST_COLUMNS, columns, strict=False)})
        await replace_grid(self.query_one("#predictions", DataTable), table, cursor_type="row")
        count = f"first {len(self.rows):,} (more exist)" if message.more else f"{len(self.rows):,}"
        scope = self.filter.run or "all runs"
        self.query_one("#pr-status", Static).update(f"Predictions · {scope} · {count} rows · enter: view · t: triage")

    @on(Select.Changed)
    def _filter_changed(self, event: Select.Changed) -> None:
        value = None if event.value is Select.BLANK else str(event.value)
        select_id = event.select.id
        if select_id == "f-run":
            self.filter.run = value
        elif select_id == "f-correct":
            self.filter.correct = None if value is None else value == "yes"
        elif select_id == "f-rule":
            self.filter.rule = value
        elif select_id == "f-review":
            self.filter.needs_review = None if value is None else value == "yes"
        self.load()

    def _selected(self) -> tuple[Any, ...] | None:
        grid = self.query_one("#predictions", DataTable)
        row = grid.cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_view()

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        event.stop()
        self.action_view()

    def action_view(self) -> None:
        row = self._selected()
        if row is not None:
            self._fetch_detail(int(row[9]), str(row[1]))

    @work(thread=True, group="predictions-detail")
    def _fetch_detail(self, run_id: int, item_id: str) -> None:
        try:
            item = triage_item(self.kdtui.store, run_id, item_id)
        except KdtuiError as exc:
            self.post_message(self.Failed(str(exc)))
            return
        if item is None:
            return
        body = Text()
        body.append("Question\n", style="bold")
        body.append(item.question + "\n\n")
        body.append("Response\n", style="bold")
        body.append(item.response + "\n\n")
        body.append(f"gold {item.gold}   extracted {item.value} ({item.rule})   final {item.final_value}"
                    f"{'   (triaged)' if item.triaged else ''}\ncandidates {item.candidates}")
        self.post_message(self.Detail(f"{item.run_name} · {item.item_id}", body))

    @on(Detail)
    def _show_detail(self, message: Detail) -> None:
        self.app.push_screen(DetailScreen(message.title, message.body))

    def action_triage(self) -> None:
        row = self._selected()
        if row is not None:
            self.kdtui.open_triage(int(row[9]), str(row[1]))

    def reload(self) -> None:
        self.load()

    def action_refresh(self) -> None:
        self.load()
