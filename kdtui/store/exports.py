"""Where a query's rows may be written: never over the store, its locks or a capture, never over an
existing file unless asked, and from the TUI only inside the store's ``exports/`` folder.

The TUI (and so ``kdtui serve``) names a file, not a path: a session that someone else drives
cannot write beside ``~/.bashrc``. The CLI writes where its user's shell points, with the same
refusals.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError, first_line

FORMATS = ("csv", "json", "parquet")
_DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file


def _is_duckdb_file(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(12)[8:12] == _DUCKDB_MAGIC
    except OSError:
        return False


def protected(path: Path, store_root: Path) -> str | None:
    """Why ``path`` must never be written by an export, or None.

    The store's database, its WAL and lock files, anything under ``captures/``, and any DuckDB
    database anywhere (another store, a copy) are refused, with ``--force`` too.
    """
    target = path.resolve()
    root = store_root.resolve()
    if target.parent == root and target.name.startswith("kdtui.duckdb"):
        return "it is the store's database or one of its lock files"
    if target.is_relative_to(StoreLayout(root).captures):
        return "it is inside the store's captures"
    if target.name.endswith((".lock", ".gate", ".wal")):
        return "it is a lock or log file of a database"
    if _is_duckdb_file(target):
        return "it is a DuckDB database"
    return None


def export_target(out: Path, store_root: Path, force: bool) -> Path:
    """The checked path for ``kdtui sql --out``: the folder exists, nothing protected, no silent overwrite."""
    why = protected(out, store_root)
    if why is not None:
        raise KdtuiError(f"--out {out}: refused, {why}; export to another file")
    if out.is_dir():
        raise KdtuiError(f"--out {out} is a folder; name a file inside it")
    if not out.parent.is_dir():
        raise KdtuiError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    if is_stream(out):
        return out  # /dev/stdout, a pipe: nothing there to overwrite
    if (out.exists() or out.is_symlink()) and not force:
        raise KdtuiError(f"--out {out} exists; add --force to overwrite it, or choose another name")
    return out


def is_stream(path: Path) -> bool:
    """A character device or a pipe (``/dev/stdout``, a FIFO): written in place, as it streams."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def exports_folder(store_root: Path) -> Path:
    return StoreLayout(store_root).exports


def tui_export_target(name: str, store_root: Path) -> Path:
    """A file name typed in the TUI, as a path inside the store's ``exports/`` folder (created if missing).

    Only a plain name with a known ending: no folders, no ``..``, no hidden files.
    """
    name = name.strip()
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise KdtuiError(f"export name {name!r}: give a plain file name like result.csv (it goes to "
                         f"{exports_folder(store_root)})")
    if Path(name).suffix.lstrip(".") not in FORMATS:
        raise KdtuiError(f"export name {name!r}: end it in .csv, .json or .parquet")
    return ready_exports_folder(store_root) / name


def ready_exports_folder(store_root: Path) -> Path:
    """The store's ``exports/`` folder, created if missing, where everything the TUI writes goes (exports and
    reports); a symlink or a file there is refused."""
    folder = exports_folder(store_root)
    folder.mkdir(exist_ok=True)
    if folder.is_symlink() or not folder.is_dir():
        raise KdtuiError(f"{folder} is not a plain folder; remove it to export from the TUI")
    return folder


def replace_atomically(tmp: Path, out: Path) -> None:
    """Move a finished export into place (a crash leaves either the old file or the new one)."""
    os.replace(tmp, out)


@contextmanager
def export_file(out: Path) -> Iterator[Path]:
    """The path to write ``out`` through: a temporary file beside it, moved into place when the block completes
    (a crash leaves the old file or the new one, never half of one), or ``out`` itself for a pipe or
    /dev/stdout. An OSError becomes one line naming the file. The one way exports and reports are written."""
    tmp = out if is_stream(out) else out.with_name(f".{out.name}.part")
    try:
        yield tmp
        if tmp != out:
            replace_atomically(tmp, out)
    except OSError as exc:
        raise KdtuiError(f"cannot write {out}: {first_line(exc)}") from None
    finally:
        if tmp != out:
            tmp.unlink(missing_ok=True)
