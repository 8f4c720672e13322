"""``kdtui store``: what a store holds, and recovering results that could only be spilled."""

from __future__ import annotations

import argparse
from typing import Any

from kdtui.cli.common import Parents, add_command, logs, open_store
from kdtui.errors import KdtuiError


def cmd_store(args: argparse.Namespace) -> int:
    if args.action == "recover":
        return _recover(args)
    return _info(args)


def _info(args: argparse.Namespace) -> int:
    from kdtui.cli.console import out, print_table
    from kdtui.store.reads import runs

    store = open_store(args)
    version = store.schema_version()
    storage = store.storage_version()
    clients = "any DuckDB from 1.0" if storage.startswith("v1.") else "DuckDB 2.0 or later only"
    out.print(f"store {store.path} (schema v{version}, {store.path.stat().st_size / 1e6:.1f} MB, DuckDB storage "
              f"{storage}: {clients} opens it)", markup=False)
    rows = [(r.name, r.kind, r.state, r.pid or "", r.host or "", r.error or "",
             ", ".join(f"{k}: {v}" for k, v in r.warnings.items())) for r in runs(store)]
    print_table(["run", "kind", "state", "pid", "host", "error", "warnings"], rows,
                f"{len(rows)} run{'' if len(rows) == 1 else 's'}; 'lost' = running, but its process is gone or silent "
                "for a minute")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from kdtui.store.writer import recover

    folder = logs(args)
    if not folder.is_dir():
        raise KdtuiError(f"no logs folder at {folder}; point --logs at the folder with unsaved-*.jsonl files")
    lines = recover(open_store(args, create=True), folder)
    for line in lines:
        print(f"recovered {line}")
    if not lines:
        print(f"nothing to recover in {folder}")
    return 0


def register(sub: Any, parents: Parents) -> None:
    store = add_command(sub, "store", cmd_store, parents)
    store.add_argument("action", nargs="?", choices=["info", "recover"], default="info",
                       help="info: schema and runs with their live state; recover: ingest logs/unsaved-*.jsonl")
