"""``kdtui tui`` (also bare ``kdtui``): the Textual app in this terminal."""

from __future__ import annotations

import argparse
from typing import Any

from kdtui.cli.common import Parents, add_command, open_store


def cmd_tui(args: argparse.Namespace) -> int:
    from kdtui.tui.app import run_app

    store = open_store(args)
    store.ensure_schema()  # a missing or foreign store is one line here, not an empty app
    return run_app(store.root)


def register(sub: Any, parents: Parents) -> None:
    add_command(sub, "tui", "open the TUI on the store (also: bare `kdtui`)", cmd_tui, parents)
