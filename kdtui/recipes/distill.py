"""Distillation recipe: a student learns from a teacher capture (or, as the control, from reference solutions).

Setup (config, capture, tokenizer check, items, student with LoRA, optimiser, schedule, resume point)
-> loop (micro-batches, gradient accumulation, an optimiser step, a metrics line, eval and checkpoints
on their schedule) -> cleanup (final eval, the adapter in PEFT format, metrics ingested). The engine
is Hugging Face accelerate: the same code runs on CPU, one GPU, or under ``accelerate launch``; only
the main process writes. Killed at any moment, ``--resume`` continues from the last checkpoint and
reaches the loss an uninterrupted run reaches.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdtui.config.distill import KEPT_MASS_FLOOR, DistillConfig
from kdtui.config.layout import RUN_INFO, StoreLayout, output_name, run_info_owner
from kdtui.data.gsm8k import Problem, load_problems
from kdtui.data.strategies import Strategy
from kdtui.errors import KdtuiError
from kdtui.kd.checkpoint import Position, checkpoints, load_checkpoint, save_checkpoint
from kdtui.kd.examples import TrainItem, aligned_items, captured_examples, fine_tune_items, literal_items
from kdtui.kd.losses import KDConfig, KDStats
from kdtui.kd.metrics_log import MetricsIngester, MetricsLog
from kdtui.kd.step import (
    HeadWeights,
    TargetHidden,
    aligned_loss,
    base_model,
    check_student_head,
    literal_loss,
    load_head,
)
from kdtui.models.loading import check_model_path, resolve_device, resolve_dtype
from kdtui.models.teachers import hf_vocabulary, identity_of
from kdtui.recipes.lifecycle import run_lifecycle
from kdtui.store import StoreAccess

ProgressFn = Callable[[dict[str, Any]], None]
FINAL_INGEST_TIMEOUT_S = 30.0


@dataclass
class DistillResult:
    run: str
    steps: int
    final_loss: float
    eval_loss: float | None
    adapter: Path | None
    folder: Path
    metrics_pending: bool = False
    warnings: dict[str, int] = field(default_factory=dict)


def check_tokenizer(manifest: dict[str, Any], tokenizer: Any, model: Any, student: str) -> None:
    """Refuse a student whose vocabulary is not the teacher's: token ids would mean different things."""
    rows = int(model.get_output_embeddings().weight.shape[0])
    mine = identity_of(hf_vocabulary(tokenizer), rows)
    if mine != manifest["tokenizer"]:
        raise KdtuiError(f"the student {student} has another tokenizer than capture {manifest['name']!r}'s teacher "
                         f"(student {mine}, teacher {manifest['tokenizer']}); distil a student of the teacher's "
                         "family, or capture with a teacher that shares its tokenizer")


def _items(cfg: DistillConfig, root: Path, tokenizer: Any) -> tuple[list[TrainItem], dict[str, Any] | None,
                                                                    HeadWeights | None]:
    if cfg.preset == "fine-tune":
        assert cfg.data is not None
        problems = load_problems(cfg.data, cfg.limit, 0, cfg.split, cfg.data_config)
        return fine_tune_items(problems, tokenizer, cfg.max_length), None, None
    assert cfg.capture is not None
    manifest, examples = captured_examples(root, cfg.capture)
    if cfg.limit is not None:
        examples = examples[:cfg.limit]
    head = load_head(root, manifest) if manifest["format"] == "hidden" else None
    if cfg.preset == "study-literal":
        return literal_items(manifest, examples, tokenizer, cfg.max_length, _label_problems(cfg, manifest)), \
            manifest, head
    strategy = Strategy.model_validate(manifest["strategy"])
    return aligned_items(manifest, examples, tokenizer, cfg.temperature, cfg.max_length, strategy), manifest, head


def _label_problems(cfg: DistillConfig, manifest: dict[str, Any]) -> dict[int, Problem]:
    """study-literal's questions and labels: the notebooks read ``openai/gsm8k`` "socratic" (``--data-config``)
    while the teacher had read "main"; ``--data`` replaces the capture's source (a local socratic file)."""
    source = manifest["dataset"]
    offset = source.get("offset", 0)
    problems = load_problems(cfg.data or source["data"], source.get("limit"), offset, source.get("split", "train"),
                             cfg.data_config)
    return {offset + i: p for i, p in enumerate(problems)}


