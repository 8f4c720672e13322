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
from kdtui.cli.commands import COMMANDS
from kdtui.cli.common import Handler, OneLineParser, store_flags
from kdtui.errors import KdtuiError, log_crash
from kdtui.render import visible


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``kdtui`` parser. Given the command line, only the module of the command it names registers its flags;
    every other command is listed by name and help line (``kdtui.cli.commands``), so ``kdtui --help`` and a
    command import no command module they do not use. Without one, every command's flags (for tests and docs)."""
    import importlib

    parser = OneLineParser(prog="kdtui", description="A terminal workstation for LLM knowledge-distillation "
                           "research. Without a command, opens the TUI on the store.")
    parser.add_argument("--version", action="version", version=f"kdtui {__version__}")
    # Also accepted before the command (`kdtui --store X leaderboard`); the command's own flag wins.
    parser.add_argument("--store", default=None, help="store folder (default: $KDTUI_STORE or ./store)")
    parser.add_argument("--logs", default=None, help="logs folder (default: $KDTUI_LOGS or ./logs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    parents = [store_flags()]
    chosen = None if argv is None else _command_of(argv)
    for module in dict.fromkeys(module for module, _ in COMMANDS.values()):
        if argv is None or (chosen is not None and COMMANDS[chosen][0] == module):
            importlib.import_module(module).register(sub, parents)
    for name, (_, help_text) in sorted(COMMANDS.items()):
        if name not in sub.choices:  # listed in `kdtui --help`; never parsed (it is not the command given)
            sub.add_parser(name, help=help_text.replace("%", "%%"), add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option or an option's value), if a known one."""
    words = iter(argv)
    for word in words:
        if word in ("--store", "--logs"):
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _crash(exc: BaseException, logs_flag: str | None) -> int:
    from kdtui.config.paths import logs_dir

    print(f"kdtui: internal error: {log_crash(exc, logs_dir(logs_flag))}; please report it", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kdtui`` console script."""
    args: argparse.Namespace | None = None
    try:
        line = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(line).parse_args(line)
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
