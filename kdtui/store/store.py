"""The results store: one DuckDB file shared by the TUI, workers and ``kdtui sql``.

``Store`` opens short locked sessions (``kdtui.store.session``), keeps the schema
current (``kdtui.store.schema``) and hands out one repository per table.  All SQL
of kdtui lives in this package; everything else calls these methods and gets rows
by column name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kdtui.config.layout import DB_NAME, StoreLayout
from kdtui.errors import KdtuiError, first_line
from kdtui.store.captures import CapturesRepo
from kdtui.store.jobs import JobsRepo
from kdtui.store.metrics import TrainMetricsRepo
from kdtui.store.predictions import PredictionsRepo
from kdtui.store.runs import RunsRepo
from kdtui.store.schema import MIGRATIONS
from kdtui.store.session import NotAStore, Sessions, WaitReporter
from kdtui.store.triage import TriageRepo


@dataclass(frozen=True)
class QueryResult:
    """Columns and rows of a query; ``truncated`` when rows were capped."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


DEFAULT_BUSY_TIMEOUT_S = 60.0


def busy_timeout_from_env() -> float:
    """``$KDTUI_BUSY_TIMEOUT`` seconds, else 60: how long to wait for a busy store before giving up."""
    raw = os.environ.get("KDTUI_BUSY_TIMEOUT")
    if not raw:
        return DEFAULT_BUSY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise KdtuiError(f"KDTUI_BUSY_TIMEOUT={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise KdtuiError(f"KDTUI_BUSY_TIMEOUT={raw!r} must be positive")
    return value


class Store:
    """The DuckDB results store under ``root`` (``root/kdtui.duckdb``).

    ``create=False`` is for commands that only read: a missing or foreign store is
    refused with one line, and nothing is created or changed.  Read sessions cannot
    reach the file system or extensions (``READ_CONFIG``); ``allow_files=True`` lets
    them read local files, for ``kdtui sql --allow-files`` on a person's own terminal.
    """

    def __init__(self, root: Path | str, busy_timeout: float | None = None, create: bool = True,
                 report_wait: WaitReporter | None = None, allow_files: bool = False) -> None:
        self.root = Path(root)
        if busy_timeout is None:
            busy_timeout = busy_timeout_from_env()
        self.path = StoreLayout(self.root).db
        self.opened_on = "this machine"  # where the DuckDB file is opened (a Ray job's RemoteStore says otherwise)
        self.create = create
        self.sessions = Sessions(self.root, busy_timeout, report_wait, allow_files)
        self._schema_ok = False
        self.runs = RunsRepo(self)
        self.predictions = PredictionsRepo(self)
        self.triage = TriageRepo(self)
        self.captures = CapturesRepo(self)
        self.train_metrics = TrainMetricsRepo(self)
        self.jobs = JobsRepo(self)

    # ------------------------------------------------------------------ sessions

    @contextmanager
    def write(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive read-write session wrapped in one transaction."""
        self.ensure_schema(purpose="write")
        with self.sessions.session(write=True, timeout=timeout) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextmanager
    def read(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A shared read-only session. The first of a process also checks the schema, in the same session when
        the store is current: a read command opens DuckDB once (a connection costs ~40 ms)."""
        if not self._schema_ok and self.path.exists():
            self.sessions.check_folder()
            with self.sessions.session(write=False, timeout=timeout) as con:
                current = self._version(con) >= len(MIGRATIONS)
                if current:
                    self._schema_ok = True
                    yield con
            if current:
                return
        self.ensure_schema()
        with self.sessions.session(write=False, timeout=timeout) as con:
            yield con

    # ---------------------------------------------------------------- migrations

    def ensure_schema(self, purpose: str = "read") -> None:
        """Check the store once per process; migrate only when a shared read shows it is behind."""
        if self._schema_ok:
            return
        self.sessions.check_folder()
        if not self.path.exists():
            if not self.create:
                raise NotAStore(f"no kdtui store at {self.root} (no {DB_NAME}); create one with `kdtui demo` "
                                "or `kdtui eval`, or point --store at an existing store")
            self.migrate()
            return
        with self.sessions.session(write=False, purpose=purpose) as con:
            version = self._version(con)
        if version < len(MIGRATIONS):
            self.migrate()
        self._schema_ok = True

    def _version(self, con: duckdb.DuckDBPyConnection) -> int:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
        if "schema_version" not in tables:
            if tables or not self.create:
                raise NotAStore(f"{self.path} is a DuckDB file but not a kdtui store (no schema_version table); "
                                "point --store at a kdtui store folder")
            return 0
        # fetchall: the session goes on to the caller's own statements, and DuckDB refuses new work on a
        # connection with an unfinished result (fetchone leaves one)
        rows = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
        version = int(rows[0][0]) if rows else 0
        if version > len(MIGRATIONS):
            raise KdtuiError(f"store {self.path} has schema v{version}, newer than this kdtui knows "
                             f"(v{len(MIGRATIONS)}); upgrade kdtui")
        return version

    def migrate(self) -> int:
        """Bring the schema up to date under the exclusive lock; returns the schema version."""
        with self.sessions.session(write=True) as con:
            current = self._version(con)
            if current == 0:
                con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                            "applied_at TIMESTAMP DEFAULT current_timestamp)")
            for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):
                con.execute("BEGIN TRANSACTION")
                for statement in statements:
                    con.execute(statement)
                con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
                con.execute("COMMIT")
        self._schema_ok = True
        return len(MIGRATIONS)

    def change_stamp(self) -> tuple[int, ...]:
        """What the store's files look like now (size and modification time of the database and its WAL), read
        without opening DuckDB: a commit by any process changes it. Pollers (the worker, the TUI) open a
        session only when it moved."""
        stamp: list[int] = []
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                info = path.stat()
            except OSError:
                stamp += [-1, -1]
                continue
            stamp += [info.st_size, info.st_mtime_ns]
        return tuple(stamp)

    def schema_version(self) -> int:
        with self.read() as con:
            return self._version(con)

    def storage_version(self) -> str:
        """DuckDB's storage format of the file ("v1.0.0+": any DuckDB from 1.0 opens it; "v2.0.0+": 2.0 on)."""
        with self.read() as con:
            row = con.execute("SELECT tags['storage_version'] FROM duckdb_databases() WHERE path = ?",
                              [str(self.path)]).fetchone()
            return str(row[0]) if row and row[0] else "unknown"

    # ------------------------------------------------------------------ queries

    def query(self, sql: str, params: Iterable[Any] | None = None, max_rows: int | None = None) -> QueryResult:
        """Trusted SQL from this package (and tests) in a read session; at most ``max_rows`` rows."""
        with self.read() as con:
            try:
                cursor = con.execute(sql, list(params or []))
            except duckdb.InterruptException:
                raise KeyboardInterrupt from None  # Ctrl-C, not a failed query
            except duckdb.Error as exc:
                raise KdtuiError(f"query failed: {first_line(exc)}") from None
            columns = [d[0] for d in cursor.description or []]
            if max_rows is None:
                return QueryResult(columns, cursor.fetchall())
            rows = cursor.fetchmany(max_rows + 1)
        return QueryResult(columns, rows[:max_rows], truncated=len(rows) > max_rows)