def _strategy_name(manifest: dict[str, Any] | None) -> str | None:
    return None if manifest is None else str(manifest["strategy"]["name"])


def _schedule(cfg: DistillConfig, optimizer: Any, total_steps: int, steps_per_epoch: int) -> Any:
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    if cfg.schedule == "study-cosine":  # the notebooks: T_max = one epoch, so epoch 2 climbs back up
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps_per_epoch)
    if cfg.schedule == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, total_steps)
    if cfg.schedule == "linear":
        return get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, total_steps)
    return get_constant_schedule_with_warmup(optimizer, cfg.warmup_steps)


def _optimizer(cfg: DistillConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _order(cfg: DistillConfig, n: int, epoch: int, rank: int = 0, world: int = 1) -> list[int]:
    """This process's examples of an epoch: one seeded order for all, dealt round-robin to the ranks."""
    order = list(range(n)) if not cfg.shuffle else \
        torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).tolist()
    return order[rank:n - n % world:world]


def _step_tokens(cfg: DistillConfig, train: list[TrainItem], epoch: int, first: int, batches_per_epoch: int,
                 world: int) -> int:
    """Target tokens of the optimiser step that begins at micro-batch ``first``, summed over every rank (each
    rank's order is known to all: one seeded permutation, dealt round-robin)."""
    last = min(first + cfg.grad_accum, batches_per_epoch)
    total = 0
    for rank in range(world):
        order = _order(cfg, len(train), epoch, rank, world)
        total += sum(train[i].n_targets for i in order[first * cfg.batch_size:last * cfg.batch_size])
    return max(total, 1)


