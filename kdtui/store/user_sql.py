"""The one entry point for SQL typed by a person: ``kdtui sql`` and the TUI console.

The statement check refuses anything but reads before any statement runs, parsed by the session's own
connection (a parse by DuckDB's default connection would open a second database, ~20 ms of every
``kdtui sql``); the session itself is read-only, so a write that slipped past the check still fails.
"""

from __future__ import annotations

import csv
import json
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from kdtui.errors import KdtuiError, first_line
from kdtui.store.exports import export_file

if TYPE_CHECKING:
    from kdtui.store.store import QueryResult, Store

T = TypeVar("T")
EXPORT_BATCH_ROWS = 50_000
# Every query that is running in this process, so that an exit can stop them all (see interrupt_all).
_LIVE: weakref.WeakSet[UserQuery] = weakref.WeakSet()


class ReadOnlyViolation(KdtuiError):
    """A statement that would change the store was sent to a read-only entry point."""


# PRAGMAs that only read; every other one (import_database, threads=, ...) is refused.
READ_PRAGMAS = {"table_info", "show_tables", "show_tables_expanded", "show_databases", "database_list",
                "database_size", "storage_info", "version", "platform", "functions", "collations", "show",
                "metadata_info", "user_agent"}
_REFUSED = "kdtui sql is read-only (use SELECT, or export with --format/--out)"


def _refuse(word: str) -> ReadOnlyViolation:
    return ReadOnlyViolation(f"refused: {word} changes the store or reaches outside it; {_REFUSED}")


def _check_statement(statement: Any, parser: Any) -> None:
    kind = statement.type.name
    text = statement.query.strip().rstrip(";").strip()
    first_word = text.split(None, 1)[0].upper() if text else kind
    if kind == "SELECT":
        return
    if kind == "MULTI" and re.search(r"(?i)\bpivot\b", text):
        return  # DuckDB runs a PIVOT without an IN list as several statements; the session stays read-only
    if kind == "PRAGMA":
        match = re.match(r"(?is)pragma\s+([a-z_]+)\s*(.*)$", text)
        if match is None or match.group(1).lower() not in READ_PRAGMAS or match.group(2).startswith("="):
            raise _refuse(f"PRAGMA {match.group(1) if match else ''}".strip())
        return
    if kind == "EXPLAIN":
        # Only a plan of a read: EXPLAIN ANALYZE runs what it explains (COPY, SET log_query_path, ...).
        inner = re.sub(r"(?is)^explain\s+(analyze\s+)?", "", text)
        try:
            explained = parser.extract_statements(inner)
        except duckdb.Error:
            explained = []
        if len(explained) == 1 and explained[0].type.name == "SELECT":
            return
        raise _refuse("EXPLAIN of anything but a SELECT")
    raise _refuse(first_word)


def check_read_only(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """The statements of ``sql`` (parsed by ``con``, else DuckDB's default connection); raises
    :class:`ReadOnlyViolation` for anything but a read.

    A friendly first line of defence: the session itself is read-only and locked (see
    ``session.READ_CONFIG``), so what slips past this check still cannot write or reach files.
    """
    try:
        statements = (con or duckdb).extract_statements(sql)
    except duckdb.Error as exc:
        raise KdtuiError(f"SQL does not parse: {first_line(exc)}") from None
    if not statements:
        raise KdtuiError("no SQL statement given")
    for statement in statements:
        _check_statement(statement, con or duckdb)
    return [s.query for s in statements]


def _user_error(exc: duckdb.Error) -> KdtuiError:
    """DuckDB's refusals, said as what kdtui allows."""
    message = first_line(exc)
    if "file system operations are disabled" in message:
        return ReadOnlyViolation("refused: SQL here cannot read or write files (on your own terminal, "
                                 "`kdtui sql --allow-files` may read local files)")
    if "configuration has been locked" in message:
        return ReadOnlyViolation("refused: settings cannot be changed from kdtui's SQL")
    if "extension" in message and "Catalog Error" in message:
        return ReadOnlyViolation(f"refused: kdtui never installs or loads extensions on the fly ({message})")
    return KdtuiError(f"query failed: {message}")


def interrupt_all(reason: str = "query cancelled") -> None:
    """Stop every query running in this process (an app quitting must not wait on DuckDB)."""
    for query in list(_LIVE):
        query.interrupt(reason)


def wait_interruptibly(query: UserQuery, work: Callable[[], T]) -> T:
    """``work`` (which runs ``query``) in a thread, while this thread waits for it: Ctrl-C here interrupts
    DuckDB and returns within moments, the store released. (DuckDB in the main thread would not see it.)"""
    outcome: dict[str, Any] = {}
    done = threading.Event()  # not Thread.join: a join cut by KeyboardInterrupt can report a live thread ended

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the waiting thread as it is
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name="kdtui-sql", daemon=True)
    try:
        thread.start()  # inside the try: a Ctrl-C that lands while it starts still cancels the query
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        if thread.ident is None:
            raise KdtuiError("query cancelled (ctrl+c) before it started") from None
        query.interrupt("query cancelled (ctrl+c)")  # repeated by the query until its session is over
        while not done.wait(0.1):
            pass
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


# How long a cancelled query keeps being interrupted while its session has not ended (a session that is still
# waiting for the store lock starts, sees the cancel and stops by itself).
CANCEL_PERSIST_S = 30.0


