"""The one entry point for SQL typed by a person: ``kdtui sql`` and the TUI console.

The statement check refuses anything but reads before a connection is opened;
the session itself is read-only, so a write that slipped past the check still fails.
"""

from __future__ import annotations

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
            raise ReadOnlyViolation(f"refused: {first_word} changes the store; kdtui sql is read-only "
                                    "(use SELECT, or export with --format/--out)")
    return [s.query for s in statements]




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
                raise KdtuiError(f"query failed: {first_line(exc)}") from None
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
        """Every row into a Parquet file (DuckDB writes it; the store is only read)."""
        with self._session() as (con, last):
            relation = con.sql(last)
            if relation is None:
                raise KdtuiError("the last statement returns no rows to export")
            relation.write_parquet(str(out))