class _Follower:
    """What a non-main rank sees of the run: it never writes the store (rank 0 does)."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self._should_stop, self.stopped = should_stop, False
        self.warnings: dict[str, int] = {}
        self.run_id = -1  # never used: followers neither ingest metrics nor write the store

    def should_stop(self) -> bool:
        self.stopped = self.stopped or bool(self._should_stop and self._should_stop())
        return self.stopped

    def warn(self, key: str, count: int = 1) -> None:
        self.warnings[key] = self.warnings.get(key, 0) + count


def run_distill(cfg: DistillConfig, store: StoreAccess, logs: Path, progress: ProgressFn | None = None,
                should_stop: Callable[[], bool] | None = None) -> DistillResult:
    """Train ``cfg``'s student; resumable with ``cfg.resume``."""
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    # -- setup: bad input fails before the run is registered
    check_model_path(cfg.student)
    folder = StoreLayout(store.root).run_folder(cfg.run)
    _check_folder_owner(folder, cfg.run)
    found = checkpoints(folder / "checkpoints")
    if found and not cfg.resume:
        raise KdtuiError(f"run {cfg.run!r} has checkpoints in {folder}: add --resume to continue it, or choose "
                         "another --run")
    device = resolve_device(cfg.device)
    accelerator = Accelerator(cpu=device == "cpu")
    dtype = resolve_dtype(cfg.dtype, str(accelerator.device))
    tokenizer = AutoTokenizer.from_pretrained(cfg.student)
    items, manifest, head = _items(cfg, store.root, tokenizer)
    kept = _check_targets(cfg, store.root, manifest)
    torch.manual_seed(cfg.seed)
    model: Any = AutoModelForCausalLM.from_pretrained(cfg.student, dtype=dtype)
    head = head.prepared(accelerator.device) if head is not None else None
    if manifest is not None:
        check_tokenizer(manifest, tokenizer, model, cfg.student)
    train, held_out = (items[:-cfg.eval_size], items[-cfg.eval_size:]) if cfg.eval_size else (items, [])
    if not train:
        raise KdtuiError(f"no training examples left (found {len(items)}, --eval-size {cfg.eval_size}); lower "
                         "--eval-size or raise --limit")
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                 lora_dropout=cfg.effective_lora_dropout(_strategy_name(manifest)),
                                                 target_modules=cfg.targets,
                                                 task_type="CAUSAL_LM"))
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if cfg.lora:
            model.enable_input_require_grads()
    forward = TargetHidden(model)
    kd = KDConfig(alpha=cfg.alpha if cfg.distils else 1.0, temperature=cfg.temperature, divergence=cfg.loss,
                  beta=cfg.beta, skew=cfg.skew, chunk=cfg.chunk)
    optimizer = _optimizer(cfg, model)
    rank, world = accelerator.process_index, accelerator.num_processes
    if str(accelerator.distributed_type).endswith("FSDP"):
        raise KdtuiError("FSDP shards the output head the fused KD loss applies outside the forward; use "
                         "--launcher-config ddp (LoRA students fit one card each)")
    if world > 1 and cfg.preset == "study-literal":
        raise KdtuiError("--preset study-literal is the notebooks' single-device loop; run it without accelerate "
                         "launch")
    per_rank = len(train) // world
    if per_rank == 0:
        raise KdtuiError(f"{len(train)} training examples cannot be shared by {world} processes; use more data")
    batches_per_epoch = math.ceil(per_rank / cfg.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = min(steps_per_epoch * cfg.epochs, cfg.max_steps or 1 << 62)
    scheduler = _schedule(cfg, optimizer, total_steps, steps_per_epoch)
    unwrapped = forward  # evaluation runs outside DDP: no collective that only rank 0 would enter
    forward, optimizer = accelerator.prepare(forward, optimizer)
    head_check = None
    if cfg.preset != "study-literal":  # the fused path must give the student's own logits, whatever its family
        agreement = check_student_head(model, train[0], sorted({1.0, cfg.temperature}))
        if not agreement.passed:
            raise KdtuiError(agreement.refusal(f"the student {cfg.student} ({base_model(model).config.model_type})") +
                             "; distil a student of another family")
        head_check = agreement.as_dict()
    position = load_checkpoint(found[-1], model, optimizer, scheduler) if found else Position()
    main = accelerator.is_main_process
    if found and main:  # the job log says where a retried attempt picked up
        print(f"resuming {cfg.run} from step {position.step} of {total_steps} ({found[-1].name})", flush=True)

    def batch_loss(batch: list[TrainItem], training: bool = True) -> tuple[torch.Tensor, KDStats, int]:
        if cfg.preset == "study-literal":
            return literal_loss(model, batch[0], cfg.alpha, cfg.temperature, head)
        return aligned_loss(forward if training else unwrapped, model, batch, kd, head)

    def evaluate() -> float | None:
        if not held_out:
            return None
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(held_out), cfg.batch_size):
                loss, _, n = batch_loss(held_out[start:start + cfg.batch_size], training=False)
                total, count = total + float(loss) * n, count + n
        model.train()
        return total / max(count, 1)

    metrics_path = folder / "metrics.jsonl"
    lifecycle = run_lifecycle(store, cfg, name=cfg.run, kind="distill", logs=logs, should_stop=should_stop) \
        if main else nullcontext(_Follower(should_stop))
    with lifecycle as run:
        log = MetricsLog(metrics_path) if main else None
        ingester = MetricsIngester(store, run.run_id, metrics_path).start() if main else None
        if main:
            _write_info(folder, cfg, manifest, {"kept_mass": kept, "allow_lossy_targets": cfg.allow_lossy_targets,
                                                "student_head_check": head_check})
            if kept is not None and cfg.allow_lossy_targets and kept < KEPT_MASS_FLOOR:
                run.warn("lossy_targets")  # shows with the run wherever its warnings do
        # -- loop: micro-batches accumulate into an optimiser step; every step is a metrics line
        model.train()
        clock = _Clock(position.step)
        last_loss = math.nan
        evaluated: tuple[int, float | None] | None = None  # (step, held-out loss) of the latest evaluation
        saved_at: int | None = None  # the step of the latest checkpoint this process saved
        try:
            for epoch in range(position.epoch, cfg.epochs):
                order = _order(cfg, len(train), epoch, rank, world)
                step = _StepSums()
                for b in range(position.batch if epoch == position.epoch else 0, batches_per_epoch):
                    if position.step >= total_steps or run.should_stop():
                        break
                    batch = [train[i] for i in order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
                    if step.micro == 0:
                        step_tokens = _step_tokens(cfg, train, epoch, b, batches_per_epoch, world)
                    last_of_step = step.micro + 1 == cfg.grad_accum or b + 1 == batches_per_epoch
                    with nullcontext() if last_of_step else accelerator.no_sync(forward):
                        loss, stats, n = batch_loss(batch)
                        if not math.isfinite(float(loss.detach())) and log is not None:
                            # the step shows as a gap and a "diverged" marker on the curves
                            log.append({"split": "train", "step": position.step + 1, "total_steps": total_steps,
                                        "loss": float(loss.detach()), "logged_at": time.time()})
                        _stop_if_not_finite(float(loss.detach()), position.step + 1, folder)
                        # Each micro-batch's mean weighted by its share of the step's tokens (every rank's:
                        # DDP averages ranks), so the step optimises the token-weighted loss it logs.
                        accelerator.backward(loss * (n * world / step_tokens))
                    step.add(float(loss.detach()), stats, n)
                    if not last_of_step:
                        continue
                    grad_norm = _grad_norm(model, cfg.max_grad_norm)
                    lr = scheduler.get_last_lr()[0]  # the rate this step used
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    position.step, position.batch = position.step + 1, b + 1
                    if world > 1:  # the logged step is the whole step: every rank's tokens, token-weighted
                        total = accelerator.reduce(torch.tensor([*step.sums, step.tokens], dtype=torch.float64,
                                                                device=accelerator.device), reduction="sum")
                        step.sums, step.tokens = [float(v) for v in total[:-1]], int(total[-1])
                    position.tokens += step.tokens
                    row = step.row(position, epoch + (b + 1) / batches_per_epoch, lr, grad_norm, clock) | {
                        "total_steps": total_steps}
                    last_loss, step = row["loss"], _StepSums()
                    if log is not None:
                        log.append(row)
                        if cfg.eval_every and position.step % cfg.eval_every == 0:
                            evaluated = (position.step, evaluate())
                            log.append({"split": "eval", "step": position.step, "loss": evaluated[1],
                                        "logged_at": time.time()})
                        if position.step % cfg.checkpoint_every == 0:
                            save_checkpoint(folder / "checkpoints", model, optimizer, scheduler, position,
                                            cfg.keep_checkpoints)
                            saved_at = position.step
                        if progress is not None:
                            progress(row | {"eta_s": clock.eta(position.step, total_steps)})
                if run.stopped or position.step >= total_steps:
                    break
                position.epoch, position.batch = epoch + 1, 0
            # -- cleanup: the checkpoint to resume from, the final eval, the adapter
            adapter = None
            if main and saved_at != position.step:  # the last step's checkpoint is the one to resume from
                save_checkpoint(folder / "checkpoints", model, optimizer, scheduler, position, cfg.keep_checkpoints)
            eval_loss = None
            if not run.stopped:
                if evaluated is not None and evaluated[0] == position.step:
                    eval_loss, fresh = evaluated[1], False  # the schedule ended on an eval of this very model
                else:
                    eval_loss, fresh = evaluate(), True
                if log is not None:
                    if eval_loss is not None and fresh:
                        log.append({"split": "eval", "step": position.step, "loss": eval_loss,
                                    "logged_at": time.time()})
                    adapter = _save_outputs(folder, cfg, model, tokenizer, manifest)
        finally:
            if log is not None:
                log.close()
            pending = ingester is not None and not ingester.close(FINAL_INGEST_TIMEOUT_S)
            if pending:
                run.warn("metrics_not_ingested")
    return DistillResult(cfg.run, position.step, last_loss, eval_loss, adapter, folder, pending, dict(run.warnings))


class _Clock:
    """Throughput and ETA of this session (a resumed run does not count the steps it inherited)."""

    def __init__(self, first_step: int) -> None:
        self.started, self.first_step, self.tokens = time.monotonic(), first_step, 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self, step: int, total: int) -> float | None:
        rate = (step - self.first_step) / self.elapsed() if self.elapsed() > 0 else 0.0
        return (total - step) / rate if rate > 0 else None


