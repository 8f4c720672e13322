"""Captures: what each teacher capture holds, how big it is, and how peaked the teacher was."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from kdtui.errors import KdtuiError
from kdtui.screens.base import StoreScreen

SPARK = " ▁▂▃▄▅▆▇█"
COLUMNS = ["capture", "teacher", "strategy", "mode", "format", "tokens", "size", "B/token", "top-k mass",
           "entropy 0→8 nats", "status"]


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


class CapturesScreen(StoreScreen):
    """One row per capture, with an entropy histogram to compare strategies at a glance."""

    BINDINGS = [Binding("r", "refresh", "Refresh")]

    class Loaded(Message):
        def __init__(self, rows: list[tuple[Any, ...]]) -> None:
            super().__init__()
            self.rows = rows

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Captures — loading…", id="cap-status", classes="status")
        table: DataTable[Any] = DataTable(id="captures", cursor_type="row", zebra_stripes=True)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#captures", DataTable).add_columns(*COLUMNS)
        self.watch_store()
        self.load()

    @work(thread=True, exclusive=True, group="captures")
    def load(self) -> None:
        try:
            rows = self.kdtui.store.query(
                "SELECT name, teacher, strategy, mode, format, n_tokens, bytes, bytes_per_token, mean_topk_mass, "
                "entropy_hist, status, k FROM captures ORDER BY name", read_only_check=False).rows
            self.post_message(self.Loaded(rows))
        except KdtuiError as exc:
            self.post_message(self.Failed(str(exc)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        table = self.query_one("#captures", DataTable)
        table.clear()
        for name, teacher, strategy, mode, fmt, tokens, size, per_token, mass, hist, status, k in message.rows:
            table.add_row(
                name, str(teacher).rstrip("/").split("/")[-1], strategy, mode,
                f"top-{k}" if fmt == "topk" else fmt, f"{tokens or 0:,}", human_bytes(size or 0),
                "" if per_token is None else f"{per_token:.1f}", "" if mass is None else f"{mass:.1%}",
                Text(sparkline(list(hist or [])), style="cyan"), status,
            )
        self.query_one("#cap-status", Static).update(
            f"{len(message.rows)} captures · kdtui capture --teacher PATH --strategy NAME --name NAME adds one")

    def reload(self) -> None:
        self.load()

    def action_refresh(self) -> None:
        self.load()
