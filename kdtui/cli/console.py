"""Terminal output for CLI commands: progress with rate and ETA, tables, leaderboard bars."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from kdtui.recipes.evaluate import EvalProgress
from kdtui.render import as_text, interval_bar
from kdtui.store.reads import LeaderRow

# A cell longer than this is cut before Rich lays out the table (a 1 MB response stays fast).
CELL_CHARS = 2_000

console = Console(stderr=True)
# Piped output is not wrapped at 80 columns: tables stay one row per line.
out = Console(width=None if sys.stdout.isatty() else 160)


@contextmanager
def eval_progress(label: str) -> Iterator[Any]:
    """A progress bar fed with :class:`EvalProgress` updates."""
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
    for column in ("run", "kind", "state", "prompt", "n", "accuracy", "95% CI", "", "pending",
                   "if pending ✗–✓"):
        table.add_column(column, justify="right" if column in ("n", "accuracy", "pending") else "left",
                         no_wrap=True)
    for row in rows:
        table.add_row(
            as_text(row.name), as_text(row.kind), as_text(row.status), as_text(row.prompt), str(row.n),
            f"{row.accuracy:.1%}" + ("*" if row.provisional else ""),
            f"{row.ci_low:.1%}–{row.ci_high:.1%}", interval_bar(row.ci_low, row.ci_high, row.accuracy),
            str(row.pending),
            f"{row.acc_if_pending_wrong:.1%}–{row.acc_if_pending_right:.1%}" if row.pending else "",
        )
    out.print(table)
    out.file.flush()  # the note goes to stderr: let the table's last line end first
    if any(row.provisional for row in rows):
        console.print("* provisional: pending reviews count at their automatic value; the last column is the "
                      "accuracy if all were wrong / all right (kdtui leaderboard --settled leaves them out)",
                      markup=False, highlight=False)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], note: str | None = None) -> None:
    table = Table()
    for column in columns:
        table.add_column(as_text(column), no_wrap=True, overflow="ellipsis", max_width=60)
    for row in rows:
        table.add_row(*(Text("NULL", style="dim") if v is None else as_text(v, CELL_CHARS) for v in row))
    out.print(table)
    out.file.flush()
    if note:
        console.print(note, markup=False, highlight=False)
