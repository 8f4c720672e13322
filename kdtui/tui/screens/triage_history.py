"""F2's history (``h``): every triage decision and undo, newest first, from the append-only log.

Enter reopens the item in triage, where a new key changes the decision (a new row in the log) and ``u`` undoes
the one in force (also a new row): the log itself is never edited.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from kdtui.render import as_text, elide_middle, format_value
from kdtui.store.reads import TriageEntry
from kdtui.tui.screens.grid import ListTable


def describe(entry: TriageEntry) -> str:
    if entry.is_undo:
        return f"undid #{entry.undoes} (back to {format_value(entry.previous_value)})"
    answer = "no answer" if entry.value is None else format_value(entry.value)
    return f"{answer} (was {format_value(entry.previous_value)})"


class TriageHistoryScreen(ModalScreen[tuple[int, str] | None]):
    """The decisions, newest first; Enter returns the (run id, item id) to reopen."""

    BINDINGS = [Binding("escape,q", "close", "Close"), Binding("enter", "reopen", "Reopen", show=False)]

    def __init__(self, entries: list[TriageEntry], scope: str) -> None:
        super().__init__()
        self.entries, self.scope = entries, scope

    def compose(self) -> ComposeResult:
        with Vertical(id="history-box"):
            yield Label(as_text(f"Triage history · {self.scope} · {len(self.entries)} rows, newest first · "
                                "Enter reopens the item · * in force", style="bold"))
            table: DataTable[Any] = ListTable(id="history", cursor_type="row", zebra_stripes=True)
            yield table

    def on_mount(self) -> None:
        table = self.query_one("#history", ListTable)
        width = max(20, self.app.size.width - 60)
        table.add_columns("#", "when", "run", "item", "decision", "")
        for entry in self.entries:
            table.add_row(str(entry.decision_id), entry.decided_at.strftime("%m-%d %H:%M:%S"),
                          as_text(elide_middle(entry.run_name, width)), as_text(entry.item_id),
                          as_text(describe(entry)), Text("*", style="bold green") if entry.in_force else "")
        if not self.entries:
            table.add_row("", "", as_text("no decisions yet", style="dim"), "", "", "")
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_reopen()  # the table takes Enter before a screen binding could

    def action_reopen(self) -> None:
        row = self.query_one("#history", ListTable).cursor_row
        if 0 <= row < len(self.entries):
            self.dismiss((self.entries[row].run_id, self.entries[row].item_id))

    def action_close(self) -> None:
        self.dismiss(None)
