"""The results store: one DuckDB file shared by the TUI, workers and ``kdtui sql``.

Concurrency design
------------------
DuckDB takes an exclusive OS lock on its file: while one process has it open
read-write, no other process can open it at all.  kdtui therefore never keeps the
file open.  Every access is a short session guarded by a cross-process lock on a
sibling file (``kdtui.duckdb.lock``, ``fcntl.flock``):

* writers take the lock exclusively, open read-write, run one transaction, close;
* readers take it shared, open read-only, query, close (many readers at once).

A process that finds the store busy polls the lock with exponential backoff up to
``busy_timeout`` seconds and then raises :class:`StoreBusy`; callers that produce
results (evaluation workers) keep them in memory and retry, so nothing is lost.
The lock lives on the local file system of the machine that runs the jobs, which
is where kdtui runs (the GPU server).  A single-owner server process would also
work, but would add a daemon to babysit; short locked sessions cost ~15 ms each.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kdtui.backend.schema import MIGRATIONS
from kdtui.errors import KdtuiError, first_line

DB_NAME = "kdtui.duckdb"
PREDICTION_COLUMNS = (
    "item_id", "question", "gold", "prompt", "response", "n_new_tokens", "finish_reason",
    "value", "rule", "needs_review", "correct", "candidates",
)


class StoreBusy(KdtuiError):
    """The store stayed locked by other processes for longer than the wait allowed."""


class ReadOnlyViolation(KdtuiError):
    """A statement that would change the store was sent to a read-only entry point."""


@dataclass(frozen=True)
class QueryResult:
    """Columns and rows of a read-only query; ``truncated`` when rows were capped."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False


# Statement types a read-only query may contain.
_READ_ONLY_TYPES = {"SELECT", "EXPLAIN", "PRAGMA"}


