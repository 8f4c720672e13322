"""Capture recipe: a teacher reads GSM8K under a prompting strategy; its distributions go to shards.

Setup (config, strategy, data, teacher, manifest and resume point) -> loop (batched
forward or generation, top-k on the teacher's device, a shard every N examples)
-> cleanup (manifest status, registration in the store).  Killed at any moment,
a rerun of the same command resumes at the first missing shard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtui import __version__
from kdtui.captures.format import CapturedExample, compress_topk, encode_shard, head_logits, write_head, write_shard
from kdtui.captures.manifest import CaptureFolder
from kdtui.config.base import resume_changes
from kdtui.config.capture import CaptureConfig
from kdtui.config.names import capture_run_name
from kdtui.data.gsm8k import Problem, load_problems
from kdtui.data.strategies import Strategy, get_strategy, target_start
from kdtui.errors import KdtuiError
from kdtui.models.heads import HeadAgreement, head_agreement
from kdtui.models.teachers import Teacher, load_teacher, vocab_identity
from kdtui.recipes.lifecycle import run_lifecycle
from kdtui.store import StoreAccess
from kdtui.store.captures import ENTROPY_BINS, ENTROPY_MAX_NATS

ProgressFn = Callable[[dict[str, Any]], None]


def build_example(teacher: Teacher, strategy: Strategy, problem: Problem, mode: str, index: int,
                  span: str = "targets", bos: bool = True, eos: bool = False) -> CapturedExample:
    """Token the teacher's context and mark where the targets begin (before any forward pass).

    ``span="all"`` keeps every position, as the study's capture did (``model.forward`` over the whole prompt):
    row i predicts token i + 1, and the last row, which predicts past the prompt, has the teacher's EOS id
    as its recorded target (nothing reads it: ``study-literal`` takes its labels from the solution). ``eos``
    ends the context with the teacher's EOS token, the last target (for an answer-mode capture of the targets).
    """
    before, context_text = strategy.context(problem.question, teacher.chat_tokenizer)
    if mode == "answer":
        context_text = context_text + "\n" + problem.solution
        before = context_text[: len(context_text) - len(problem.solution)]
    ids = teacher.encode(context_text, bos=bos)
    start = target_start(teacher.encode(before, bos=bos) if before else None, ids)
    if eos and teacher.eos_id is not None:
        ids.append(teacher.eos_id)  # the teacher's distribution where the answer ends: a student learns to stop
    if mode == "generate":
        return CapturedExample(index, ids, len(ids), [])
    if span == "all":
        return CapturedExample(index, ids, 1, [*ids[1:], min(teacher.eos_ids, default=0)])
    return CapturedExample(index, ids, start, ids[start:])


def _resume_point(run: CaptureFolder, manifest: dict[str, Any], cfg: CaptureConfig, identity: dict[str, Any]) -> int:
    if manifest["tokenizer"] != identity:
        raise KdtuiError(f"tokenizer mismatch for capture {cfg.name!r}: stored vocab {manifest['tokenizer']}, "
                         f"teacher has {identity}; use the same teacher or another --name")
    for stale in run.path.glob("*.tmp"):
        stale.unlink()  # a shard being written when the capture was killed
    return sum(entry["n_examples"] for entry in manifest["shards"])


def run_capture(cfg: CaptureConfig, store: StoreAccess, progress: ProgressFn | None = None,
                logs: Path | None = None, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Capture ``cfg`` under ``store``; returns the final manifest."""
    if cfg.replica is not None:  # one range of a data-parallel capture, as capture NAME.rI-of-N
        from kdtui.captures.replicas import replica_name, replica_range

        total = len(load_problems(cfg.data, cfg.limit, cfg.offset, cfg.split))
        first, stop = replica_range(total, cfg.examples_per_shard, cfg.replica, cfg.replicas)
        if stop <= first:
            raise KdtuiError(f"replica {cfg.replica} of {cfg.replicas} has no examples: {total} examples make fewer "
                             f"shards of {cfg.examples_per_shard} than replicas; use fewer --replicas")
        part = cfg.model_copy(update={"name": replica_name(cfg.name, cfg.replica, cfg.replicas),
                                      "offset": cfg.offset + first, "limit": stop - first, "replica": None})
        return run_capture(part, store, progress, logs, should_stop)
    # -- setup
    strategy = get_strategy(cfg.strategy, Path(cfg.strategies_file) if cfg.strategies_file else None)
    problems = load_problems(cfg.data, cfg.limit, cfg.offset, cfg.split)
    folder = CaptureFolder(store.root, cfg.name)
    manifest = folder.load_manifest()
    # checked before a finished capture is handed back: the same name with other settings is another capture
    changed = resume_changes(manifest["config"], cfg) if manifest is not None else []
    if changed:
        raise KdtuiError(f"capture {cfg.name!r} exists with different settings ({', '.join(changed)}); "
                         "use another --name")
    if manifest is not None and manifest.get("status") == "done" and manifest["n_examples"] >= len(problems):
        problems_found = folder.verify(manifest, checksums=True)  # a finished capture must still be whole
        if problems_found:
            raise KdtuiError(f"capture {cfg.name!r} is damaged: {'; '.join(problems_found[:3])}; delete "
                             f"{folder.path} and rerun to capture it again")
        return manifest
    teacher = load_teacher(cfg.backend, cfg.teacher, cfg.device, dtype=cfg.dtype, cache_type=cfg.cache_type)
    identity = vocab_identity(teacher)
    if manifest is None:
        head = teacher.head() if cfg.format == "hidden" else None
        head_check = None
        if head is not None:  # before anything is written: a family whose logits we cannot rebuild is refused
            agreement = check_teacher_head(teacher, head, strategy, problems[:2], cfg)
            if not agreement.passed:
                raise KdtuiError(agreement.refusal(f"the teacher {cfg.teacher} ({teacher.model_type})") +
                                 "; capture it with --format topk or dense")
            head_check = agreement.as_dict() | {"model_type": teacher.model_type}
        folder.path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "name": cfg.name, "kdtui": __version__, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "teacher": cfg.teacher, "backend": cfg.backend, "tokenizer": identity,
            "strategy": strategy.model_dump(), "mode": cfg.mode, "format": cfg.format, "k": cfg.k,
            "temperatures": cfg.temperatures, "value_dtype": cfg.value_dtype,
            "dataset": {"data": cfg.data, "split": cfg.split, "offset": cfg.offset, "limit": cfg.limit},
            "config": cfg.identity(), "n_examples": 0, "n_tokens": 0, "shards": [], "status": "running",
            "span": cfg.span, "bos": cfg.bos,
        }
        if head is not None:  # the head once, before any shard: logits = h W^T at training time
            manifest["head"] = write_head(folder.path, **head)
            manifest["head_check"] = head_check
        folder.save_manifest(manifest)
    done = _resume_point(folder, manifest, cfg, identity)
    header = {"teacher": cfg.teacher, "strategy": cfg.strategy, "mode": cfg.mode, "k": str(cfg.k),
              "temperatures": json.dumps(cfg.temperatures)}
    store.captures.register(cfg.name, manifest, folder.path)

    with run_lifecycle(store, cfg, name=capture_run_name(cfg.name), kind="capture", logs=logs or store.root / "logs",
                       should_stop=should_stop) as run:
        # -- loop: a shard at a time, batches never straddling shards, so a resumed
        # capture computes exactly what an uninterrupted one would.
        start, tokens = time.monotonic(), 0
        for shard_start in range(done, len(problems), cfg.examples_per_shard):
            if run.should_stop():
                break
            shard_end = min(shard_start + cfg.examples_per_shard, len(problems))
            chunk: list[CapturedExample] = []
            for position in range(shard_start, shard_end, cfg.batch_size):
                batch = [build_example(teacher, strategy, problems[i], cfg.mode, i + cfg.offset, cfg.span, cfg.bos,
                                       cfg.eos and cfg.eos_applies)
                         for i in range(position, min(position + cfg.batch_size, shard_end))]
                _fill(teacher, batch, cfg)
                chunk.extend(batch)
                tokens += sum(len(e.targets) for e in batch)
                if progress:
                    elapsed = time.monotonic() - start
                    finished = position + len(batch)
                    progress({"done": finished, "total": len(problems), "tokens": tokens, "elapsed": elapsed,
                              "examples_per_s": (finished - done) / elapsed if elapsed else 0.0,
                              "tokens_per_s": tokens / elapsed if elapsed else 0.0})
            shard = folder.path / f"shard-{len(manifest['shards']):05d}.safetensors"
            tensors, meta = encode_shard(chunk, cfg.format, teacher.vocab_size, cfg.value_dtype, header)
            entry = write_shard(shard, tensors, meta) | shard_stats(chunk, cfg)
            manifest["shards"].append(entry)
            manifest["n_examples"] += len(chunk)
            manifest["n_tokens"] += entry["n_tokens"]
            folder.save_manifest(manifest)

        # -- cleanup (the lifecycle records the run's status on the way out)
        if not run.stopped:
            manifest["status"] = "done"
            folder.save_manifest(manifest)
        store.captures.register(cfg.name, manifest, folder.path)
    return manifest


