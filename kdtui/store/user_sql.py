"""The one entry point for SQL typed by a person: ``kdtui sql`` and the TUI console.

The statement check refuses anything but reads before a connection is opened;
the session itself is read-only, so a write that slipped past the check still fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from kdtui.errors import KdtuiError, first_line

if TYPE_CHECKING:
    from kdtui.store.store import QueryResult, Store


class ReadOnlyViolation(KdtuiError):
    """A statement that would change the store was sent to a read-only entry point."""


# PRAGMAs that only read; every other one (import_database, threads=, ...) is refused.
READ_PRAGMAS = {"table_info", "show_tables", "show_tables_expanded", "show_databases", "database_list",
                "database_size", "storage_info", "version", "platform", "functions", "collations", "show",
                "metadata_info", "user_agent"}
_REFUSED = "kdtui sql is read-only (use SELECT, or export with --format/--out)"


def _refuse(word: str) -> ReadOnlyViolation:
    return ReadOnlyViolation(f"refused: {word} changes the store or reaches outside it; {_REFUSED}")


def _check_statement(statement: Any) -> None:
    kind = statement.type.name
    text = statement.query.strip().rstrip(";").strip()
    first_word = text.split(None, 1)[0].upper() if text else kind
    if kind == "SELECT":
        return
    if kind == "PRAGMA":
        match = re.match(r"(?is)pragma\s+([a-z_]+)\s*(.*)$", text)
        if match is None or match.group(1).lower() not in READ_PRAGMAS or match.group(2).startswith("="):
            raise _refuse(f"PRAGMA {match.group(1) if match else ''}".strip())
        return
    if kind == "EXPLAIN":
        # Only a plan of a read: EXPLAIN ANALYZE runs what it explains (COPY, SET log_query_path, ...).
        inner = re.sub(r"(?is)^explain\s+(analyze\s+)?", "", text)
        try:
            explained = duckdb.extract_statements(inner)
        except duckdb.Error:
            explained = []
        if len(explained) == 1 and explained[0].type.name == "SELECT":
            return
        raise _refuse("EXPLAIN of anything but a SELECT")
    raise _refuse(first_word)


def check_read_only(sql: str) -> list[str]:
    """The statements of ``sql``; raises :class:`ReadOnlyViolation` for anything but a read.

    A friendly first line of defence: the session itself is read-only and locked (see
    ``session.READ_CONFIG``), so what slips past this check still cannot write or reach files.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise KdtuiError(f"SQL does not parse: {first_line(exc)}") from None
    if not statements:
        raise KdtuiError("no SQL statement given")
    for statement in statements:
        _check_statement(statement)
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


class UserQuery:
    """A person's read-only SQL against one store; ``interrupt()`` cancels it from another thread."""

    def __init__(self, store: Store, sql: str) -> None:
        self.store = store
        self.statements = check_read_only(sql)
        self._live: duckdb.DuckDBPyConnection | None = None
        self._cancelled = False

    def interrupt(self) -> None:
        self._cancelled = True
        live = self._live
        if live is not None:
            live.interrupt()

    @contextmanager
    def _session(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
        """A read session with all but the last statement run; yields it and the last statement.

        DuckDB's errors become one line; an interrupt from another thread becomes "query cancelled".
        """
        with self.store.read() as con:
            self._live = con
            try:
                if self._cancelled:
                    raise KdtuiError("query cancelled")
                for statement in self.statements[:-1]:
                    con.execute(statement)
                yield con, self.statements[-1]
            except duckdb.InterruptException:
                raise KdtuiError("query cancelled") from None
            except duckdb.Error as exc:
                raise _user_error(exc) from None
            finally:
                self._live = None

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

    def write_parquet(self, out: Path) -> None:
        """Every row into a Parquet file, streamed in batches.

        Arrow writes the file in this process: the session itself cannot touch the file system.
        """
        import pyarrow.parquet as pq

        with self._session() as (con, last):
            relation = con.sql(last)
            if relation is None:
                raise KdtuiError("the last statement returns no rows to export")
            reader = relation.to_arrow_reader(100_000)
            try:
                with pq.ParquetWriter(str(out), reader.schema) as writer:
                    for batch in reader:
                        writer.write_batch(batch)
            except OSError as exc:
                raise KdtuiError(f"cannot write {out}: {first_line(exc)}") from None
