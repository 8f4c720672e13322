"""Reading a capture back: its manifest, sizes, and fidelity against the full teacher distribution."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from kdtui.captures.format import CapturedExample, log_tail_of, read_shard, tempered_topk
from kdtui.captures.manifest import CaptureFolder, load_manifest
from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError
from kdtui.models.teachers import load_teacher, vocab_identity


def kept_mass(manifest: dict[str, Any], examples: list[CapturedExample] | None = None,
              folder: Path | None = None) -> list[float]:
    """Mean tempered teacher mass inside the stored top-k, per stored temperature (all 1.0 for dense and hidden).

    From the shards' sums where the capture recorded them, else from the stored log tails (``examples``, or
    the shards under ``folder``): 1 - exp(log tail), exact, averaged over every target position.
    """
    from kdtui.store.captures import manifest_kept_mass

    recorded = manifest_kept_mass(manifest)
    if recorded is not None:
        return recorded
    if examples is None:
        assert folder is not None
        examples = [e for entry in manifest["shards"] for e in read_shard(folder / entry["file"], entry).examples()]
    temperatures = [float(t) for t in manifest["temperatures"]]
    sums, positions = [0.0] * len(temperatures), 0
    for example in examples:
        positions += len(example.targets)
        for i, t in enumerate(temperatures):
            sums[i] += float((-torch.expm1(log_tail_of(example, i, t).double())).sum())
    return [s / positions if positions else math.nan for s in sums]


def lossy_refusal(manifest: dict[str, Any], kept: float, temperature: float) -> str:
    """The one line that refuses a top-k capture keeping too little at the training temperature."""
    from kdtui.config.distill import KEPT_MASS_FLOOR

    return (f"capture {manifest['name']!r} (top-{manifest['k']}) keeps {kept:.2%} of the teacher's probability at "
            f"T = {temperature:g}, under the {KEPT_MASS_FLOOR:.0%} floor: the KD term would compare tail buckets "
            "(a lower bound far below the true divergence) and teach almost nothing; capture it with --format "
            "hidden (exact at any T), or pass --allow-lossy-targets to train on it anyway")


def summary(root: Path, name: str, verify: bool = False) -> dict[str, Any]:
    """The manifest, sizes, and the shards' problems: sizes always checked, checksums with ``verify``."""
    manifest = load_manifest(root, name)
    size = sum(s["bytes"] for s in manifest["shards"])
    tokens = manifest["n_tokens"]
    problems = CaptureFolder(root, name).verify(manifest, checksums=verify)
    kept = kept_mass(manifest, folder=StoreLayout(root).capture(name)) if not problems else None
    return {"manifest": manifest, "bytes": size, "bytes_per_token": size / tokens if tokens else float("nan"),
            "problems": problems, "verified": "sizes and sha256" if verify else "sizes", "kept_mass": kept}


