"""The ``train_metrics`` table: a distill run's curves, one row per optimiser step or eval pass."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdtui.store.store import Store

COLUMNS = ("split", "step", "total_steps", "epoch", "loss", "ce", "divergence", "kl_bucketed", "kl_full", "lr",
           "grad_norm", "tokens", "tokens_per_s", "elapsed_s", "logged_at")


def _clean(value: Any) -> Any:
    """NaN and inf are "unknown" in the table (SQL aggregates would otherwise turn NaN)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class TrainMetricsRepo:
    """Write and read training curves."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def upsert(self, run_id: int, rows: list[dict[str, Any]], timeout: float | None = None) -> None:
        """Insert rows; a (split, step) already there is replaced (a resumed run recomputes steps)."""
        if not rows:
            return
        columns = ", ".join(("run_id", *COLUMNS))
        marks = ", ".join("?" * (len(COLUMNS) + 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("split", "step"))
        values = [[run_id, *(_clean(row.get(c)) for c in COLUMNS)] for row in rows]
        with self.store.write(timeout=timeout) as con:
            con.executemany(f"INSERT INTO train_metrics ({columns}) VALUES ({marks}) "
                            f"ON CONFLICT (run_id, split, step) DO UPDATE SET {updates}", values)

    def arrays(self, run_id: int, split: str = "train", after_step: int = 0) -> dict[str, Any]:
        """Columns of one split after ``after_step``, as numpy arrays (NULL -> NaN): fast for 10^5+ rows."""
        with self.store.read() as con:
            data = con.execute(f"SELECT {', '.join(c for c in COLUMNS if c != 'split')} FROM train_metrics "
                               "WHERE run_id = ? AND split = ? AND step > ? ORDER BY step",
                               [run_id, split, after_step]).fetchnumpy()
        import numpy as np

        return {name: np.ma.filled(np.ma.asarray(values).astype(np.float64), np.nan) for name, values in data.items()}

    def count(self, run_id: int) -> int:
        result = self.store.query("SELECT count(*) AS n FROM train_metrics WHERE run_id = ?", [run_id])
        return int(result.records()[0]["n"])

    def curve(self, run_id: int, split: str = "train") -> list[dict[str, Any]]:
        """Rows of one split of a run, by step."""
        result = self.store.query(f"SELECT {', '.join(COLUMNS)} FROM train_metrics WHERE run_id = ? AND split = ? "
                                  "ORDER BY step", [run_id, split])
        return result.records()
