"""Buffered prediction writes that survive a busy, locked or failing store.

Workers call :meth:`PredictionWriter.add` after every batch.  It tries a short
write; if that fails for any reason (other processes hold the store, an outside
DuckDB client has the file open, a disk hiccup), the rows stay in memory and go
out with the next batch.  :meth:`PredictionWriter.close` waits as long as the
store allows and, as a last resort, spills what is left to
``logs/unsaved-*.jsonl``; ``kdtui store recover`` ingests spills.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from kdtui.errors import KdtuiError, first_line
from kdtui.store.store import Store

QUICK_TIMEOUT = 2.0
FINAL_ATTEMPTS = 3
SPILL_GLOB = "unsaved-*.jsonl"


def spill_path(logs: Path, run_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_name)[:60]
    return logs / f"unsaved-{safe}-{os.getpid()}-{int(time.time())}.jsonl"


def append_spill(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class PredictionWriter:
    """Accumulates prediction rows for one run and writes them when the store allows."""

    def __init__(self, store: Store, run_id: int, run_name: str, logs: Path) -> None:
        self.store = store
        self.run_id = run_id
        self.run_name = run_name
        self.logs = logs
        self.pending: list[dict[str, Any]] = []
        self.written = 0
        self.last_error: str | None = None
        self.spilled_to: Path | None = None

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.pending.extend(rows)
        self.flush(QUICK_TIMEOUT)

    def flush(self, timeout: float | None) -> bool:
        """Try to write everything pending; False (rows kept) when the store refused."""
        if not self.pending:
            return True
        try:
            self.written += self.store.predictions.add(self.run_id, self.pending, timeout=timeout)
        except Exception as exc:  # any failure keeps the rows: nothing produced is dropped
            self.last_error = first_line(exc)
            return False
        self.pending = []
        return True

    def close(self) -> Path | None:
        """Write everything still pending; returns the spill file if some rows could only be saved there."""
        for _ in range(FINAL_ATTEMPTS):
            if self.flush(None):
                return None
        path = spill_path(self.logs, self.run_name)
        append_spill(path, [{"run": self.run_name, "row": row} for row in self.pending])
        self.pending = []
        self.spilled_to = path
        return path


def recover(store: Store, logs: Path) -> list[str]:
    """Ingest every spill file under ``logs``; returns one line per file. Spills are renamed when done."""
    report = []
    for path in sorted(logs.glob(SPILL_GLOB)):
        rows: dict[str, list[dict[str, Any]]] = {}
        statuses: dict[str, tuple[str, str | None, dict[str, int] | None]] = {}
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    run = str(record["run"])
                except (ValueError, KeyError, TypeError):
                    raise KdtuiError(f"{path}:{line_no}: not a kdtui spill line; move the file aside and rerun") \
                        from None
                if "row" in record:
                    rows.setdefault(run, []).append(record["row"])
                if "status" in record:
                    statuses[run] = (str(record["status"]), record.get("error"), record.get("warnings"))
        added = 0
        for run in sorted(set(rows) | set(statuses)):
            stored = store.runs.get(run)
            if stored is None:
                raise KdtuiError(f"{path}: run {run!r} is not in {store.path}; point --store at the store it "
                                 "came from")
            added += store.predictions.add(stored.id, rows.get(run, []))
            if run in statuses:
                status, error, warnings = statuses[run]
                store.runs.finish(stored.id, status, error, warnings=warnings)
        path.rename(path.with_suffix(".recovered"))
        count = sum(len(v) for v in rows.values())
        report.append(f"{path.name}: {count} predictions, {added} new, {len(statuses)} run statuses")
    return report
