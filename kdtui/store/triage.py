"""The ``triage`` log: human decisions, append-only, so that every undo is exact."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from kdtui.errors import KdtuiError

if TYPE_CHECKING:
    from kdtui.store.store import Store


def _effective_value(con: duckdb.DuckDBPyConnection, run_id: int, item_id: str) -> float | None:
    row = con.execute("SELECT final_value FROM predictions_final WHERE run_id = ? AND item_id = ?",
                      [run_id, item_id]).fetchone()
    return None if row is None else row[0]


class TriageRepo:
    """Decide and undo; nothing here ever changes a row already written."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def decide(self, run_id: int, item_id: str, value: float | None) -> int:
        """Record a human's answer for one prediction now; returns the decision id.

        ``value`` None means "the response gives no answer".
        """
        with self.store.write() as con:
            exists = con.execute("SELECT 1 FROM predictions WHERE run_id = ? AND item_id = ?",
                                 [run_id, item_id]).fetchone()
            if exists is None:
                raise KdtuiError(f"no prediction {item_id!r} in run {run_id} to decide")
            previous = _effective_value(con, run_id, item_id)
            row = con.execute(
                "INSERT INTO triage (run_id, item_id, value, previous_value) VALUES (?, ?, ?, ?) RETURNING id",
                [run_id, item_id, value, previous]).fetchone()
            assert row is not None
            return int(row[0])

    def undo(self, decision_id: int) -> float | None:
        """Append an undo of one decision; returns the value in force afterwards."""
        with self.store.write() as con:
            row = con.execute("SELECT run_id, item_id, value, undone FROM triage WHERE id = ?",
                              [decision_id]).fetchone()
            if row is None or row[3]:
                raise KdtuiError(f"no triage decision {decision_id} to undo")
            if con.execute("SELECT 1 FROM triage WHERE undoes = ?", [decision_id]).fetchone():
                raise KdtuiError(f"triage decision {decision_id} was already undone")
            run_id, item_id, value = int(row[0]), str(row[1]), row[2]
            con.execute("INSERT INTO triage (run_id, item_id, value, previous_value, undone, undoes) "
                        "VALUES (?, ?, NULL, ?, TRUE, ?)", [run_id, item_id, value, decision_id])
            return _effective_value(con, run_id, item_id)

    def in_force(self, run_id: int, item_id: str) -> int | None:
        """The id of the decision in force for one item, if any."""
        rows = self.store.query("SELECT decision_id FROM triage_effective WHERE run_id = ? AND item_id = ?",
                                [run_id, item_id]).records()
        return int(rows[0]["decision_id"]) if rows else None
