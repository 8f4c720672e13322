"""The ``predictions`` table: one row per (run, item), written in batches, never duplicated."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdtui.store.store import Store

PREDICTION_COLUMNS = (
    "item_id", "question", "gold", "prompt", "response", "n_new_tokens", "finish_reason",
    "value", "rule", "needs_review", "correct", "candidates", "protocol", "kdtui_version", "kind", "reason",
)


class PredictionsRepo:
    """Insert predictions and ask which items a run already has."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, run_id: int, rows: Sequence[dict[str, Any]], timeout: float | None = None) -> int:
        """Insert predictions; an item already stored for the run is left as it is. Returns how many were new."""
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
        with self.store.write(timeout=timeout) as con:
            con.register("incoming", batch)
            inserted = con.execute(
                f"INSERT INTO predictions (run_id, {names}) SELECT DISTINCT ON (item_id) ?, {names} "
                "FROM incoming ON CONFLICT DO NOTHING", [run_id]).fetchall()
        return int(inserted[0][0]) if inserted else 0

    def done_items(self, run_id: int) -> set[str]:
        rows = self.store.query("SELECT item_id FROM predictions WHERE run_id = ?", [run_id]).records()
        return {r["item_id"] for r in rows}

    def responses(self, run_id: int) -> list[dict[str, Any]]:
        """item_id, question, response, finish_reason, gold and extracted value of every prediction of a run, in
        the data's own order.

        Item ids end in the item's index in its data source (``test/12``), so they sort naturally.
        """
        rows = self.store.query("SELECT item_id, question, response, finish_reason, gold, value FROM predictions "
                                "WHERE run_id = ?",
                                [run_id]).records()
        return sorted(rows, key=lambda r: _natural(r["item_id"]))

    def replace_extractions(self, run_id: int, rows: Sequence[dict[str, Any]]) -> int:
        """Overwrite value, rule, needs_review, correct, candidates, protocol, version, kind and reason of stored
        predictions.

        Human decisions live in the triage log and stay in force. Returns how many rows were updated.
        """
        if not rows:
            return 0
        import pyarrow as pa

        names = ("item_id", "value", "rule", "needs_review", "correct", "candidates", "protocol", "kdtui_version",
                 "kind", "reason")
        batch = pa.table({
            **{k: [row.get(k) for row in rows] for k in names if k != "candidates"},
            "candidates": pa.array([row.get("candidates") for row in rows], type=pa.list_(pa.float64())),
        })
        with self.store.write() as con:
            con.register("incoming", batch)
            updated = con.execute(
                "UPDATE predictions p SET value = i.value, rule = i.rule, needs_review = i.needs_review, "
                "correct = i.correct, candidates = i.candidates, protocol = i.protocol, "
                "kdtui_version = i.kdtui_version, kind = i.kind, reason = i.reason FROM incoming i "
                "WHERE p.run_id = ? AND p.item_id = i.item_id",
                [run_id]).fetchall()
        return int(updated[0][0]) if updated else 0

    def count(self, run_id: int | None = None) -> int:
        where, params = ("WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
        return int(self.store.query(f"SELECT count(*) AS n FROM predictions {where}", params).records()[0]["n"])


def _natural(item_id: str) -> tuple[str, int, str]:
    """``test/12`` before ``test/100``: the prefix, then the trailing number."""
    match = re.match(r"^(.*?)(\d+)$", item_id)
    return (match.group(1), int(match.group(2)), "") if match else (item_id, -1, item_id)
