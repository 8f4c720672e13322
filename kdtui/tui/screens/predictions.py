"""Predictions browser: filter by run, correctness, rule and review; read one in full."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Select, Static
from textual_fastdatatable import DataTable

from kdtui.render import SHOWN_CHARS, as_text, format_value, visible
from kdtui.store.reads import (
    PREDICTION_LIST_COLUMNS,
    PredictionFilter,
    PredictionRow,
    TriageItem,
    predictions,
    run_names,
    triage_item,
)
from kdtui.tui.screens.base import StoreScreen
from kdtui.tui.screens.dialogs import DetailScreen, replace_grid
from kdtui.tui.screens.grid import Grid

LIMIT = 5000
RULES = ["boxed", "first_line", "gsm8k_marker", "answer_phrase", "last_number", "none"]


def _cell(column: str, value: object) -> str:
    """A grid cell: answers as a person writes them (36, not 36.0; "no answer"), the rest as text."""
    if column in ("gold", "answer"):
        return format_value(value if isinstance(value, float | int) else None)
    return "" if value is None else str(value)


class PredictionsScreen(StoreScreen):
    """Every prediction, filterable; Enter shows one in full, t opens it in triage."""

    AUTO_FOCUS = "#predictions"
    BINDINGS = [
        Binding("enter", "view", "View"),
        Binding("t", "triage", "Triage it"),
        Binding("r", "refresh", "Refresh"),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = PredictionFilter()
        self.rows: list[PredictionRow] = []
        self.known_runs: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Predictions — loading…", id="pr-status", classes="status")
        with Horizontal(id="filters"):
            yield Select[str]([], prompt="all runs", id="f-run")
            yield Select[str]([("correct", "yes"), ("wrong", "no")], prompt="right or wrong", id="f-correct")
            yield Select[str]([(r, r) for r in RULES], prompt="any rule", id="f-rule")
            yield Select[str]([("needs review", "yes"), ("settled", "no")], prompt="any review", id="f-review")
        yield Grid(id="predictions", data=[["loading"]], column_labels=["…"], cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.watch_store()
        self.load()

    def show_run(self, run: str | None) -> None:
        """A drill-down: this run, every other filter cleared (a leftover one would hide rows unannounced)."""
        self.filter = PredictionFilter(run=run)
        if not self.is_mounted:
            return  # a first drill-down: the screen composes with clear filters and loads on mount
        with self.prevent(Select.Changed):
            for select_id in ("#f-correct", "#f-rule", "#f-review"):
                self.query_one(select_id, Select).clear()
        self.load()

    def load(self) -> None:
        store, flt = self.kdtui.store, PredictionFilter(**vars(self.filter))

        def read() -> tuple[list[PredictionRow], bool, list[str]]:
            rows, more = predictions(store, flt, LIMIT)
            return rows, more, run_names(store)

        self.fetch(read, self._loaded, group="predictions")

    async def _loaded(self, loaded: tuple[list[PredictionRow], bool, list[str]]) -> None:
        import pyarrow as pa

        rows, more, runs = loaded
        grid = self.query_one("#predictions", DataTable)
        previous = self._selected()  # keep the cursor on the same prediction across reloads
        self.rows = rows
        with self.prevent(Select.Changed):  # the dropdown shows the run the rows are of, always
            select = self.query_one("#f-run", Select)
            if runs != self.known_runs:
                self.known_runs = runs
                select.set_options([(name, name) for name in runs])
            if self.filter.run in runs:
                select.value = self.filter.run
            else:
                select.clear()
        # replace_grid makes every string visible (kdtui.render) before the grid draws it
        table = pa.table({name: pa.array([_cell(name, getattr(r, name)) for r in rows], pa.string())
                          for name in PREDICTION_LIST_COLUMNS})
        grid = await replace_grid(grid, table, cursor_type="row")
        if previous is not None:
            index = next((i for i, r in enumerate(rows) if (r.run_id, r.item) == (previous.run_id, previous.item)),
                         None)
            if index is not None:
                grid.move_cursor(row=index)
        count = f"first {len(rows):,} (more exist)" if more else f"{len(rows):,}"
        scope = self.filter.run or "all runs"
        active = [label for label, on in (("right only", self.filter.correct is True),
                                          ("wrong only", self.filter.correct is False),
                                          (f"rule {self.filter.rule}", self.filter.rule is not None),
                                          ("needs review", self.filter.needs_review is True),
                                          ("settled", self.filter.needs_review is False)) if on]
        filters = f" · filtered: {', '.join(active)}" if active else ""
        self.query_one("#pr-status", Static).update(
            as_text(f"Predictions · {scope}{filters} · {count} rows · enter: view · t: triage"))

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

    def _selected(self) -> PredictionRow | None:
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
            store, run_id, item_id = self.kdtui.store, row.run_id, row.item
            self.fetch(lambda: triage_item(store, run_id, item_id), self._show_detail, group="predictions-detail")

    def _show_detail(self, item: TriageItem | None) -> None:
        if item is None:
            return
        body = Text()
        body.append("Question\n", style="bold")
        body.append(visible(item.question, SHOWN_CHARS) + "\n\n")
        body.append("Response\n", style="bold")
        body.append(visible(item.response, SHOWN_CHARS) + "\n\n")
        body.append(f"gold {item.gold}   extracted {item.value} ({visible(item.rule)})   final {item.final_value}"
                    f"{'   (triaged)' if item.triaged else ''}\ncandidates {item.candidates}")
        self.app.push_screen(DetailScreen(f"{item.run_name} · {item.item_id}", body))  # shown via as_text

    def action_triage(self) -> None:
        row = self._selected()
        if row is not None:
            self.kdtui.open_triage(row.run_id, row.item)

    def reload(self) -> None:
        self.load()

    def action_filter(self) -> None:
        """`/` as on every list: the filters, from the run's (Tab moves on to the others)."""
        self.query_one("#f-run", Select).focus()

    def action_refresh(self) -> None:
        self.load()
