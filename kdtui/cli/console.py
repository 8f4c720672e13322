"""Terminal output for CLI commands: progress with rate and ETA, tables, leaderboard bars."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kdtui.render import as_text, interval_bar

if TYPE_CHECKING:  # types only: `kdtui sql` prints through here without the eval recipe's or the store's imports
    from kdtui.recipes.evaluate import EvalProgress
    from kdtui.store.reads import LeaderRow

# A cell longer than this is cut before Rich lays out the table (a 1 MB response stays fast).
CELL_CHARS = 2_000

console = Console(stderr=True)
# Piped output is not wrapped at 80 columns: tables stay one row per line.
out = Console(width=None if sys.stdout.isatty() else 160)


@contextmanager
def eval_progress(label: str) -> Iterator[Any]:
    """A progress bar fed with :class:`EvalProgress` updates."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    columns = [
        TextColumn("{task.description}", markup=False, style="bold"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task: TaskID | None = None

        def update(state: EvalProgress) -> None:
            nonlocal task
            rate = f"{state.items_per_s:.2f} q/s {state.tokens_per_s:.0f} tok/s"
            if task is None:
                task = bar.add_task(label, total=state.total, completed=state.done, rate=rate)
            bar.update(task, completed=state.done, rate=rate)
            if not console.is_terminal:
                eta = "?" if state.eta_s is None else f"{state.eta_s:.0f}s"
                print(f"{label}: {state.done}/{state.total} {rate} ETA {eta}", file=sys.stderr, flush=True)

        yield update


def print_leaderboard(rows: list[LeaderRow], settled: bool = False) -> None:
    if not rows:
        out.print("no evaluated runs yet; run `kdtui eval` or `kdtui demo`")
        return
    title = ("Leaderboard (GSM8K accuracy over settled items, Wilson 95% interval)" if settled else
             "Leaderboard (GSM8K accuracy, Wilson 95% interval)")
    table = Table(title=title)
    for column in ("run", "kind", "state", "prompt", "n", "accuracy", "95% CI", "", "no answer", "pending",
                   "if pending ✗–✓"):
        table.add_column(column, justify="right" if column in ("n", "accuracy", "pending", "no answer") else "left",
                         no_wrap=True)
    for row in rows:
        table.add_row(
            as_text(row.name), as_text(row.kind), as_text(row.status), as_text(row.prompt), str(row.n),
            f"{row.accuracy:.1%}" + ("*" if row.provisional else ""),
            f"{row.ci_low:.1%}–{row.ci_high:.1%}", interval_bar(row.ci_low, row.ci_high, row.accuracy),
            f"{row.no_answer_share:.1%}", str(row.pending),
            f"{row.acc_if_pending_wrong:.1%}–{row.acc_if_pending_right:.1%}" if row.pending else "",
        )
    out.print(table)
    out.file.flush()  # the note goes to stderr: let the table's last line end first
    if any(row.provisional for row in rows):
        console.print("* provisional: pending reviews count at their automatic value; the last column is the "
                      "accuracy if all were wrong / all right (kdtui leaderboard --settled leaves them out)",
                      markup=False, highlight=False)


def print_comparison(rows: list[LeaderRow], baseline: str) -> None:
    """Each run against ``baseline`` (rows from ``leaderboard(store, baseline=...)``): the accuracy difference
    and the exact McNemar p over the items both runs settled, paired by question."""
    table = Table(title=f"Against {baseline} (paired by question, exact McNemar)")
    for column in ("run", "accuracy", "Δ", "McNemar p", "paired"):
        table.add_column(column, justify="left" if column == "run" else "right", no_wrap=column != "run")
    for row in rows:
        if row.name == baseline:
            continue
        known = row.delta is not None and row.p_value is not None
        table.add_row(as_text(row.name), f"{row.accuracy:.1%}", f"{row.delta:+.1%}" if known else "",
                      f"{row.p_value:.3g}" if known else "", str(row.paired) if known else "")
    out.print(table)


# A column gets at least this many cells (or its whole width, when narrower); a table that cannot give every
# column that much is printed one record at a time instead, as psql's \x auto does.
MIN_COLUMN_CELLS = 16
MAX_COLUMN_CELLS = 60


def column_widths(naturals: Sequence[int], room: int) -> list[int] | None:
    """Widths for columns whose content is ``naturals`` cells wide, in ``room`` cells of content; None when
    they cannot each get their floor. Beyond the floors, space goes to columns in proportion to what they
    lack (Rich alone squeezes some columns to nothing and crops others)."""
    naturals = [min(n, MAX_COLUMN_CELLS) for n in naturals]
    floors = [min(n, MIN_COLUMN_CELLS) for n in naturals]
    if sum(floors) > room:
        return None
    if sum(naturals) <= room:
        return naturals
    spare, wants = room - sum(floors), [n - f for n, f in zip(naturals, floors, strict=True)]
    total = sum(wants)
    return [f + spare * w // total for f, w in zip(floors, wants, strict=True)]


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], note: str | None = None) -> None:
    headers = [as_text(c) for c in columns]
    cells = [[_cell(v) for v in row] for row in rows]
    naturals = [max([h.cell_len, *(max((len(line) for line in r[i].plain.split("\n")), default=0) for r in cells)])
                for i, h in enumerate(headers)]
    widths = column_widths(naturals, out.width - 3 * len(columns) - 1)
    if widths is None:
        _print_records(headers, cells)
    else:
        table = Table()
        for header, width in zip(headers, widths, strict=True):
            table.add_column(header, no_wrap=True, overflow="ellipsis", width=max(width, 1))
        for row in cells:
            table.add_row(*row)
        out.print(table)
    out.file.flush()
    if note:
        console.print(note, markup=False, highlight=False)


def _cell(value: Any) -> Text:
    return Text("NULL", style="dim") if value is None else as_text(value, CELL_CHARS)


def _print_records(headers: Sequence[Text], cells: Sequence[Sequence[Text]]) -> None:
    """Each row as ``column  value`` lines: every column stays readable however many there are."""
    for index, row in enumerate(cells, start=1):
        out.rule(f"record {index}", align="left", style="dim")
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for header, value in zip(headers, row, strict=True):
            grid.add_row(header, value)
        out.print(grid)