def check_teacher_head(teacher: Teacher, head: dict[str, Any], strategy: Strategy, problems: list[Problem],
                       cfg: CaptureConfig) -> HeadAgreement:
    """Logits rebuilt from the head input and the head as stored (weight, bias, the family's transform)
    against the teacher's own, at every position of the first examples and each stored temperature."""
    examples = [build_example(teacher, strategy, p, "prompt" if cfg.mode == "generate" else cfg.mode, i, cfg.span,
                              cfg.bos) for i, p in enumerate(problems)]
    pairs = teacher.forward_hidden([e.context for e in examples], [(0, len(e.context)) for e in examples])
    own = torch.cat([logits.cpu() for _, logits in pairs])  # its dtype sets the tolerance
    hidden = torch.cat([h.cpu() for h, _ in pairs])
    rebuilt = head_logits(hidden, head["weight"].cpu(), None if head["bias"] is None else head["bias"].cpu(),
                          head["logit_scale"], head["softcap"])
    return head_agreement(own, rebuilt, cfg.temperatures)


ENTROPY_EDGES = np.linspace(0.0, ENTROPY_MAX_NATS, ENTROPY_BINS + 1)  # nats; anything above goes in the last bin


def shard_stats(chunk: list[CapturedExample], cfg: CaptureConfig) -> dict[str, Any]:
    """Per-shard sums for the captures table: top-k mass at T=1 and an entropy histogram."""
    entropy = np.concatenate([e.entropy for e in chunk if e.entropy is not None] or [np.zeros(0)])
    hist, _ = np.histogram(np.clip(entropy, 0, ENTROPY_MAX_NATS), bins=ENTROPY_EDGES)
    stats: dict[str, Any] = {"entropy_hist": hist.tolist(), "entropy_sum": float(entropy.sum())}
    if cfg.format == "topk":
        stats["topk_mass_sum"] = float(sum(np.exp(e.logprobs.float().numpy()).sum() for e in chunk
                                           if e.logprobs is not None))
        # At each stored temperature: what the top-k keeps, 1 - the exact tail (what distill's gate reads).
        tails = np.concatenate([e.log_tail for e in chunk if e.log_tail is not None]).astype(np.float64)
        stats["kept_mass_sum"] = (-np.expm1(tails)).sum(axis=0).tolist()
    else:
        stats["topk_mass_sum"] = float(len(entropy))  # dense and hidden keep everything
    return stats