def fidelity(root: Path, name: str, teacher_path: str, backend: str = "hf", sample: int = 8,
             device: str = "auto") -> list[dict[str, float]]:
    """Per stored temperature: mean top-k mass, KL(full || top-k + exact tail bucket) and
    KL(full || top-k + tail spread uniformly) on the first ``sample`` examples."""
    manifest = load_manifest(root, name)
    if manifest["format"] == "dense":
        raise KdtuiError("fidelity applies to topk and hidden captures; dense captures store the full logits")
    if manifest["format"] == "hidden":
        return hidden_fidelity(root, name, teacher_path, backend, sample, device)
    teacher = load_teacher(backend, teacher_path, device)
    if vocab_identity(teacher) != manifest["tokenizer"]:
        raise KdtuiError(f"tokenizer mismatch: capture has {manifest['tokenizer']}, --against teacher has "
                         f"{vocab_identity(teacher)}; compare with the capture's own teacher")
    folder = StoreLayout(root).capture(name)
    examples = []
    for entry in manifest["shards"]:
        examples += read_shard(folder / entry["file"], entry).examples()
        if len(examples) >= sample:
            break
    temperatures = manifest["temperatures"]
    totals = [{"temperature": t, "topk_mass": 0.0, "kl_bucket": 0.0, "kl_uniform_tail": 0.0} for t in temperatures]
    positions = 0
    for example in examples[:sample]:
        span = (example.target_start - 1, example.target_start - 1 + len(example.targets))
        logits = teacher.forward([example.context], [span])[0].float().cpu()
        assert example.logprobs is not None and example.ids is not None and example.lognorm is not None
        ids = torch.from_numpy(example.ids)
        lognorm = torch.from_numpy(example.lognorm)
        positions += logits.shape[0]
        vocab = logits.shape[-1]
        for t_index, temperature in enumerate(temperatures):
            full = torch.log_softmax(logits / temperature, dim=-1)
            stored = tempered_topk(example.logprobs, lognorm, t_index, temperature)
            top_full = full.gather(-1, ids)
            tail_full = torch.logsumexp(full.scatter(-1, ids, float("-inf")), dim=-1).exp().clamp(min=1e-30)
            tail_stored = log_tail_of(example, t_index, temperature).exp().clamp(min=1e-30)
            p_top = top_full.exp()
            kl_top = (p_top * (top_full - stored)).sum(-1)
            kl_bucket = kl_top + tail_full * (tail_full.log() - tail_stored.log())
            # A student that spreads the tail evenly over the other tokens sees this loss of information:
            mask = torch.ones_like(full, dtype=torch.bool).scatter_(-1, ids, False)
            q_tail = (tail_stored / max(vocab - ids.shape[-1], 1)).log().unsqueeze(-1)
            kl_tail = (full.exp() * (full - q_tail)).where(mask, torch.zeros_like(full)).sum(-1)
            totals[t_index]["topk_mass"] += float(p_top.sum(-1).sum())
            totals[t_index]["kl_bucket"] += float(kl_bucket.clamp(min=0).sum())
            totals[t_index]["kl_uniform_tail"] += float((kl_top + kl_tail).clamp(min=0).sum())
    for row in totals:
        for key in ("topk_mass", "kl_bucket", "kl_uniform_tail"):
            row[key] = row[key] / positions if positions else math.nan
    return totals


def hidden_fidelity(root: Path, name: str, teacher_path: str, backend: str = "hf", sample: int = 8,
                    device: str = "auto") -> list[dict[str, float]]:
    """Per stored temperature: the largest |logit - reconstructed logit| and the mean KL(full || reconstructed)
    over the first ``sample`` examples, against the live teacher."""
    from kdtui.captures.format import head_logits, read_head

    manifest = load_manifest(root, name)
    teacher = load_teacher(backend, teacher_path, device)
    if vocab_identity(teacher) != manifest["tokenizer"]:
        raise KdtuiError(f"tokenizer mismatch: capture has {manifest['tokenizer']}, --against teacher has "
                         f"{vocab_identity(teacher)}; compare with the capture's own teacher")
    folder = StoreLayout(root).capture(name)
    head = read_head(folder, manifest)
    examples = []
    for entry in manifest["shards"]:
        examples += read_shard(folder / entry["file"], entry).examples()
        if len(examples) >= sample:
            break
    rows = [{"temperature": t, "max_abs_dlogit": 0.0, "kl": 0.0} for t in manifest["temperatures"]]
    positions = 0
    for example in examples[:sample]:
        assert example.hidden is not None
        span = (example.target_start - 1, example.target_start - 1 + len(example.targets))
        live = teacher.forward([example.context], [span])[0].float().cpu()
        rebuilt = head_logits(example.hidden, **head)[:, : live.shape[-1]]
        positions += live.shape[0]
        for row in rows:
            t = row["temperature"]
            full, approx = torch.log_softmax(live / t, -1), torch.log_softmax(rebuilt / t, -1)
            row["max_abs_dlogit"] = max(row["max_abs_dlogit"], float((live - rebuilt).abs().max()))
            row["kl"] += float((full.exp() * (full - approx)).sum(-1).clamp(min=0).sum())
    for row in rows:
        row["kl"] = row["kl"] / positions if positions else math.nan
    return rows
