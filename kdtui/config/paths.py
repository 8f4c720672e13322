"""Where kdtui keeps its runtime data: flag, then environment, then ./store and ./logs."""

from __future__ import annotations

import os
from pathlib import Path


def store_dir(flag: str | Path | None = None) -> Path:
    """The store folder (DuckDB file, captures, adapters, models)."""
    return Path(flag or os.environ.get("KDTUI_STORE") or "store").expanduser()


def logs_dir(flag: str | Path | None = None) -> Path:
    """The logs folder."""
    return Path(flag or os.environ.get("KDTUI_LOGS") or "logs").expanduser()


def run_folder(root: Path, run: str) -> Path:
    """``store/distill/<run>``: '/' and ':' in a run name become '__' (a run name is one folder).

    Here, not in the distill recipe, so planning a job (``kdtui run --dry-run``, the TUI's enqueue) does not
    import torch for a path.
    """
    return root / "distill" / run.replace("/", "__").replace(":", "_")


def output_name(lora: bool) -> str:
    """The folder a finished distill run leaves in its run folder: its PEFT adapter, or the whole model."""
    return "adapter" if lora else "model"


def trained_output(root: Path, run: str, lora: bool) -> Path:
    """What a finished distill run leaves to evaluate."""
    return run_folder(root, run) / output_name(lora)
