"""``kdtui tui`` (also bare ``kdtui``): the Textual app in this terminal."""

from __future__ import annotations

import argparse
from typing import Any

from kdtui.cli.common import Parents, add_command, open_store
from kdtui.config.limits import TUI_SQL_TIMEOUT_S


def cmd_tui(args: argparse.Namespace) -> int:
    from kdtui.tui.app import run_app

    store = open_store(args)
    store.ensure_schema()  # a missing or foreign store is one line here, not an empty app
    return run_app(store.root, sql_timeout=getattr(args, "sql_timeout", TUI_SQL_TIMEOUT_S),
                   logs=getattr(args, "logs", None))


def register(sub: Any, parents: Parents) -> None:
    tui = add_command(sub, "tui", cmd_tui, parents)
    tui.add_argument("--sql-timeout", dest="sql_timeout", type=float, default=TUI_SQL_TIMEOUT_S,
                     help=f"stop a console query after this many seconds (default: {TUI_SQL_TIMEOUT_S:g})")