def check_read_only(sql: str) -> list[str]:
    """The statements of ``sql``; raises :class:`ReadOnlyViolation` for any write or DDL."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise KdtuiError(f"SQL does not parse: {first_line(exc)}") from None
    if not statements:
        raise KdtuiError("no SQL statement given")
    for statement in statements:
        kind = statement.type.name
        text = statement.query.strip()
        if kind not in _READ_ONLY_TYPES or (kind == "PRAGMA" and "=" in text):
            first_word = text.split(None, 1)[0].upper() if text else kind
            raise ReadOnlyViolation(
                f"refused: {first_word} changes the store; kdtui sql is read-only "
                "(use SELECT, or export with --format/--out)"
            )
    return [s.query for s in statements]


class Store:
    """The DuckDB results store under ``root`` (``root/kdtui.duckdb``)."""

    def __init__(self, root: Path | str, busy_timeout: float = 60.0) -> None:
        self.root = Path(root)
        self.path = self.root / DB_NAME
        self.lock_path = self.root / (DB_NAME + ".lock")
        self.gate_path = self.root / (DB_NAME + ".gate")
        self.busy_timeout = busy_timeout
        self._migrated = False

    # ------------------------------------------------------------------ sessions

    def _acquire(self, fd: int, mode: int, deadline: float) -> None:
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"store {self.path} stayed busy for {self.busy_timeout:.0f}s; "
                        "results are kept in memory, retry later"
                    ) from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.02)

    @contextmanager
    def _locked(self, exclusive: bool, timeout: float | None = None) -> Iterator[None]:
        """Hold the store lock; writers are preferred so a stream of readers cannot starve them.

        A writer first takes the gate exclusively (new readers wait at the gate), then
        the store lock once current readers finish, and lets the gate go.  A reader
        passes the gate shared and holds the store lock shared.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + (self.busy_timeout if timeout is None else timeout)
        gate = os.open(self.gate_path, os.O_RDWR | os.O_CREAT, 0o644)
        lock = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                self._acquire(gate, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline)
                self._acquire(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline)
            finally:
                os.close(gate)  # closing releases the flock
            yield
        finally:
            os.close(lock)

    @contextmanager
    def write(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive read-write session wrapped in one transaction."""
        with self._locked(exclusive=True, timeout=timeout):
            con = self._connect(read_only=False)
            try:
                if not self._migrated:
                    self._migrate(con)
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    @contextmanager
    def read(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A shared read-only session; creates and migrates the store if needed."""
        if not self._migrated:
            self.migrate()
        with self._locked(exclusive=False, timeout=timeout):
            con = self._connect(read_only=True)
            try:
                yield con
            finally:
                con.close()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise KdtuiError(
                f"cannot open store {self.path}: {first_line(exc)}; "
                "check the file, or point --store at another folder"
            ) from None
        except duckdb.Error as exc:
            raise KdtuiError(
                f"{self.path} is not a usable kdtui store ({first_line(exc)}); "
                "point --store at another folder"
            ) from None

    # ---------------------------------------------------------------- migrations

    def migrate(self) -> int:
        """Bring the schema up to date; returns the schema version."""
        with self._locked(exclusive=True):
            con = self._connect(read_only=False)
            try:
                return self._migrate(con)
            finally:
                con.close()

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> int:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMP DEFAULT current_timestamp)"
        )
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise KdtuiError(
                f"store {self.path} has schema v{current}, newer than this kdtui knows "
                f"(v{len(MIGRATIONS)}); upgrade kdtui"
            )
        for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):
            con.execute("BEGIN TRANSACTION")
            for statement in statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
            con.execute("COMMIT")
        self._migrated = True
        return len(MIGRATIONS)

    def schema_version(self) -> int:
        with self.read() as con:
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    # --------------------------------------------------------------------- runs

    def ensure_run(self, name: str, kind: str, config: dict[str, Any]) -> int:
        """The id of run ``name``, created with ``config`` if new (marked running)."""
        payload = json.dumps(config, sort_keys=True, default=str)
        with self.write() as con:
            row = con.execute("SELECT id, kind FROM runs WHERE name = ?", [name]).fetchone()
            if row is not None:
                if row[1] != kind:
                    raise KdtuiError(f"run {name!r} exists as a {row[1]} run; choose another --run name")
                con.execute(
                    "UPDATE runs SET status = 'running', updated_at = current_timestamp WHERE id = ?",
                    [row[0]],
                )
                return int(row[0])
            created = con.execute(
                "INSERT INTO runs (kind, name, config, status) VALUES (?, ?, ?, 'running') RETURNING id",
                [kind, name, payload],
            ).fetchone()
            assert created is not None
            return int(created[0])

    def run_config(self, name: str) -> dict[str, Any] | None:
        with self.read() as con:
            row = con.execute("SELECT config FROM runs WHERE name = ?", [name]).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_run_status(self, run_id: int, status: str) -> None:
        with self.write() as con:
            con.execute(
                "UPDATE runs SET status = ?, updated_at = current_timestamp WHERE id = ?", [status, run_id]
            )

    # ----------------------------------------------------------------- captures

    def register_capture(self, name: str, manifest: dict[str, Any], folder: Path) -> None:
        """Insert or refresh the captures row of one capture from its manifest."""
        shards = manifest["shards"]
        tokens = int(manifest["n_tokens"])
        size = sum(int(s["bytes"]) for s in shards)
        hist = [sum(int(s.get("entropy_hist", [0] * 16)[i]) for s in shards) for i in range(16)]
        mass = sum(float(s.get("topk_mass_sum", 0.0)) for s in shards)
        entropy = sum(float(s.get("entropy_sum", 0.0)) for s in shards)
        values = [
            name, manifest["teacher"], manifest["backend"], manifest["strategy"]["name"], manifest["mode"],
            manifest["format"], manifest["k"], manifest["temperatures"], manifest["n_examples"], tokens, size,
            size / tokens if tokens else None, mass / tokens if tokens else None,
            entropy / tokens if tokens else None, hist, manifest["status"], str(folder),
        ]
        with self.write() as con:
            con.execute("DELETE FROM captures WHERE name = ?", [name])
            con.execute(
                "INSERT INTO captures (name, teacher, backend, strategy, mode, format, k, temperatures, n_examples, "
                "n_tokens, bytes, bytes_per_token, mean_topk_mass, mean_entropy, entropy_hist, status, path) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)

    # -------------------------------------------------------------- predictions

    def add_predictions(self, run_id: int, rows: Sequence[dict[str, Any]],
                        timeout: float | None = None) -> int:
        """Insert predictions; an item already stored for the run is left as it is.

        Returns how many rows were new.
        """
        if not rows:
            return 0
        import pyarrow as pa

        columns = {name: [row.get(name) for row in rows] for name in PREDICTION_COLUMNS}
        columns["item_id"] = [str(v) for v in columns["item_id"]]
        batch = pa.table({
            **{k: v for k, v in columns.items() if k != "candidates"},
            "candidates": pa.array(columns["candidates"], type=pa.list_(pa.float64())),
        })
        names = ", ".join(PREDICTION_COLUMNS)
        with self.write(timeout=timeout) as con:
            con.register("incoming", batch)
            inserted = con.execute(
                f"INSERT INTO predictions (run_id, {names}) "
                f"SELECT DISTINCT ON (item_id) ?, {names} FROM incoming "
                "ON CONFLICT DO NOTHING",
                [run_id],
            ).fetchall()
        return int(inserted[0][0]) if inserted else 0

    def done_items(self, run_id: int) -> set[str]:
        with self.read() as con:
            rows = con.execute("SELECT item_id FROM predictions WHERE run_id = ?", [run_id]).fetchall()
        return {r[0] for r in rows}

    # ------------------------------------------------------------------- triage

    def decide(self, run_id: int, item_id: str, value: float | None) -> int:
        """Record a human's answer for one prediction now; returns the decision id.

        ``value`` None means "the response gives no answer".
        """
        with self.write() as con:
            previous = self._effective_value(con, run_id, item_id)
            row = con.execute(
                "INSERT INTO triage (run_id, item_id, value, previous_value) VALUES (?, ?, ?, ?) RETURNING id",
                [run_id, item_id, value, previous],
            ).fetchone()
            assert row is not None
            return int(row[0])

    def undo(self, decision_id: int) -> float | None:
        """Append an undo of one decision; returns the value in force afterwards."""
        with self.write() as con:
            row = con.execute(
                "SELECT run_id, item_id, value, undone FROM triage WHERE id = ?", [decision_id]
            ).fetchone()
            if row is None or row[3]:
                raise KdtuiError(f"no triage decision {decision_id} to undo")
            already = con.execute("SELECT 1 FROM triage WHERE undoes = ?", [decision_id]).fetchone()
            if already:
                raise KdtuiError(f"triage decision {decision_id} was already undone")
            run_id, item_id, value = row[0], row[1], row[2]
            con.execute(
                "INSERT INTO triage (run_id, item_id, value, previous_value, undone, undoes) "
                "VALUES (?, ?, NULL, ?, TRUE, ?)",
                [run_id, item_id, value, decision_id],
            )
            return self._effective_value(con, run_id, item_id)

    @staticmethod
    def _effective_value(con: duckdb.DuckDBPyConnection, run_id: int, item_id: str) -> float | None:
        row = con.execute(
            "SELECT final_value FROM predictions_final WHERE run_id = ? AND item_id = ?", [run_id, item_id]
        ).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ queries

    def query(self, sql: str, params: Iterable[Any] | None = None, max_rows: int | None = None,
              read_only_check: bool = True) -> QueryResult:
        """Run read-only SQL; returns at most ``max_rows`` rows (all when None)."""
        statements = check_read_only(sql) if read_only_check else [sql]
        with self.read() as con:
            try:
                for statement in statements[:-1]:
                    con.execute(statement)
                cursor = con.execute(statements[-1], list(params or []))
            except duckdb.Error as exc:
                raise KdtuiError(f"query failed: {first_line(exc)}") from None
            columns = [d[0] for d in cursor.description or []]
            if max_rows is None:
                return QueryResult(columns, cursor.fetchall())
            rows = cursor.fetchmany(max_rows + 1)
        return QueryResult(columns, rows[:max_rows], truncated=len(rows) > max_rows)

    def query_arrow(self, sql: str, max_rows: int,
                    on_connect: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> tuple[Any, bool]:
        """Read-only SQL into an Arrow table of at most ``max_rows`` rows, and whether more exist.

        ``on_connect`` receives the live connection so another thread can
        ``interrupt()`` a long query.
        """
        import pyarrow as pa

        statements = check_read_only(sql)
        with self.read() as con:
            if on_connect is not None:
                on_connect(con)
            try:
                for statement in statements[:-1]:
                    con.execute(statement)
                reader = con.sql(statements[-1]).to_arrow_reader(min(max_rows + 1, 100_000))
                batches, count = [], 0
                for batch in reader:
                    batches.append(batch)
                    count += batch.num_rows
                    if count > max_rows:
                        break
            except duckdb.InterruptException:
                raise KdtuiError("query cancelled") from None
            except duckdb.Error as exc:
                raise KdtuiError(f"query failed: {first_line(exc)}") from None
            finally:
                if on_connect is not None:
                    on_connect(None)  # type: ignore[arg-type]
            table = pa.Table.from_batches(batches, schema=reader.schema)
        return table.slice(0, max_rows), count > max_rows

    def leaderboard(self) -> QueryResult:
        return self.query("SELECT * FROM leaderboard ORDER BY accuracy DESC, name", read_only_check=False)
