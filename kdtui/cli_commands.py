"""Handlers of the store-backed commands: eval, leaderboard, sql, demo."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from pathlib import Path

from kdtui.backend.store import Store
from kdtui.errors import KdtuiError, first_line
from kdtui.settings import logs_dir, store_dir


def _store(args: argparse.Namespace) -> Store:
    return Store(store_dir(args.store))


def cmd_eval(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from kdtui.backend.config import EvalConfig, load_toml_config
    from kdtui.backend.evaluate import run_eval
    from kdtui.console import console, eval_progress

    base = load_toml_config(Path(args.config), EvalConfig, "eval") if args.config else None
    flags = {k: v for k, v in vars(args).items() if k in EvalConfig.model_fields and v is not None}
    if base is None and "model" not in flags:
        raise KdtuiError("--model is required (or --config FILE.toml with an [eval] table)")
    data = (base.model_dump() if base else {}) | flags
    try:
        cfg = EvalConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise KdtuiError(f"--{'-'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    store = _store(args)
    with eval_progress(cfg.run or cfg.prompt) as update:
        result = run_eval(cfg, store, logs_dir(args.logs), progress=update)
    console.print(f"run {result.run!r}: {result.generated} new of {result.n} items, "
                  f"{result.new_tokens} tokens in {result.seconds:.1f}s")
    if args.show_leaderboard:
        cmd_leaderboard(args)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from kdtui.console import print_leaderboard

    print_leaderboard(_store(args).leaderboard())
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from kdtui.backend.store import check_read_only
    from kdtui.console import print_table

    store = _store(args)
    statements = check_read_only(args.query)
    if args.format == "table":
        result = store.query(args.query, max_rows=args.max_rows)
        note = f"showing the first {args.max_rows} rows; use --format csv --out FILE for all" \
            if result.truncated else f"{len(result.rows)} rows"
        print_table(result.columns, result.rows, note)
        return 0
    if not args.out:
        raise KdtuiError(f"--format {args.format} needs --out FILE")
    out = Path(args.out)
    if args.format == "parquet":
        # DuckDB writes Parquet itself; the store is only read, the file is ours.
        import duckdb

        with store.read() as con:
            try:
                for statement in statements[:-1]:
                    con.execute(statement)
                con.sql(statements[-1]).write_parquet(str(out))
            except duckdb.Error as exc:
                raise KdtuiError(f"query failed: {first_line(exc)}") from None
    else:
        result = store.query(args.query)
        with out.open("w", encoding="utf-8", newline="") as fh:
            if args.format == "csv":
                writer = csv.writer(fh)
                writer.writerow(result.columns)
                writer.writerows(result.rows)
            else:
                json.dump([dict(zip(result.columns, row, strict=True)) for row in result.rows], fh,
                          default=str, indent=1)
    print(f"wrote {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from kdtui.demo import run_demo

    return run_demo(args)


def register(
    sub: argparse._SubParsersAction,
    add_store_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    ev = sub.add_parser("eval", help="evaluate a model on GSM8K into the store")
    add_store_flags(ev)
    ev.add_argument("--config", help="TOML file with an [eval] table (flags override it)")
    ev.add_argument("--model", help="transformers model folder or hub id")
    ev.add_argument("--adapter", help="PEFT adapter folder")
    ev.add_argument("--run", help="run name (default: MODEL/PROMPT); the same name resumes")
    ev.add_argument("--data", help="hub id (default openai/gsm8k), FILE.jsonl, or synthetic")
    ev.add_argument("--split", help="hub split (default test)")
    ev.add_argument("--limit", type=int, help="at most N problems")
    ev.add_argument("--offset", type=int, help="skip the first N problems")
    ev.add_argument("--prompt", help="prompt name: plain, answer-only, chat, or from --prompts-file")
    ev.add_argument("--prompts-file", dest="prompts_file", help="TOML with extra [[prompt]] templates")
    ev.add_argument("--max-new-tokens", dest="max_new_tokens", type=int)
    ev.add_argument("--batch-size", dest="batch_size", type=int)
    ev.add_argument("--sample", dest="do_sample", action="store_const", const=True,
                    help="sample instead of greedy decoding")
    ev.add_argument("--temperature", type=float)
    ev.add_argument("--top-p", dest="top_p", type=float)
    ev.add_argument("--seed", type=int)
    ev.add_argument("--protocol", choices=["default", "seed"])
    ev.add_argument("--device")
    ev.add_argument("--dtype")
    ev.add_argument("--leaderboard", dest="show_leaderboard", action="store_true",
                    help="print the leaderboard afterwards")
    ev.set_defaults(handler=cmd_eval)

    lb = sub.add_parser("leaderboard", help="print accuracy per run with 95% intervals")
    add_store_flags(lb)
    lb.set_defaults(handler=cmd_leaderboard)

    sql = sub.add_parser("sql", help="run read-only SQL on the store")
    add_store_flags(sql)
    sql.add_argument("query", help="SELECT ... (tables: runs, predictions, triage; views: "
                                   "predictions_final, leaderboard)")
    sql.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    sql.add_argument("--out", help="output file for csv/json/parquet")
    sql.add_argument("--max-rows", dest="max_rows", type=int, default=200, help="rows shown as a table")
    sql.set_defaults(handler=cmd_sql)

    demo = sub.add_parser("demo", help="the whole pipeline on SmolLM2-135M-Instruct, then the TUI")
    add_store_flags(demo)
    demo.add_argument("--model", help="use this local model folder instead of SmolLM2-135M-Instruct")
    demo.add_argument("--data", help="FILE.jsonl or hub id (default: the hub if reachable, else synthetic)")
    demo.add_argument("--limit", type=int, default=16, help="questions per prompt (default 16)")
    demo.add_argument("--no-tui", dest="no_tui", action="store_true", help="do not open the TUI at the end")
    demo.set_defaults(handler=cmd_demo)
