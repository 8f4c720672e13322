"""Limits on what a person's SQL may take from the server: time, memory and scratch disk.

Defined once here (no DuckDB import), read by the store's read sessions, ``kdtui sql`` and the TUI.
"""

from __future__ import annotations

import os

# The TUI's console has no Ctrl-C of its own to fall back on: a runaway query stops by itself.
TUI_SQL_TIMEOUT_S = 300.0
# A read session may use this much of the machine's memory (DuckDB's own default is 80%, which starves
# the training and evaluation jobs sharing the server) and spill at most SQL_TEMP_LIMIT to disk.
SQL_MEMORY_SHARE = 0.25
SQL_MEMORY_CAP_BYTES = 8 << 30
SQL_TEMP_LIMIT = "8GiB"


def sql_memory_limit() -> str:
    """DuckDB's ``memory_limit`` for read sessions: a quarter of RAM, at most 8 GiB (``$KDTUI_SQL_MEMORY`` wins)."""
    override = os.environ.get("KDTUI_SQL_MEMORY")
    if override:
        return override
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 4 * SQL_MEMORY_CAP_BYTES
    return f"{max(256, int(min(total * SQL_MEMORY_SHARE, SQL_MEMORY_CAP_BYTES)) >> 20)}MiB"