class UserQuery:
    """A person's read-only SQL against one store; ``interrupt()`` cancels it from another thread.

    ``timeout`` (seconds) stops a query that runs longer, as if cancelled.
    """

    def __init__(self, store: Store, sql: str, timeout: float | None = None) -> None:
        if timeout is not None and timeout <= 0:
            raise KdtuiError(f"--timeout {timeout:g}: give a number of seconds above 0")
        self.store = store
        self.sql = sql
        self.timeout = timeout
        self._live: duckdb.DuckDBPyConnection | None = None
        self._cancelled: str | None = None
        self._ended = threading.Event()  # the session is over: nothing left to interrupt
        _LIVE.add(self)

    def interrupt(self, reason: str = "query cancelled") -> None:
        first = self._cancelled is None
        self._cancelled = self._cancelled or reason
        live = self._live
        if live is not None:
            live.interrupt()
        if first:
            threading.Thread(target=self._keep_interrupting, name="kdtui-sql-cancel", daemon=True).start()

    def _keep_interrupting(self) -> None:
        """An interrupt that lands between the session opening and its statement starting finds nothing running,
        and DuckDB forgets it (a CI run hung 60 s on that): it is repeated until the session is over."""
        deadline = time.monotonic() + CANCEL_PERSIST_S
        while not self._ended.wait(0.05) and time.monotonic() < deadline:
            live = self._live
            if live is not None:
                live.interrupt()

    def _timed_out(self) -> None:
        self.interrupt(f"query stopped after {self.timeout:g}s (the time limit; raise it with --timeout)")

    @contextmanager
    def _session(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
        """A read session with all but the last statement run; yields it and the last statement.

        DuckDB's errors become one line; an interrupt from another thread becomes "query cancelled"
        (or the time limit's message).
        """
        timer = threading.Timer(self.timeout, self._timed_out) if self.timeout else None
        with self.store.read() as con:
            self._live = con
            if timer is not None:
                timer.daemon = True
                timer.start()
            try:
                if self._cancelled:
                    raise KdtuiError(self._cancelled)
                statements = check_read_only(self.sql, con)
                for statement in statements[:-1]:
                    con.execute(statement)
                yield con, statements[-1]
            except duckdb.InterruptException:
                raise KdtuiError(self._cancelled or "query cancelled") from None
            except duckdb.Error as exc:
                raise _user_error(exc) from None
            finally:
                self._live = None
                self._ended.set()
                if timer is not None:
                    timer.cancel()

    def rows(self, max_rows: int | None = None) -> QueryResult:
        """Columns and at most ``max_rows`` rows (all when None)."""
        from kdtui.store.store import QueryResult

        with self._session() as (con, last):
            cursor = con.execute(last)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows + 1)
        if max_rows is None:
            return QueryResult(columns, rows)
        return QueryResult(columns, rows[:max_rows], truncated=len(rows) > max_rows)

    def arrow(self, max_rows: int) -> tuple[Any, bool]:
        """An Arrow table of at most ``max_rows`` rows, and whether more exist."""
        import pyarrow as pa

        with self._session() as (con, last):
            relation = con.sql(last)
            if relation is None:
                return pa.table({}), False
            reader = relation.to_arrow_reader(min(max_rows + 1, 100_000))
            batches, count = [], 0
            for batch in reader:
                batches.append(batch)
                count += batch.num_rows
                if count > max_rows:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
        return table.slice(0, max_rows), count > max_rows

    def export(self, out: Path, fmt: str) -> int:
        """Every row into ``out`` as csv, json (an array of objects) or parquet, streamed batch by batch, so
        memory stays flat in the result's size; returns the row count.

        Written to a temporary file beside ``out`` and moved into place when complete. The file is
        written in this process: the session itself cannot touch the file system. Check ``out`` with
        :func:`kdtui.store.exports.export_target` first.
        """
        with self._session() as (con, last):
            relation = con.sql(last)
            if relation is None:
                raise KdtuiError("the last statement returns no rows to export")
            return write_rows(relation.to_arrow_reader(EXPORT_BATCH_ROWS), out, fmt)


def write_rows(reader: Any, out: Path, fmt: str) -> int:
    """An Arrow record-batch reader's rows into ``out`` as csv, json or parquet, batch by batch, through a
    temporary file moved into place when complete (a pipe or /dev/stdout is written in place); the count.

    The one writer of exports: ``kdtui sql --out`` and the TUI's console (``Table.to_reader()``).
    """
    with export_file(out) as path:
        return _WRITERS[fmt](reader, path)


def _write_parquet(reader: Any, path: Path) -> int:
    import pyarrow.parquet as pq

    count = 0
    with pq.ParquetWriter(str(path), reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            count += batch.num_rows
    return count


def _write_csv(reader: Any, path: Path) -> int:
    """Python's csv module (quoted only where needed, lists and structs as their text), a batch at a time."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(reader.schema.names)
        for batch in reader:
            columns = [column.to_pylist() for column in batch.columns]
            writer.writerows(zip(*columns, strict=True))
            count += batch.num_rows
    return count


def _write_json(reader: Any, path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write("[")
        for batch in reader:
            for row in batch.to_pylist():
                fh.write(("\n" if count == 0 else ",\n") + json.dumps(row, default=str))
                count += 1
        fh.write("\n]\n")
    return count


_WRITERS: dict[str, Callable[[Any, Path], int]] = {"csv": _write_csv, "json": _write_json, "parquet": _write_parquet}
