"""``kdtui leaderboard`` and ``kdtui sql``: reading results, never changing them."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from kdtui.cli.common import Parents, add_command, open_store
from kdtui.errors import KdtuiError


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from kdtui.cli.console import print_leaderboard
    from kdtui.store.reads import leaderboard

    print_leaderboard(leaderboard(open_store(args), settled=args.settled), settled=args.settled)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from kdtui.cli.console import print_table
    from kdtui.store import UserQuery

    query = UserQuery(open_store(args, allow_files=args.allow_files), args.query)
    if args.format == "table":
        if args.max_rows < 1:
            raise KdtuiError("--max-rows must be at least 1")
        result = query.rows(max_rows=args.max_rows)
        note = (f"showing the first {args.max_rows} rows; use --format csv --out FILE for all" if result.truncated
                else f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}")
        print_table(result.columns, result.rows, note)
        return 0
    if not args.out:
        raise KdtuiError(f"--format {args.format} needs --out FILE")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise KdtuiError(f"--out {out}: the folder {out.parent} does not exist")
    if args.format == "parquet":
        query.write_parquet(out)
    else:
        result = query.rows()
        try:
            with out.open("w", encoding="utf-8", newline="") as fh:
                if args.format == "csv":
                    writer = csv.writer(fh)
                    writer.writerow(result.columns)
                    writer.writerows(result.rows)
                else:
                    json.dump(result.records(), fh, default=str, indent=1)
        except OSError as exc:
            raise KdtuiError(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {out}")
    return 0


def register(sub: Any, parents: Parents) -> None:
    board = add_command(sub, "leaderboard", "print accuracy per run with Wilson 95% intervals and pending reviews",
                        cmd_leaderboard, parents)
    board.add_argument("--settled", action="store_true",
                       help="accuracy over settled items only (no review pending), instead of counting pending "
                            "items at their automatic value")
    sql = add_command(sub, "sql", "run read-only SQL on the store (writes and DDL are refused)", cmd_sql, parents)
    sql.add_argument("query", help="SELECT ... (tables: runs, predictions, triage, captures; views: "
                                   "predictions_final, leaderboard, runs_live)")
    sql.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table",
                     help="output format (default: table)")
    sql.add_argument("--out", help="output file for csv/json/parquet")
    sql.add_argument("--max-rows", dest="max_rows", type=int, default=200,
                     help="rows shown as a table (default: 200)")
    sql.add_argument("--allow-files", dest="allow_files", action="store_true",
                     help="let the query read local files (read_csv, glob, ...); off by default, and never "
                          "possible through the TUI or `kdtui serve`")
