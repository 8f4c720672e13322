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
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdtui.errors import KdtuiError, first_line
from kdtui.jsonl import Repairs, jsonl_objects
from kdtui.store.access import StoreAccess
from kdtui.store.runs import STATUSES
from kdtui.store.store import Store

QUICK_TIMEOUT = 2.0
FINAL_ATTEMPTS = 3
SPILL_GLOB = "unsaved-*.jsonl"
# The error of a run that ended well while its rows could only be spilled: recovering them settles it.
SPILL_PENDING = "predictions not yet in the store"


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

    def __init__(self, store: StoreAccess, run_id: int, run_name: str, logs: Path) -> None:
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


class SpillProblem(Exception):
    """Why a spill file cannot be ingested as it is."""


_NUMBER_FIELDS = ("gold", "value", "n_new_tokens")
_TEXT_FIELDS = ("question", "prompt", "response", "finish_reason", "rule", "protocol", "kdtui_version")


def _check_row(row: Any) -> None:
    if not isinstance(row, dict):
        raise SpillProblem("a row that is not an object")
    if not isinstance(row.get("item_id"), str | int) or isinstance(row.get("item_id"), bool):
        raise SpillProblem("a row without an item_id")
    for name in _NUMBER_FIELDS:
        value = row.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value)):
            raise SpillProblem(f"{name} {value!r} is not a finite number")
    for name in _TEXT_FIELDS:
        if row.get(name) is not None and not isinstance(row[name], str):
            raise SpillProblem(f"{name} is not text")
    for name in ("needs_review", "correct"):
        if row.get(name) is not None and not isinstance(row[name], bool):
            raise SpillProblem(f"{name} {row[name]!r} is not true/false")
    candidates = row.get("candidates")
    if candidates is not None and (not isinstance(candidates, list) or not all(
            isinstance(c, int | float) and not isinstance(c, bool) for c in candidates)):
        raise SpillProblem("candidates are not a list of numbers")


@dataclass
class Spill:
    rows: dict[str, list[dict[str, Any]]]
    statuses: dict[str, tuple[str, str | None, dict[str, int] | None]]
    repairs: Repairs


def read_spill(path: Path) -> Spill:
    """Every line of a spill file, checked; :class:`SpillProblem` names the first bad one."""
    spill = Spill({}, {}, Repairs())
    try:
        with path.open(encoding="utf-8") as fh:
            for line_no, record in jsonl_objects(fh, path.name, spill.repairs):
                run = record.get("run")
                if not isinstance(run, str) or not ("row" in record or "status" in record):
                    raise SpillProblem(f"line {line_no} is not a kdtui spill line")
                if "row" in record:
                    try:
                        _check_row(record["row"])
                    except SpillProblem as exc:
                        raise SpillProblem(f"line {line_no}: {exc}") from None
                    spill.rows.setdefault(run, []).append(record["row"])
                if "status" in record:
                    status, warnings = record["status"], record.get("warnings")
                    if status not in STATUSES or not (warnings is None or isinstance(warnings, dict)):
                        raise SpillProblem(f"line {line_no}: status {status!r} is not one of {', '.join(STATUSES)}")
                    error = record.get("error")
                    spill.statuses[run] = (status, None if error is None else str(error), warnings)
    except KdtuiError as exc:  # not JSON, not UTF-8
        raise SpillProblem(str(exc).removeprefix(f"{path.name}:")) from None
    return spill


def settled_status(status: str, error: str | None) -> tuple[str, str | None]:
    """A run that ended well but could only spill its rows is done once they are in the store."""
    if status == "interrupted" and error is not None and error.endswith(SPILL_PENDING):
        return "done", None
    return status, error


def recover(store: Store, logs: Path) -> list[str]:
    """Ingest every good spill file under ``logs``; returns one line per file.

    A file that cannot be read as a spill is renamed ``*.quarantined`` (named, with why) and the others
    go on; one whose runs are not in this store is left for the store it came from. Each run's state is
    set from what arrived: the status the spill carries, or ``done`` for a run that was only waiting
    for these rows. Ingested files are renamed ``*.recovered``.
    """
    report = []
    for path in sorted(logs.glob(SPILL_GLOB)):
        try:
            spill = read_spill(path)
        except SpillProblem as exc:
            quarantine = path.with_suffix(".quarantined")
            path.rename(quarantine)
            report.append(f"{path.name}: not ingested, moved to {quarantine.name}: {exc}")
            continue
        names = sorted(set(spill.rows) | set(spill.statuses))
        stored = {name: store.runs.get(name) for name in names}
        missing = [name for name, run in stored.items() if run is None]
        if missing:
            report.append(f"{path.name}: left as it is: run {missing[0]!r} is not in {store.path} (point --store at "
                          "the store it came from)")
            continue
        added, settled = 0, []
        for name in names:
            run = stored[name]
            assert run is not None
            added += store.predictions.add(run.id, spill.rows.get(name, []))
            status, error, warnings = spill.statuses.get(name, (run.status, run.error, None))
            status, error = settled_status(status, error)
            if (status, error) != (run.status, run.error) or name in spill.statuses:
                store.runs.finish(run.id, status, error, warnings=warnings or run.warnings or None)
                settled.append(f"{name} {status}")
        path.rename(path.with_suffix(".recovered"))
        count = sum(len(v) for v in spill.rows.values())
        report.append(f"{path.name}: {count} predictions, {added} new" +
                      (f"; runs now {', '.join(settled)}" if settled else "") + spill.repairs.note())
    return report