@dataclass
class _StepSums:
    """Token-weighted sums over the micro-batches of one optimiser step."""

    micro: int = 0
    tokens: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0] * 5)

    def add(self, loss: float, stats: KDStats, n: int) -> None:
        self.micro += 1
        self.tokens += n
        for i, value in enumerate((loss, stats.ce, stats.divergence, stats.kl_bucketed, stats.kl_full)):
            self.sums[i] += value * n

    def row(self, position: Position, epoch: float, lr: float, grad_norm: float, clock: _Clock) -> dict[str, Any]:
        clock.tokens += self.tokens
        elapsed = clock.elapsed()
        loss, ce, divergence, kl_bucketed, kl_full = (v / max(self.tokens, 1) for v in self.sums)
        return {"split": "train", "step": position.step, "epoch": epoch, "loss": loss, "ce": ce,
                "divergence": divergence, "kl_bucketed": kl_bucketed, "kl_full": kl_full, "lr": lr,
                "grad_norm": grad_norm, "tokens": position.tokens,
                "tokens_per_s": clock.tokens / elapsed if elapsed > 0 else None, "elapsed_s": elapsed,
                "logged_at": time.time()}


def _stop_if_not_finite(loss: float, step: int, folder: Path) -> None:
    """A NaN/inf loss ends the run before it reaches the weights; the last checkpoint stays good."""
    if math.isfinite(loss):
        return
    last = checkpoints(folder / "checkpoints")
    raise KdtuiError(f"the loss became {loss} at step {step}; stopped with the last good checkpoint "
                     f"{last[-1] if last else '(none yet)'} kept: lower --lr, or check the capture")


