"""Leaderboard: one row per evaluated run, intervals drawn, paired comparison to a baseline."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static
from textual.widgets.data_table import ColumnKey

from kdtui.render import as_text, elide_middle, histogram_bar, interval_bar, interval_scale, visible
from kdtui.store.reads import LeaderRow, leaderboard
from kdtui.tui.screens.base import RowFilter, StoreScreen
from kdtui.tui.screens.grid import ListTable

COLUMNS = ["run", "acc", "95% CI", "interval", "Δ base", "p", "n", "no ans", "pending", "strategy", "prompt", "kind"]
SORT_KEYS = {
    "run": lambda r: r.name, "kind": lambda r: r.kind, "strategy": lambda r: r.strategy,
    "prompt": lambda r: r.prompt, "n": lambda r: r.n, "acc": lambda r: r.accuracy,
    "95% CI": lambda r: r.ci_low, "interval": lambda r: r.ci_high, "pending": lambda r: r.pending,
    "no ans": lambda r: r.no_answer_share,
    "Δ base": lambda r: -1e9 if r.delta is None else r.delta,
    "p": lambda r: 2.0 if r.p_value is None else r.p_value,
}


class LeaderboardScreen(RowFilter, StoreScreen):
    """Runs ranked by accuracy, with Wilson intervals and McNemar tests against a baseline."""

    BINDINGS = [
        Binding("enter", "drill", "Predictions"),
        Binding("b", "baseline", "Baseline"),
        Binding("o", "sort_next", "Sort"),
        Binding("O", "sort_reverse", "Reverse", show=False),
        Binding("v", "group", "Group"),
        Binding("s", "settled", "Settled"),
        Binding("r", "refresh", "Refresh"),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[LeaderRow] = []
        self.baseline: int | None = None
        self.sort_column = "acc"
        self.settled = False  # accuracy over settled items only (no review pending)
        self.sort_descending = True
        self.grouped = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Leaderboard — loading…", id="lb-status", classes="status")
        table: DataTable[Any] = ListTable(id="board", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="chart")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#board", DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.watch_store()
        self.load()

    def load(self) -> None:
        store, baseline, settled = self.kdtui.store, self.baseline, self.settled
        self.fetch(lambda: leaderboard(store, baseline, settled), self._loaded, group="leaderboard")

    def _loaded(self, rows: list[LeaderRow]) -> None:
        self.rows = rows
        self.render_rows()

    def _ordered(self) -> list[LeaderRow]:
        rows = sorted(self.shown(self.rows, lambda r: f"{r.name} {r.strategy or ''} {r.kind}"),
                      key=SORT_KEYS[self.sort_column], reverse=self.sort_descending)
        if self.grouped:
            rows.sort(key=lambda r: r.strategy or "~")  # stable: keeps the sort inside groups
        return rows

    def render_rows(self) -> None:
        table = self.query_one("#board", DataTable)
        selected = self.selected_row()
        table.clear()
        ordered = self._ordered()
        scale = interval_scale([r.ci_low for r in self.rows], [r.ci_high for r in self.rows])
        # the bars' scale in their header, as a forest plot labels its axis (all runs, not only those shown)
        table.columns[ColumnKey("interval")].label = Text(f"{scale[0] * 100:.0f}% ─ {scale[1] * 100:.0f}%")
        for row in ordered:
            base = "★ " if row.run_id == self.baseline else ""
            # the other columns take ~90 cells: the name gets the rest, 20 at 80 columns and whole at 150
            name_width = max(20, min(60, self.app.size.width - 90)) - len(base)
            delta = "" if row.delta is None else f"{row.delta:+.1%}"
            p_value = "" if row.p_value is None else ("<0.001" if row.p_value < 0.001 else f"{row.p_value:.3f}")
            style = "bold green" if row.p_value is not None and row.p_value < 0.05 and (row.delta or 0) > 0 else ""
            # A provisional accuracy counts pending reviews at their automatic value: marked *, with the
            # accuracy if every pending item were wrong and if every one were right beside the count.
            accuracy = Text(f"{row.accuracy:.1%}" + ("*" if row.provisional else ""),
                            style="yellow" if row.provisional else "")
            pending = (f"{row.pending} ({row.acc_if_pending_wrong * 100:.1f}–{row.acc_if_pending_right * 100:.1f})"
                       if row.pending else "0")
            table.add_row(
                as_text(base + elide_middle(row.name, name_width)), accuracy,
                f"{row.ci_low * 100:.1f}–{row.ci_high * 100:.1f}",
                interval_bar(row.ci_low, row.ci_high, row.accuracy, 12, scale), Text(delta, style=style), p_value,
                str(row.n), f"{row.no_answer_share:.0%}", pending, as_text(row.strategy or "—"),
                as_text(row.prompt or "—"),
                as_text(row.kind if row.status in ("done", "running") else f"{row.kind} ({row.status})"),
                key=str(row.run_id),
            )
        if selected is not None and str(selected.run_id) in table.rows:
            table.move_cursor(row=table.get_row_index(str(selected.run_id)))
        order = "↓" if self.sort_descending else "↑"
        baseline = next((r.name for r in self.rows if r.run_id == self.baseline), "none (b sets one)")
        if self.settled:
            view = " · settled items only (s: all)"
        elif any(r.provisional for r in self.rows):
            view = " · * provisional: reviews pending, bounds in 'pending' (s: settled only)"
        else:
            view = ""
        paired = " · McNemar on settled pairs" if self.baseline is not None else ""
        self.query_one("#lb-status", Static).update(as_text(
            f"{len(self.rows)} runs{self.filter_note(len(ordered), len(self.rows))} · sorted by {self.sort_column} "
            f"{order}"
            f"{' · grouped by strategy' if self.grouped else ''} · baseline: {baseline}{paired}{view}"))
        self.query_one("#chart", Static).update(self._chart(ordered))

    @staticmethod
    def _chart(rows: list[LeaderRow]) -> Text:
        """Accuracy bars for a comparison at a glance (top 10)."""
        text = Text()
        width = max((len(r.name) for r in rows[:10]), default=0)
        for row in rows[:10]:
            text.append(visible(f"{row.name[:28]:<{min(width, 28)}} "), style="bold")
            text.append(histogram_bar(row.accuracy, 30), style="green")
            text.append(f" {row.accuracy:.1%}\n")
        return text

    def refilter(self) -> None:
        self.render_rows()

    def selected_row(self) -> LeaderRow | None:
        table = self.query_one("#board", DataTable)
        if not self.rows or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.rows if str(r.run_id) == key), None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_drill()

    def action_drill(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.kdtui.open_predictions(row.name)

    def action_baseline(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.baseline = None if self.baseline == row.run_id else row.run_id
            self.load()

    def action_sort_next(self) -> None:
        index = (COLUMNS.index(self.sort_column) + 1) % len(COLUMNS)
        self.sort_column = COLUMNS[index]
        self.sort_descending = self.sort_column in ("acc", "n", "Δ base", "95% CI", "interval", "pending",
                                                    "no ans")
        self.render_rows()

    def action_sort_reverse(self) -> None:
        self.sort_descending = not self.sort_descending
        self.render_rows()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column == self.sort_column:
            self.sort_descending = not self.sort_descending
        else:
            self.sort_column = column
        self.render_rows()

    def action_settled(self) -> None:
        self.settled = not self.settled
        self.load()

    def action_group(self) -> None:
        self.grouped = not self.grouped
        self.render_rows()

    def reload(self) -> None:
        self.load()

    def action_refresh(self) -> None:
        self.load()