def _fill(teacher: Teacher, batch: list[CapturedExample], cfg: CaptureConfig) -> None:
    """Run the teacher and attach compressed distributions to each example."""
    if cfg.mode == "generate":
        rows = []
        for example in batch:
            new, logits = teacher.generate(example.context, cfg.max_new_tokens, cfg.sample_temperature,
                                           cfg.seed + example.index)
            example.context = example.context + new
            example.targets = new
            example.text = teacher.decode(new)
            rows.append(logits)
        if cfg.format == "hidden":  # the head inputs of what it generated, read in one pass
            pairs = teacher.forward_hidden([e.context for e in batch],
                                           [(len(e.context) - len(e.targets) - 1, len(e.context) - 1) for e in batch])
            for example, (hidden, _) in zip(batch, pairs, strict=True):
                example.hidden = hidden.cpu()
    else:
        spans = [(e.target_start - 1, e.target_start - 1 + len(e.targets)) for e in batch]
        if cfg.format == "hidden":
            pairs = teacher.forward_hidden([e.context for e in batch], spans)
            for example, (hidden, _) in zip(batch, pairs, strict=True):
                example.hidden = hidden.cpu()
            rows = [logits for _, logits in pairs]
        else:
            rows = teacher.forward([e.context for e in batch], spans)
    for example, logits in zip(batch, rows, strict=True):
        packed = compress_topk(logits, cfg.k, cfg.temperatures)
        example.entropy = packed["entropy"].float().cpu().numpy()
        if cfg.format == "topk":
            example.ids = packed["ids"].cpu().numpy().astype(np.int64)
            example.logprobs = packed["logprobs"].float().cpu()
            example.lognorm = packed["lognorm"].float().cpu().numpy()
            example.log_tail = packed["log_tail"].float().cpu().numpy()
        elif cfg.format == "dense":
            example.logits = logits.float().cpu()
