"""The ``kdtui`` command line: one module per command group, one error policy for all of them.

Heavy imports (torch, transformers, textual) happen inside the handlers so that
``kdtui --help`` and ``kdtui sql`` start fast.  Everything a user can get wrong,
parse errors included, ends in one line on stderr naming the fix; a bug ends in
one line plus a traceback in ``logs/crash.log``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kdtui import __version__
from kdtui.cli.common import Handler, OneLineParser, store_flags
from kdtui.errors import KdtuiError, log_crash
from kdtui.render import visible

COMMAND_MODULES = ("kdtui.cli.results", "kdtui.cli.eval", "kdtui.cli.capture", "kdtui.cli.distill", "kdtui.cli.jobs",
                   "kdtui.cli.app", "kdtui.cli.serve", "kdtui.cli.extract", "kdtui.cli.runs", "kdtui.cli.store",
                   "kdtui.cli.demo")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = OneLineParser(prog="kdtui", description="A terminal workstation for LLM knowledge-distillation "
                           "research. Without a command, opens the TUI on the store.")
    parser.add_argument("--version", action="version", version=f"kdtui {__version__}")
    # Also accepted before the command (`kdtui --store X leaderboard`); the command's own flag wins.
    parser.add_argument("--store", default=None, help="store folder (default: $KDTUI_STORE or ./store)")
    parser.add_argument("--logs", default=None, help="logs folder (default: $KDTUI_LOGS or ./logs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    parents = [store_flags()]
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub, parents)
    return parser


def _crash(exc: BaseException, logs_flag: str | None) -> int:
    from kdtui.config.paths import logs_dir

    print(f"kdtui: internal error: {log_crash(exc, logs_dir(logs_flag))}; please report it", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kdtui`` console script."""
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:  # bare `kdtui` opens the TUI
            from kdtui.cli.app import cmd_tui

            handler = cmd_tui
        return handler(args)
    except KdtuiError as exc:
        print(f"kdtui: error: {visible(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdtui: interrupted; finished work is saved (unsaved rows, if any, are in logs/unsaved-*.jsonl): "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kdtui sql ... | head`
        return 0
    except Exception as exc:  # a bug, not bad input: keep the traceback, show one line
        return _crash(exc, getattr(args, "logs", None))


if __name__ == "__main__":
    sys.exit(main())
