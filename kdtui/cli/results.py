"""``kdtui leaderboard`` and ``kdtui sql``: reading results, never changing them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kdtui.cli.common import Parents, add_command, open_store
from kdtui.errors import KdtuiError


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from kdtui.cli.console import print_comparison, print_leaderboard
    from kdtui.store.reads import leaderboard

    store = open_store(args)
    rows = leaderboard(store, settled=args.settled)
    if args.baseline is None:
        print_leaderboard(rows, settled=args.settled)
        return 0
    base = next((r for r in rows if r.name == args.baseline), None)
    if base is None:
        raise KdtuiError(f"no evaluated run {args.baseline!r}; --baseline takes a run name from: "
                         f"{', '.join(r.name for r in rows) or 'none yet'}")
    compared = leaderboard(store, baseline=base.run_id, settled=args.settled)
    print_leaderboard(compared, settled=args.settled)
    print_comparison(compared, base.name)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from kdtui.cli.console import print_table
    from kdtui.store import UserQuery
    from kdtui.store.exports import export_target
    from kdtui.store.user_sql import wait_interruptibly

    try:
        store = open_store(args, allow_files=args.allow_files)
        query = UserQuery(store, args.query, timeout=args.timeout)
    except KeyboardInterrupt:  # Ctrl-C while the store opens is the same cancel as Ctrl-C during the query
        raise KdtuiError("query cancelled (ctrl+c) before it started") from None
    if args.format == "table":
        if args.max_rows < 1:
            raise KdtuiError("--max-rows must be at least 1")
        result = wait_interruptibly(query, lambda: query.rows(max_rows=args.max_rows))
        note = (f"showing the first {args.max_rows} rows; use --format csv --out FILE for all" if result.truncated
                else f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}")
        print_table(result.columns, result.rows, note)
        return 0
    if not args.out:
        raise KdtuiError(f"--format {args.format} needs --out FILE")
    out = export_target(Path(args.out), store.root, args.force)
    count = wait_interruptibly(query, lambda: query.export(out, args.format))
    print(f"wrote {count:,} row{'s' if count != 1 else ''} to {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from kdtui.report.build import write_report
    from kdtui.store.exports import export_target

    store = open_store(args)
    out = export_target(Path(args.out), store.root, args.force)
    page = write_report(store, list(args.targets), out)
    print(f"wrote {out} ({len(page) / 1000:.0f} kB, {page.count('<svg')} plots): open it in any browser; "
          "it loads nothing from elsewhere")
    return 0


def register(sub: Any, parents: Parents) -> None:
    board = add_command(sub, "leaderboard", cmd_leaderboard, parents)
    board.add_argument("--settled", action="store_true",
                       help="accuracy over settled items only (no review pending), instead of counting pending "
                            "items at their automatic value")
    board.add_argument("--baseline", metavar="RUN", help="compare every run with this one: accuracy difference "
                       "and an exact McNemar p over the items both settled")
    sql = add_command(sub, "sql", cmd_sql, parents)
    sql.add_argument("query", help="SELECT ... (tables: runs, predictions, triage, captures; views: "
                                   "predictions_final, leaderboard, runs_live, captures_live)")
    sql.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table",
                     help="output format (default: table)")
    sql.add_argument("--out", help="output file for csv/json/parquet (never the store's files; an existing file "
                                   "only with --force)")
    sql.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    sql.add_argument("--timeout", type=float, default=None,
                     help="stop the query after this many seconds (default: none; ctrl+c always stops it)")
    sql.add_argument("--max-rows", dest="max_rows", type=int, default=200,
                     help="rows shown as a table (default: 200)")
    sql.add_argument("--allow-files", dest="allow_files", action="store_true",
                     help="let the query read local files (read_csv, glob, ...); off by default, and never "
                          "possible through the TUI or `kdtui serve`")
    report = add_command(sub, "report", cmd_report, parents)
    report.add_argument("targets", nargs="*", metavar="EXPERIMENT|RUN",
                        help="experiments (their runs and captures) or runs to report on (default: every run)")
    report.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    report.add_argument("--force", action="store_true", help="overwrite an existing --out file")
