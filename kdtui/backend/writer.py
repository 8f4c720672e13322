"""Buffered prediction writes that survive a busy store.

Workers call :meth:`PredictionWriter.add` after every batch.  It tries a short
write; if other processes hold the store, the rows stay in memory and go out with
the next batch.  :meth:`PredictionWriter.close` waits as long as it must, and as
a last resort saves unwritten rows to a JSON-lines file and says where.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdtui.backend.store import Store, StoreBusy
from kdtui.errors import KdtuiError

QUICK_TIMEOUT = 2.0
FINAL_ATTEMPTS = 5


class PredictionWriter:
    """Accumulates prediction rows for one run and writes them when the store allows."""

    def __init__(self, store: Store, run_id: int, spill_dir: Path) -> None:
        self.store = store
        self.run_id = run_id
        self.spill_dir = spill_dir
        self.pending: list[dict[str, Any]] = []
        self.written = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.pending.extend(rows)
        self._try_flush(QUICK_TIMEOUT)

    def _try_flush(self, timeout: float | None) -> bool:
        if not self.pending:
            return True
        try:
            self.written += self.store.add_predictions(self.run_id, self.pending, timeout=timeout)
        except StoreBusy:
            return False
        self.pending = []
        return True

    def close(self) -> None:
        """Write everything still pending; never drops rows silently."""
        for _ in range(FINAL_ATTEMPTS):
            if self._try_flush(None):
                return
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        spill = self.spill_dir / f"unsaved-run{self.run_id}.jsonl"
        with spill.open("a", encoding="utf-8") as fh:
            for row in self.pending:
                fh.write(json.dumps(row) + "\n")
        count = len(self.pending)
        self.pending = []
        raise KdtuiError(f"store stayed busy; {count} predictions saved to {spill}; "
                         "rerun the same command to finish the run")
