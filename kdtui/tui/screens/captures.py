"""Captures: what each teacher capture holds, how big it is, and how peaked the teacher was."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from kdtui.config.distill import KEPT_MASS_FLOOR
from kdtui.render import as_text
from kdtui.store.reads import CaptureRow, captures
from kdtui.tui.screens.base import RowFilter, StoreScreen
from kdtui.tui.screens.grid import ListTable

SPARK = " ▁▂▃▄▅▆▇█"
COLUMNS = ["capture", "teacher", "strategy", "mode", "format", "tokens", "size", "B/token", "teacher mass kept",
           "entropy 0→8 nats", "state"]


def kept_cell(row: CaptureRow) -> Text:
    """The tempered teacher mass a capture keeps at each stored T, red under distill's floor (which refuses it)."""
    if row.kept_mass is None or row.temperatures is None:  # registered before v9: the T = 1 figure only
        return Text("" if row.mean_topk_mass is None else f"{row.mean_topk_mass:.1%} at T=1")
    cell = Text()
    for i, (t, mass) in enumerate(zip(row.temperatures, row.kept_mass, strict=True)):
        cell.append(" · " if i else "")
        cell.append(f"{mass:.1%} at T={t:.3g}", style="bold red" if mass < KEPT_MASS_FLOOR else "")
    return cell


def sparkline(counts: list[int]) -> str:
    """A histogram in one line of block characters."""
    top = max(counts, default=0)
    if top == 0:
        return ""
    return "".join(SPARK[min(8, round(8 * c / top))] if c else " " for c in counts)


def human_bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"


class CapturesScreen(RowFilter, StoreScreen):
    """One row per capture, with an entropy histogram to compare strategies at a glance."""

    BINDINGS = [Binding("r", "refresh", "Refresh"), Binding("slash", "filter", "Filter")]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[CaptureRow] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Captures — loading…", id="cap-status", classes="status")
        table: DataTable[Any] = ListTable(id="captures", cursor_type="row", zebra_stripes=True)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#captures", DataTable).add_columns(*COLUMNS)
        self.watch_store()
        self.load()

    def load(self) -> None:
        store = self.kdtui.store
        self.fetch(lambda: captures(store), self._loaded, group="captures")

    def _loaded(self, rows: list[CaptureRow]) -> None:
        self.rows = rows
        self.refilter()

    def refilter(self) -> None:
        rows = self.shown(self.rows, lambda r: f"{r.name} {r.teacher} {r.strategy} {r.mode} {r.state}")
        table = self.query_one("#captures", DataTable)
        table.clear()
        for row in rows:
            table.add_row(
                as_text(row.name), as_text(str(row.teacher).rstrip("/").split("/")[-1]), as_text(row.strategy),
                as_text(row.mode), as_text(f"top-{row.k}" if row.format == "topk" else row.format),
                f"{row.n_tokens or 0:,}",
                human_bytes(row.bytes or 0), "" if row.bytes_per_token is None else f"{row.bytes_per_token:.1f}",
                kept_cell(row),
                Text(sparkline(list(row.entropy_hist or [])), style="cyan"), as_text(row.state),
            )
        self.query_one("#cap-status", Static).update(
            f"{len(self.rows)} captures{self.filter_note(len(rows), len(self.rows))} · kdtui capture --teacher PATH "
            "--strategy NAME --name NAME adds one")

    def reload(self) -> None:
        self.load()

    def action_refresh(self) -> None:
        self.load()
