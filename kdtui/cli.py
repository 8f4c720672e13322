"""The ``kdtui`` command line. Each subcommand parses flags and hands off to the backend.

Heavy imports (torch, transformers, textual) happen inside the handlers so that
``kdtui --help`` and ``kdtui sql`` start fast.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from kdtui import __version__
from kdtui.errors import KdtuiError, first_line

Handler = Callable[[argparse.Namespace], int]


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="store folder (default: $KDTUI_STORE or ./store)")
    parser.add_argument("--logs", help="logs folder (default: $KDTUI_LOGS or ./logs)")


def _cmd_extract(args: argparse.Namespace) -> int:
    from kdtui.backend.extract_jsonl import extract_file

    summary = extract_file(Path(args.input), Path(args.out) if args.out else None, args.protocol, args.field)
    # The summary goes to stderr so that stdout can carry the JSON lines.
    for line in summary.lines():
        print(line, file=sys.stderr)
    return 0


def _cmd_tui(args: argparse.Namespace) -> int:
    from kdtui.app import run_app
    from kdtui.settings import store_dir

    return run_app(store_dir(args.store))


def _cmd_serve(args: argparse.Namespace) -> int:
    import shlex

    from textual_serve.server import Server

    from kdtui.settings import store_dir

    command = shlex.join([sys.executable, "-m", "kdtui.cli", "tui", "--store", str(store_dir(args.store).resolve())])
    print(f"kdtui: serving the TUI at http://{args.host}:{args.port} (ctrl+c stops)", file=sys.stderr)
    Server(command, host=args.host, port=args.port, title="kdtui").serve()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdtui",
        description="A terminal workstation for LLM knowledge-distillation research.",
    )
    parser.add_argument("--version", action="version", version=f"kdtui {__version__}")
    parser.add_argument("--store", dest="global_store",
                        help="store folder for the TUI (default: $KDTUI_STORE or ./store)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    extract = sub.add_parser("extract", help="extract numeric answers from a JSON-lines file")
    extract.add_argument("input", help="JSON lines with a response field")
    extract.add_argument("--protocol", choices=["default", "seed"], default="default",
                         help="default: kdtui's cascade; seed: the study's four rules")
    extract.add_argument("--field", default="response", help="the field holding the response text")
    extract.add_argument("--out", help="write JSON lines here (default: stdout)")
    extract.set_defaults(handler=_cmd_extract)

    tui = sub.add_parser("tui", help="open the TUI on the store (also: bare `kdtui`)")
    _add_store_flags(tui)
    tui.set_defaults(handler=_cmd_tui)

    serve = sub.add_parser("serve", help="serve the TUI in a browser tab (textual-serve)")
    _add_store_flags(serve)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=_cmd_serve)

    from kdtui import cli_capture, cli_commands

    cli_commands.register(sub, _add_store_flags)
    cli_capture.register(sub, _add_store_flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kdtui`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:  # bare `kdtui` opens the TUI
        args.store = args.global_store
        handler = _cmd_tui
    try:
        return handler(args)
    except KdtuiError as exc:
        print(f"kdtui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdtui: interrupted; finished work is saved, rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: keep the traceback, show one line
        from kdtui.settings import logs_dir

        log = logs_dir(getattr(args, "logs", None)) / "crash.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"--- kdtui {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n")
        print(f"kdtui: internal error: {type(exc).__name__}: {first_line(exc)} "
              f"(traceback in {log}; please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
