"""Where kdtui keeps its runtime data: flag, then environment, then ./store and ./logs.

Inside the store, every path comes from :class:`kdtui.config.layout.StoreLayout`.
"""

from __future__ import annotations

import os
from pathlib import Path


def store_dir(flag: str | Path | None = None) -> Path:
    """The store folder (DuckDB file, captures, adapters, models)."""
    return Path(flag or os.environ.get("KDTUI_STORE") or "store").expanduser()


def logs_dir(flag: str | Path | None = None) -> Path:
    """The logs folder."""
    return Path(flag or os.environ.get("KDTUI_LOGS") or "logs").expanduser()

