"""Training metrics: appended to a per-run file at every step, ingested into the store in the background.

The training loop never waits on the store. Each step is one JSON line, written and flushed before the
next step begins, so a SIGKILL loses nothing that was logged. A background thread reads the lines it
has not yet ingested every ``interval`` seconds and upserts them into ``train_metrics``; a store
that is busy (another writer, an outside DuckDB client holding the file) makes it try again on the
next tick, from the same offset. A restarted run re-reads the file from the start: an ingested
step replaces itself, so nothing is counted twice.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

from kdtui.store import StoreAccess

INGEST_INTERVAL_S = 2.0
INGEST_TIMEOUT_S = 1.0


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


class MetricsLog:
    """The append-only metrics file of one run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        self._fh.write(json.dumps(_json_safe(row), sort_keys=True) + "\n")
        self._fh.flush()  # in the kernel now: a SIGKILL of this process cannot lose it

    def close(self) -> None:
        self._fh.close()


def read_new_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete lines after byte ``offset`` and the offset after the last complete one."""
    if not path.is_file():
        return [], offset
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
    rows = []
    for line in data[:end].splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn line from a crash mid-write: the step is recomputed after resume
    return rows, offset + end


class MetricsIngester:
    """Moves a metrics file into ``train_metrics`` from a background thread."""

    def __init__(self, store: StoreAccess, run_id: int, path: Path, interval: float = INGEST_INTERVAL_S) -> None:
        self.store, self.run_id, self.path, self.interval = store, run_id, path, interval
        self.offset = 0  # from the start: re-ingesting a step replaces it
        self.ingested = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"metrics-{run_id}", daemon=True)

    def start(self) -> MetricsIngester:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.ingest(INGEST_TIMEOUT_S)

    def ingest(self, timeout: float | None) -> bool:
        """Ingest what is new; False (and nothing lost) when the store could not take it in ``timeout``."""
        with self._lock:
            rows, offset = read_new_lines(self.path, self.offset)
            if not rows:
                self.offset = offset
                return True
            try:
                self.store.train_metrics.upsert(self.run_id, rows, timeout=timeout)
            except Exception as exc:  # busy, locked by an outside client, or gone: the file keeps the rows
                self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return False
            self.offset, self.ingested = offset, self.ingested + len(rows)
            self.last_error = None
            return True

    def close(self, timeout: float) -> bool:
        """Stop the thread and ingest the rest; False when the store stayed busy (the file still has it all)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.ingest(timeout)
