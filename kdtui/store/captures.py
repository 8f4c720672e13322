"""The ``captures`` table: one row per teacher capture, refreshed from its manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdtui.store.store import Store

# The entropy histogram every capture stores: ENTROPY_BINS equal bins over [0, ENTROPY_MAX_NATS] nats (the last
# also takes anything above).
ENTROPY_BINS = 16
ENTROPY_MAX_NATS = 8.0


def entropy_bin_starts() -> list[float]:
    """Where each bin of a capture's entropy histogram starts, in nats."""
    return [ENTROPY_MAX_NATS * i / ENTROPY_BINS for i in range(ENTROPY_BINS)]


def manifest_kept_mass(manifest: dict[str, Any]) -> list[float] | None:
    """Mean tempered teacher mass kept, per stored temperature, from the shards' sums (None where a shard
    predates them; dense and hidden captures keep everything)."""
    temperatures = manifest["temperatures"]
    if manifest["format"] != "topk":
        return [1.0] * len(temperatures)
    shards = manifest["shards"]
    tokens = int(manifest["n_tokens"])
    if not shards or not tokens or any("kept_mass_sum" not in s for s in shards):
        return None
    return [sum(float(s["kept_mass_sum"][i]) for s in shards) / tokens for i in range(len(temperatures))]


class CapturesRepo:
    """Register captures for the captures screen and SQL."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def register(self, name: str, manifest: dict[str, Any], folder: Path) -> None:
        """Insert or refresh the captures row of one capture from its manifest."""
        shards = manifest["shards"]
        tokens = int(manifest["n_tokens"])
        size = sum(int(s["bytes"]) for s in shards)
        hist = [sum(int(s.get("entropy_hist", [0] * ENTROPY_BINS)[i]) for s in shards) for i in range(ENTROPY_BINS)]
        mass = sum(float(s.get("topk_mass_sum", 0.0)) for s in shards)
        entropy = sum(float(s.get("entropy_sum", 0.0)) for s in shards)
        row = {
            "name": name, "teacher": manifest["teacher"], "backend": manifest["backend"],
            "strategy": manifest["strategy"]["name"], "mode": manifest["mode"], "format": manifest["format"],
            "k": manifest["k"], "temperatures": manifest["temperatures"], "n_examples": manifest["n_examples"],
            "n_tokens": tokens, "bytes": size, "bytes_per_token": size / tokens if tokens else None,
            "mean_topk_mass": mass / tokens if tokens else None, "mean_entropy": entropy / tokens if tokens else None,
            "entropy_hist": hist, "kept_mass": manifest_kept_mass(manifest), "status": manifest["status"],
            "path": str(folder),
        }
        with self.store.write() as con:
            con.execute("DELETE FROM captures WHERE name = ?", [name])
            con.execute(f"INSERT INTO captures ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()))
