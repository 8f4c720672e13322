"""The ``predictions`` table: one row per (run, item), written in batches, never duplicated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdtui.store.store import Store

PREDICTION_COLUMNS = (
    "item_id", "question", "gold", "prompt", "response", "n_new_tokens", "finish_reason",
    "value", "rule", "needs_review", "correct", "candidates", "protocol", "kdtui_version",
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

    def count(self, run_id: int | None = None) -> int:
        where, params = ("WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
        return int(self.store.query(f"SELECT count(*) AS n FROM predictions {where}", params).records()[0]["n"])
