"""The tables the screens list things in, with the keys every list shares (kdtui/tui/keys.py): j/k down and up,
g/G top and bottom, as in lazygit, k9s and less."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual_fastdatatable import DataTable as FastDataTable

LIST_BINDINGS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
]


class ListTable(DataTable[Any]):
    """Textual's table (leaderboard, jobs, training runs, captures) with the list keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *LIST_BINDINGS, Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False)]


class Grid(FastDataTable, inherit_bindings=False):
    """The fast grid (textual-fastdatatable: it draws only the rows on screen) with the list keys, and with Tab and
    shift+Tab moving focus between a screen's controls as on every other widget: the grid's own Tab moved its
    cursor, so F3's filters could not be reached by keyboard. Arrows move between cells."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *(b for b in FastDataTable.BINDINGS if not (isinstance(b, Binding) and b.key in ("tab", "shift+tab"))),
        *LIST_BINDINGS, Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False)]
