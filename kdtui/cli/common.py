"""What every command shares: the one-line parser, the --store/--logs parent, opening the store."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from kdtui.cli.commands import COMMANDS
from kdtui.config.paths import logs_dir, store_dir
from kdtui.errors import KdtuiError

if TYPE_CHECKING:  # duckdb loads when a command opens the store, not for parsing or --help
    from kdtui.store import Store, StoreAccess

Handler = Callable[[argparse.Namespace], int]
Parents = list[argparse.ArgumentParser]


class UsageError(KdtuiError):
    """A command line argparse could not parse."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming the fix, under the CLI's error policy."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def store_flags() -> argparse.ArgumentParser:
    """The parent parser of every store-backed command.

    The defaults are SUPPRESS so that a flag given before the command
    (``kdtui --store X leaderboard``) is not overwritten by an absent one after it.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--store", default=argparse.SUPPRESS,
                        help="store folder (default: $KDTUI_STORE or ./store)")
    parent.add_argument("--logs", default=argparse.SUPPRESS, help="logs folder (default: $KDTUI_LOGS or ./logs)")
    return parent


def add_command(sub: Any, name: str, handler: Handler, parents: Parents,
                description: str | None = None) -> argparse.ArgumentParser:
    """Register ``name`` (a command of :data:`kdtui.cli.commands.COMMANDS`, whose line is its help)."""
    help_text = COMMANDS[name][1]
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text.replace("%", "%%"), parents=parents,
                                                     description=description or help_text)
    parser.set_defaults(handler=handler)
    return parser


def open_store(args: argparse.Namespace, create: bool = False, allow_files: bool = False) -> Store:
    """The store named by --store (or the environment), on this machine; read-only commands pass
    ``create=False``."""
    from kdtui.store import Store

    return Store(store_dir(getattr(args, "store", None)), create=create, allow_files=allow_files)


def open_recipe_store(args: argparse.Namespace) -> StoreAccess:
    """The store a recipe writes to: inside a Ray job of kdtui's Ray executor (every rank of a launched
    distillation too), the worker's store through its Ray actor; elsewhere the store on this machine."""
    from kdtui.jobs.ray_store import remote_store

    root = store_dir(getattr(args, "store", None))
    return remote_store(root) or open_store(args, create=True)


def logs(args: argparse.Namespace) -> Path:
    return logs_dir(getattr(args, "logs", None))
