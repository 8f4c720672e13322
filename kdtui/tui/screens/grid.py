"""The fast data grid (textual-fastdatatable: it draws only the rows on screen) as the screens use it."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual_fastdatatable import DataTable


class Grid(DataTable, inherit_bindings=False):
    """The grid with Tab and shift+Tab moving focus between a screen's controls, as on every other widget: the
    grid's own Tab moved its cursor, so F3's filters could not be reached by keyboard. Arrows move between cells."""

    BINDINGS: ClassVar[list[BindingType]] = [
        b for b in DataTable.BINDINGS if not (isinstance(b, Binding) and b.key in ("tab", "shift+tab"))]
