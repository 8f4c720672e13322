"""The one exception type users see: a one-line message that names the fix; bugs go to crash.log."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path


class KdtuiError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (or its type name)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def log_crash(exc: BaseException, logs: Path | None = None) -> str:
    """Append the current traceback to ``logs/crash.log``; returns a one-line summary naming the log."""
    from kdtui.config.paths import logs_dir

    log = (logs or logs_dir()) / "crash.log"
    summary = f"{type(exc).__name__}: {first_line(exc)}"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"--- kdtui {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n")
    except OSError:
        return f"{summary} (no crash log: {log.parent} is not writable)"
    return f"{summary} (traceback in {log})"