def _grad_norm(model: torch.nn.Module, clip: float | None) -> float:
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    return float(torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf))


def _check_folder_owner(folder: Path, run: str) -> None:
    """A store from before the one-to-one layout may hold run "a/b" in the folder "a__b", the folder run "a__b"
    now maps to: its kdtui.json says whose it is, and another run is refused before it could resume that run's
    checkpoint or overwrite its adapter."""
    owner = run_info_owner(folder)
    if owner is not None and owner != run:
        raise KdtuiError(f"run {run!r} would share {folder} with run {owner!r} (an older kdtui named folders "
                         "with '/' as '__' and ':' as '_'); choose another --run")


def _check_targets(cfg: DistillConfig, root: Path, manifest: dict[str, Any] | None) -> float | None:
    """The fidelity gate: the teacher mass a top-k capture keeps at the training T (None: not top-k, or no KD).
    Below the floor the run is refused unless ``--allow-lossy-targets``."""
    if manifest is None or manifest["format"] != "topk" or not cfg.distils:
        return None
    from kdtui.captures.inspect import kept_mass, lossy_refusal

    temperatures = [float(t) for t in manifest["temperatures"]]
    at = min(range(len(temperatures)), key=lambda i: abs(temperatures[i] - cfg.temperature))
    kept = kept_mass(manifest, folder=StoreLayout(root).capture(manifest["name"]))[at]
    if kept < KEPT_MASS_FLOOR and not cfg.allow_lossy_targets:
        raise KdtuiError(lossy_refusal(manifest, kept, cfg.temperature))
    return kept


def _write_info(folder: Path, cfg: DistillConfig, manifest: dict[str, Any] | None,
                targets: dict[str, Any] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    info = {"run": cfg.run, "preset": cfg.preset, "student": cfg.student, "capture": cfg.capture,
            "strategy": manifest["strategy"]["name"] if manifest else cfg.preset, "config": cfg.model_dump(),
            "targets": targets or {}}
    (folder / RUN_INFO).write_text(json.dumps(info, indent=1))


def _save_outputs(folder: Path, cfg: DistillConfig, model: Any, tokenizer: Any,
                  manifest: dict[str, Any] | None) -> Path:
    """The adapter in PEFT format (or the full model), with kdtui.json naming its run and strategy."""
    target = folder / output_name(cfg.lora)
    tmp = folder / f".tmp-{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if not cfg.lora:
        tokenizer.save_pretrained(tmp)
    (tmp / RUN_INFO).write_text((folder / RUN_INFO).read_text())
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    if cfg.merge and cfg.lora:
        merged = folder / "merged"
        shutil.rmtree(merged, ignore_errors=True)
        model.merge_and_unload().save_pretrained(merged)
        tokenizer.save_pretrained(merged)
    return target
