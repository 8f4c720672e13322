"""Run and capture names: a safe character set and a length limit, checked where names enter.

A capture name becomes a folder (``store/captures/NAME``), so it is one plain path
component. A run name never touches the file system; it may hold ``/`` and ``:``
(``demo/SmolLM2/plain``, ``capture:base``) but no ``..`` component.
"""

from __future__ import annotations

import re
from pathlib import Path

from kdtui.errors import KdtuiError

CAPTURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:/-]{0,199}")
# The short process name (/proc/PID/comm) of a job forked by the worker's zygote, whose command line is the
# zygote's: what says "a kdtui job" where a process is described (who holds the store).
FORKED_JOB_NAME = "kdtui-job"
# A capture's process is recorded in the runs table (beside evaluations and distillations) under this prefix:
# the store's captures_live view joins on it, so the recipe and the view must spell it alike.
CAPTURE_RUN_PREFIX = "capture:"


def check_capture_name(name: str) -> str:
    if not CAPTURE_NAME.fullmatch(name):
        raise ValueError(f"capture name {name!r} must be 1-100 letters, digits, '.', '_', '+' or '-', starting "
                         "with a letter or digit (it names a folder)")
    return name


def capture_run_name(capture: str) -> str:
    """The runs-table name of a capture's process."""
    return CAPTURE_RUN_PREFIX + capture


def check_run_name(name: str) -> str:
    if not RUN_NAME.fullmatch(name) or ".." in name.split("/") or "//" in name or name.endswith("/"):
        raise ValueError(f"run name {name!r} must be 1-200 letters, digits, '.', '_', '+', ':', '-' or '/' "
                         "(no empty or '..' parts), starting with a letter or digit")
    return name


def safe_run_name(text: str) -> str:
    """``text`` with every character a run name may not hold replaced by ``_`` (for default names)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+:/-]+", "_", text).strip("/_.") or "run"
    cleaned = "/".join(part if part not in ("", ".", "..") else "_" for part in cleaned.split("/"))
    return check_run_name(cleaned[:200] if cleaned[0].isalnum() else f"r{cleaned}"[:200])


def inside(root: Path, path: Path) -> Path:
    """``path`` resolved, refused unless it lies under ``root`` (names cannot lead out of the store)."""
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise KdtuiError(f"{path} is outside the store {root}; choose a plain name")
    return resolved
