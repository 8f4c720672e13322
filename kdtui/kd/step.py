"""One training step's loss: items batched, the student run, the loss taken where the targets are.

``aligned_loss`` never materialises [tokens, vocabulary] student logits: it takes the backbone's final
hidden states at the target positions and hands them, with the (frozen under LoRA) output head, to
:func:`kdtui.kd.losses.fused_kd_loss`. ``literal_loss`` is the notebooks' computation, kept verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from kdtui.captures.format import head_logits
from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError
from kdtui.kd.examples import TrainItem
from kdtui.kd.losses import (
    DenseTeacher,
    HiddenTeacher,
    KDConfig,
    KDStats,
    Teacher,
    TopKTeacher,
    _kl,
    fused_kd_loss,
)
from kdtui.models.heads import HeadAgreement, LogitTransform, head_agreement, logit_transform


def base_model(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def output_head(model: Any) -> torch.nn.Module:
    """The student's output projection (its family's transform after it: :func:`student_transform`)."""
    head: torch.nn.Module = base_model(model).get_output_embeddings()
    return head


def student_transform(model: Any) -> LogitTransform:
    return logit_transform(base_model(model).config)


def check_student_head(model: Any, item: TrainItem, temperatures: list[float]) -> HeadAgreement:
    """The fused path's logits (final hidden state, head, family transform) against the student's own forward,
    at one item's target positions, in eval mode (no dropout); the caller refuses a failed check."""
    device = next(model.parameters()).device
    ids = torch.tensor([item.input_ids], device=device)
    rows = torch.arange(item.target_pos, item.target_pos + item.n_targets, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            own = model(input_ids=ids).logits[0, rows]
            hidden = TargetHidden(model)(ids, torch.ones_like(ids), rows)
            head = output_head(model)
            transform = student_transform(model)
            rebuilt = head_logits(hidden, head.weight, getattr(head, "bias", None), transform.scale,  # type: ignore[arg-type]
                                  transform.softcap)
    finally:
        model.train(was_training)
    return head_agreement(own, rebuilt, temperatures)


class TargetHidden(torch.nn.Module):
    """The student's final hidden states (after its norm) at chosen flat positions.

    A module of its own so that ``accelerator.prepare`` can wrap it (DDP syncs gradients of what runs
    inside a wrapped forward); the head is applied outside, chunk by chunk, by the fused loss.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.__dict__["_backbone"] = base_model(model).get_decoder()  # not a second registration of the same weights

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        out = self.__dict__["_backbone"](input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        return hidden.reshape(-1, hidden.shape[-1])[rows]


@dataclass
class HeadWeights:
    """A hidden-format capture's teacher head (``head.safetensors``)."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None
    logit_scale: float = 1.0
    softcap: float | None = None

    def prepared(self, device: torch.device | str) -> HeadWeights:
        """On the training device in fp32, once per run (not once per micro-batch: 8.4 GB at 405B scale)."""
        wide = torch.float64 if self.weight.dtype == torch.float64 else torch.float32
        return HeadWeights(self.weight.to(device=device, dtype=wide),
                           None if self.bias is None else self.bias.to(device=device, dtype=wide),
                           self.logit_scale, self.softcap)


def load_head(root: Path, manifest: dict[str, Any]) -> HeadWeights:
    """The teacher head stored once per hidden-format capture, checked against the manifest."""
    from kdtui.captures.format import read_head

    return HeadWeights(**read_head(StoreLayout(root).capture(manifest["name"]), manifest))


def _cat(parts: list[torch.Tensor | None]) -> torch.Tensor:
    return torch.cat([p for p in parts if p is not None])


def _teacher(items: list[TrainItem], head: HeadWeights | None) -> Teacher | None:
    rows = [item.teacher for item in items if item.teacher is not None]
    if len(rows) != len(items):
        return None  # cross-entropy alone (fine-tune)
    if rows[0].topk_ids is not None:
        return TopKTeacher(_cat([r.topk_ids for r in rows]), _cat([r.topk_logprobs for r in rows]),
                           _cat([r.log_tail for r in rows]))
    if rows[0].logits is not None:
        return DenseTeacher(_cat([r.logits for r in rows]))
    if head is None:
        raise KdtuiError("a hidden-format capture needs its head.safetensors")
    return HiddenTeacher(_cat([r.hidden for r in rows]), head.weight, head.bias, head.logit_scale, head.softcap)


def aligned_loss(forward: torch.nn.Module, model: Any, items: list[TrainItem], cfg: KDConfig,
                 head: HeadWeights | None = None) -> tuple[torch.Tensor, KDStats, int]:
    """Loss of a micro-batch (right-padded); returns the loss, its parts and the target tokens."""
    device = next(model.parameters()).device
    length = max(len(item.input_ids) for item in items)
    ids = torch.zeros((len(items), length), dtype=torch.long)
    mask = torch.zeros_like(ids)
    rows: list[int] = []
    for b, item in enumerate(items):
        ids[b, :len(item.input_ids)] = torch.tensor(item.input_ids)
        mask[b, :len(item.input_ids)] = 1
        rows.extend(b * length + item.target_pos + j for j in range(item.n_targets))
    hidden = forward(ids.to(device), mask.to(device), torch.tensor(rows, device=device))
    labels = torch.tensor([t for item in items for t in item.labels], device=device)
    teacher = _to_device(_teacher(items, head), device)
    projection = output_head(model)
    weight: torch.Tensor = projection.weight  # type: ignore[assignment]
    loss, stats = fused_kd_loss(hidden, weight, labels, teacher, cfg, getattr(projection, "bias", None),
                                student_transform(model))
    return loss, stats, len(rows)


def _to_device(teacher: Teacher | None, device: torch.device) -> Teacher | None:
    if isinstance(teacher, TopKTeacher):
        return TopKTeacher(teacher.ids.to(device), teacher.logprobs.to(device), teacher.log_tail.to(device))
    if isinstance(teacher, DenseTeacher):
        return DenseTeacher(teacher.logits.to(device))
    if isinstance(teacher, HiddenTeacher):
        return HiddenTeacher(teacher.hidden.to(device), teacher.weight.to(device),
                             None if teacher.bias is None else teacher.bias.to(device), teacher.logit_scale,
                             teacher.softcap)
    return teacher


def teacher_logits(item: TrainItem, head: HeadWeights | None) -> torch.Tensor:
    """Full teacher logits at T = 1 of an item (dense rows, or recomputed from a hidden capture)."""
    assert item.teacher is not None
    if item.teacher.logits is not None:
        return item.teacher.logits
    if item.teacher.hidden is None or head is None:
        raise KdtuiError("--preset study-literal needs full teacher logits: a dense or hidden capture")
    return head_logits(item.teacher.hidden, head.weight, head.bias, head.logit_scale, head.softcap)


def literal_loss(model: Any, item: TrainItem, alpha: float, temperature: float,
                 head: HeadWeights | None = None) -> tuple[torch.Tensor, KDStats, int]:
    """The notebooks' ``KnowledgeDistillationLoss`` on their misaligned inputs, op for op.

    Student logits over the bare question, labels = the solution's ids (BOS first) at the same
    positions (no shift), teacher = its first prompt positions; ``F.kl_div(log_softmax(teacher / T),
    softmax(student / T), reduction="batchmean")`` is KL(student || teacher) per position.
    """
    device = next(model.parameters()).device
    n = item.n_targets
    student_logits = model(input_ids=torch.tensor([item.input_ids], device=device)).logits[0, :n, :]
    labels = torch.tensor(item.labels, device=device)
    teacher = teacher_logits(item, head)[:n].to(device=device, dtype=student_logits.dtype)
    loss_hard = F.cross_entropy(student_logits, labels)
    teacher_log_probs = F.log_softmax(teacher / temperature, dim=1)
    student_probs = F.softmax(student_logits / temperature, dim=1)
    soft = F.kl_div(teacher_log_probs, student_probs, reduction="batchmean", log_target=False)
    loss = alpha * loss_hard + (1.0 - alpha) * soft * temperature**2
    with torch.no_grad():
        forward = _kl(teacher_log_probs.float(), F.log_softmax(student_logits.float() / temperature, dim=1))
    stats = KDStats(float(loss_hard.detach()), float(soft.detach()), float("nan"), float(forward.mean()))
    return loss, stats, n
