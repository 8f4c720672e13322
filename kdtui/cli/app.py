"""``kdtui tui`` (also bare ``kdtui``) and ``kdtui serve``: the Textual app in a terminal or a browser tab."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from kdtui.cli.common import Parents, add_command, open_store
from kdtui.errors import KdtuiError


def cmd_tui(args: argparse.Namespace) -> int:
    from kdtui.tui.app import run_app

    store = open_store(args)
    store.ensure_schema()  # a missing or foreign store is one line here, not an empty app
    return run_app(store.root)


def cmd_serve(args: argparse.Namespace) -> int:
    from textual_serve.server import Server

    if not 1 <= args.port <= 65535:
        raise KdtuiError(f"--port {args.port}: choose a port between 1 and 65535")
    store = open_store(args)
    store.ensure_schema()
    command = shlex.join([sys.executable, "-m", "kdtui.cli", "tui", "--store", str(store.root.resolve())])
    print(f"kdtui: serving the TUI at http://{args.host}:{args.port} (ctrl+c stops)", file=sys.stderr, flush=True)
    Server(command, host=args.host, port=args.port, title="kdtui").serve()
    return 0


def register(sub: Any, parents: Parents) -> None:
    add_command(sub, "tui", "open the TUI on the store (also: bare `kdtui`)", cmd_tui, parents)
    serve = add_command(sub, "serve", "serve the TUI in a browser tab (textual-serve)", cmd_serve, parents)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
