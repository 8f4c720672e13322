"""Data-parallel captures: a capture split into example ranges of whole shards, one teacher replica per range,
joined into one capture whose shards are byte-identical to a single process's.

A range never splits a shard, and a capture's shards depend only on their examples (batches never straddle
shards), so replica ``i`` of ``n`` writes exactly the single-process shards of its range, as capture
``NAME.r{i}-of-{n}``; :func:`merge` renumbers them into ``NAME`` in example order.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from kdtui.captures.manifest import CaptureFolder
from kdtui.errors import KdtuiError


def replica_name(name: str, replica: int, replicas: int) -> str:
    return f"{name}.r{replica}-of-{replicas}"


def replica_range(total: int, per_shard: int, replica: int, replicas: int) -> tuple[int, int]:
    """Examples [start, stop) of replica ``replica``: a contiguous run of whole shards."""
    shards = math.ceil(total / per_shard)
    first, last = replica * shards // replicas, (replica + 1) * shards // replicas
    return min(first * per_shard, total), min(last * per_shard, total)


def merge(root: Path, name: str, replicas: int) -> dict[str, Any]:
    """Join the finished replicas of capture ``name`` into capture ``name``; returns its manifest."""
    parts = []
    for i in range(replicas):
        folder = CaptureFolder(root, replica_name(name, i, replicas))
        manifest = folder.load_manifest()
        if manifest is None or manifest.get("status") != "done":
            state = "missing" if manifest is None else manifest.get("status")
            raise KdtuiError(f"replica {i} of capture {name!r} is {state}; run `kdtui capture ... --replicas "
                             f"{replicas} --replica {i}` first")
        problems = folder.verify(manifest, checksums=True)
        if problems:
            raise KdtuiError(f"replica {i} of capture {name!r} is damaged: {problems[0]}; rerun that replica")
        parts.append((folder, manifest))
    first = parts[0][1]
    for i, (_, manifest) in enumerate(parts[1:], start=1):
        for key in ("teacher", "backend", "tokenizer", "strategy", "mode", "format", "k", "temperatures",
                    "value_dtype", "span", "bos"):
            if manifest.get(key) != first.get(key):
                raise KdtuiError(f"replica {i} of capture {name!r} differs from replica 0 in {key}; recapture it")
    target = CaptureFolder(root, name)
    existing = target.load_manifest()
    expected = [e["sha256"] for _, m in parts for e in m["shards"]]
    if existing is not None:
        if existing.get("status") == "done" and [e["sha256"] for e in existing["shards"]] == expected:
            return existing  # merged already (a retried merge job): nothing to do
        raise KdtuiError(f"capture {name!r} exists already and is not these replicas; delete {target.path} to merge")
    target.path.mkdir(parents=True, exist_ok=True)
    merged = dict(first) | {"name": name, "shards": [], "n_examples": 0, "n_tokens": 0, "status": "running",
                            "replicas": replicas}
    if "head" in first:  # the same head in every replica (checked by its sha256 below)
        if any(m.get("head", {}).get("sha256") != first["head"]["sha256"] for _, m in parts):
            raise KdtuiError(f"the replicas of capture {name!r} hold different teacher heads; recapture")
        shutil.copy2(parts[0][0].path / first["head"]["file"], target.path / first["head"]["file"])
    for folder, manifest in parts:
        for entry in manifest["shards"]:
            file = f"shard-{len(merged['shards']):05d}.safetensors"
            os.link(folder.path / entry["file"], target.path / file) if _same_device(folder.path, target.path) \
                else shutil.copy2(folder.path / entry["file"], target.path / file)
            merged["shards"].append(dict(entry) | {"file": file})
            merged["n_examples"] += entry["n_examples"]
            merged["n_tokens"] += entry["n_tokens"]
    dataset = dict(first["dataset"])
    dataset["limit"] = merged["n_examples"]
    merged["dataset"] = dataset
    merged["status"] = "done"
    target.save_manifest(merged)
    return merged


def _same_device(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev
