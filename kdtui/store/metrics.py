"""The ``train_metrics`` table: a distill run's curves, one row per optimiser step or eval pass."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdtui.store.store import Store

COLUMNS = ("split", "step", "total_steps", "epoch", "loss", "ce", "divergence", "kl_bucketed", "kl_full", "lr",
           "grad_norm", "tokens", "tokens_per_s", "elapsed_s", "logged_at")
# The whole-number columns (a step read back from JSON may be 3.0); the rest are text (split) or doubles.
INT_COLUMNS = ("step", "total_steps", "tokens")


def _arrow_types() -> dict[str, Any]:
    """The Arrow type of each column as the table declares it (an all-NULL column still needs one)."""
    import pyarrow as pa

    def arrow_type(column: str) -> Any:
        if column in INT_COLUMNS:
            return pa.int64() if column == "tokens" else pa.int32()  # BIGINT tokens, INTEGER steps
        return pa.string() if column == "split" else pa.float64()

    return {c: arrow_type(c) for c in COLUMNS}


def _value(column: str, value: Any) -> Any:
    """A cell as the table takes it: NaN and inf as unknown, whole-number columns as ints."""
    value = _clean(value)
    return int(value) if value is not None and column in INT_COLUMNS else value


def _clean(value: Any) -> Any:
    """NaN and inf are "unknown" in the table (SQL aggregates would otherwise turn NaN)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class TrainMetricsRepo:
    """Write and read training curves."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def upsert(self, run_id: int, rows: list[dict[str, Any]], timeout: float | None = None) -> None:
        """Insert rows; a (split, step) already there is replaced (a resumed run recomputes steps), and of two
        rows of one (split, step) in ``rows`` the later wins.

        One INSERT from an Arrow table (``executemany`` ran a statement per row: 3 s for 600 steps)."""
        if not rows:
            return
        import pyarrow as pa

        latest = list({(row["split"], int(row["step"])): row for row in rows}.values())
        types = _arrow_types()
        batch = pa.table({c: pa.array([_value(c, row.get(c)) for row in latest], type=types[c]) for c in COLUMNS})
        names = ", ".join(COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("split", "step"))
        with self.store.write(timeout=timeout) as con:
            con.register("incoming", batch)
            con.execute(f"INSERT INTO train_metrics (run_id, {names}) SELECT ?, {names} FROM incoming "
                        f"ON CONFLICT (run_id, split, step) DO UPDATE SET {updates}", [run_id])

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
