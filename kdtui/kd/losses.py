"""Knowledge-distillation losses: pure torch, no store, no Textual.

``alpha * CE + (1 - alpha) * D * T**2`` for five divergences ``D`` (forward KL, reverse KL,
generalised JSD(beta), total variation, skew KL(lambda)), over three teacher forms:

* :class:`DenseTeacher`: full logits;
* :class:`TopKTeacher`: k ids with their tempered log-probs and the exact log tail mass; the
  student is bucketed the same way (its tail is ``logsumexp`` over the logits outside the
  top-k minus ``logsumexp`` over all, computed by masking, never as ``1 - sum``). A divergence
  between bucketed distributions is a *lower bound* of the full one (data processing), and is
  reported as ``bucketed``, never as the full KL;
* :class:`HiddenTeacher`: the teacher's head input ``h`` and head ``W`` (logits = h W^T + b,
  scaled and soft-capped where the architecture does), recomputed inside each chunk.

:func:`fused_kd_loss` fuses the student's output projection into the loss, chunked over tokens:
peak memory grows with the chunk, not with tokens x vocabulary. Gradients for the student's
hidden states (and its head, unless frozen) are computed chunk by chunk during the forward
pass and returned by a custom autograd function; :func:`naive_kd_loss` is the full-vocabulary
reference it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from kdtui.captures.format import head_logits
from kdtui.config.study import STUDY_ALPHA, STUDY_TEMPERATURE
from kdtui.models.heads import LogitTransform

Divergence = Literal["forward_kl", "reverse_kl", "jsd", "tv", "skew_kl"]
DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd", "tv", "skew_kl")
IGNORE = -100


# ------------------------------------------------------------------- divergences


def wide(x: torch.Tensor) -> torch.Tensor:
    """fp32 for half-precision inputs; float64 stays float64 (a float64 reference is computed in float64)."""
    return x if x.dtype == torch.float64 else x.float()


def _kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """sum_i p_i (log p_i - log q_i) over the last dim; a term with p_i = 0 is 0, whatever q_i."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1)


def _log_mix(logp: torch.Tensor, logq: torch.Tensor, weight: float) -> torch.Tensor:
    """log(weight * p + (1 - weight) * q), stably."""
    if weight <= 0:
        return logq
    if weight >= 1:
        return logp
    return torch.logaddexp(logp + torch.log(torch.tensor(weight, dtype=logp.dtype, device=logp.device)),
                           logq + torch.log(torch.tensor(1 - weight, dtype=logq.dtype, device=logq.device)))


def divergence(teacher_logp: torch.Tensor, student_logp: torch.Tensor, kind: str, beta: float = 0.5,
               skew: float = 0.1) -> torch.Tensor:
    """Per-row divergence between two distributions given as log-probabilities over the last dim.

    forward_kl: KL(t || s); reverse_kl: KL(s || t); jsd: beta KL(t || m) + (1 - beta) KL(s || m) with
    m = beta t + (1 - beta) s; tv: sum |t - s| / 2; skew_kl: KL(t || skew t + (1 - skew) s).
    """
    if kind == "forward_kl":
        return _kl(teacher_logp, student_logp)
    if kind == "reverse_kl":
        return _kl(student_logp, teacher_logp)
    if kind == "jsd":
        mix = _log_mix(teacher_logp, student_logp, beta)
        return beta * _kl(teacher_logp, mix) + (1 - beta) * _kl(student_logp, mix)
    if kind == "tv":
        return 0.5 * (teacher_logp.exp() - student_logp.exp()).abs().sum(-1)
    if kind == "skew_kl":
        return _kl(teacher_logp, _log_mix(teacher_logp, student_logp, skew))
    raise ValueError(f"unknown divergence {kind!r}; use one of: {', '.join(DIVERGENCES)}")


# ----------------------------------------------------------------- teacher forms


@dataclass
class DenseTeacher:
    """Full teacher logits [N, V] at T = 1."""

    logits: torch.Tensor

    def log_probs(self, start: int, stop: int, temperature: float) -> torch.Tensor:
        return F.log_softmax(wide(self.logits[start:stop]) / temperature, dim=-1)


@dataclass
class HiddenTeacher:
    """The teacher's head input [N, d] and head [V, d] (+ bias, logit scale, soft-capping)."""

    hidden: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None = None
    logit_scale: float = 1.0
    softcap: float | None = None
    _weight32: torch.Tensor | None = field(default=None, init=False, repr=False)

    def log_probs(self, start: int, stop: int, temperature: float) -> torch.Tensor:
        if self._weight32 is None:  # converted once (callers pass an fp32 head, converted once per run)
            self._weight32 = self.weight if self.weight.dtype in (torch.float32, torch.float64) else self.weight.float()
        logits = head_logits(self.hidden[start:stop], self._weight32, self.bias, self.logit_scale, self.softcap)
        return F.log_softmax(logits / temperature, dim=-1)


@dataclass
class TopKTeacher:
    """Top-k ids [N, k], their tempered log-probs [N, k] and the exact log tail mass [N] (fp32)."""

    ids: torch.Tensor
    logprobs: torch.Tensor
    log_tail: torch.Tensor

    def buckets(self, start: int, stop: int) -> torch.Tensor:
        """[c, k + 1] log-probs: the k entries, then the tail bucket."""
        return torch.cat([wide(self.logprobs[start:stop]), wide(self.log_tail[start:stop])[:, None]], dim=-1)


Teacher = DenseTeacher | HiddenTeacher | TopKTeacher


def student_buckets(student_logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The student's [c, k + 1] bucketed log-probs: its log-probs at the teacher's ids, then the rest.

    The tail is logsumexp over the log-probs outside the ids (by masking), exact even when it is tiny.
    """
    inside = student_logp.gather(-1, ids)
    masked = student_logp.scatter(-1, ids, float("-inf"))
    return torch.cat([inside, torch.logsumexp(masked, dim=-1, keepdim=True)], dim=-1)


@dataclass
class KDConfig:
    """How the loss mixes: alpha * CE + (1 - alpha) * D * T**2."""

    alpha: float = STUDY_ALPHA
    temperature: float = STUDY_TEMPERATURE
    divergence: str = "reverse_kl"
    beta: float = 0.5  # JSD mixing weight
    skew: float = 0.1  # skew KL mixing weight
    chunk: int = 256  # tokens per chunk in the fused loss: peak memory ~ 20 x chunk x vocabulary x 4 bytes


def _chunk_terms(logits: torch.Tensor, labels: torch.Tensor, teacher: Teacher | None, start: int, stop: int,
                 cfg: KDConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed CE, summed divergence, summed bucketed forward KL, summed full forward KL (NaN when unknown).

    Without a teacher (plain fine-tuning) the divergence is 0 and both KLs are NaN.
    """
    ce = F.cross_entropy(wide(logits), labels, ignore_index=IGNORE, reduction="sum")
    if teacher is None:
        nan = torch.tensor(float("nan"), device=logits.device)
        return ce, torch.zeros((), device=logits.device), nan, nan
    # Masked rows are dropped before any divergence: a NaN teacher row there must not reach a gradient.
    keep = labels != IGNORE
    student_logp = F.log_softmax(wide(logits[keep]) / cfg.temperature, dim=-1)
    if isinstance(teacher, TopKTeacher):
        teacher_logp = teacher.buckets(start, stop)[keep]
        student_logp = student_buckets(student_logp, teacher.ids[start:stop][keep])
        full = torch.tensor(float("nan"))
    else:
        teacher_logp = teacher.log_probs(start, stop, cfg.temperature)[keep]
        full = _kl(teacher_logp, student_logp).detach().clamp(min=0).sum()  # rounding can dip below 0
    div = divergence(teacher_logp, student_logp, cfg.divergence, cfg.beta, cfg.skew).sum()
    # a full teacher's buckets are the vocabulary itself: its bucketed KL is the full one, not computed twice
    bucketed = full if not isinstance(teacher, TopKTeacher) else _kl(teacher_logp, student_logp).detach().clamp(
        min=0).sum()
    return ce, div, bucketed, full


def _mix(ce: torch.Tensor, div: torch.Tensor, count: int, cfg: KDConfig) -> torch.Tensor:
    return (cfg.alpha * ce + (1 - cfg.alpha) * div * cfg.temperature**2) / max(count, 1)


@dataclass
class KDStats:
    """Means per token: the loss parts, the forward KL over the stored buckets (a lower bound for top-k
    teachers) and over the full vocabulary (NaN where the teacher form cannot give it)."""

    ce: float
    divergence: float
    kl_bucketed: float
    kl_full: float


def _student_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    transform: LogitTransform | None) -> torch.Tensor:
    logits = h @ weight.T
    if bias is not None:
        logits = logits + bias
    return logits if transform is None else transform.apply(wide(logits))


def naive_kd_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, teacher: Teacher | None,
                  cfg: KDConfig, bias: torch.Tensor | None = None,
                  transform: LogitTransform | None = None) -> tuple[torch.Tensor, KDStats]:
    """The reference: full [N, V] student logits at once, plain autograd."""
    logits = _student_logits(hidden, weight, bias, transform)
    count = int((labels != IGNORE).sum())
    ce, div, bucketed, full = _chunk_terms(logits, labels, teacher, 0, hidden.shape[0], cfg)
    stats = KDStats(*(float(part.detach()) / max(count, 1) for part in (ce, div, bucketed, full)))
    return _mix(ce, div, count, cfg), stats


def _chunks(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, labels: torch.Tensor,
            teacher: Teacher | None, cfg: KDConfig, transform: LogitTransform | None,
            want: tuple[bool, bool, bool]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
    """Loss, summed parts and gradients (hidden, weight, bias: where ``want``), chunk by chunk.

    With nothing wanted (evaluation) no graph is built and autograd is never called. Head gradients are
    summed over chunks in fp32 (float64 for a float64 head), then given back in the head's dtype.
    """
    count = int((labels != IGNORE).sum())
    any_grad = any(want)
    grad_hidden = torch.zeros_like(hidden) if want[0] else None
    grad_weight = torch.zeros(weight.shape, dtype=wide(weight[:0]).dtype, device=weight.device) if want[1] else None
    grad_bias = torch.zeros(bias.shape, dtype=wide(bias[:0]).dtype, device=bias.device) \
        if want[2] and bias is not None else None
    total = torch.zeros((), dtype=wide(hidden[:0]).dtype, device=hidden.device)
    sums = torch.zeros(4, dtype=torch.float64)
    w_leaf = weight.detach().requires_grad_(want[1])
    b_leaf = None if bias is None else bias.detach().requires_grad_(want[2])
    for start in range(0, hidden.shape[0], cfg.chunk):
        stop = min(start + cfg.chunk, hidden.shape[0])
        with torch.enable_grad() if any_grad else torch.no_grad():
            h = hidden[start:stop].detach().requires_grad_(want[0])
            logits = _student_logits(h, w_leaf, b_leaf, transform)
            ce, div, bucketed, full = _chunk_terms(logits, labels[start:stop], teacher, start, stop, cfg)
            loss = _mix(ce, div, count, cfg)
            if any_grad:
                inputs = [x for x, wanted in ((h, want[0]), (w_leaf, want[1]), (b_leaf, want[2])) if wanted]
                grads = list(torch.autograd.grad(loss, inputs))  # type: ignore[arg-type]
                if grad_hidden is not None:
                    grad_hidden[start:stop] = grads.pop(0)
                if grad_weight is not None:
                    grad_weight += grads.pop(0)
                if grad_bias is not None:
                    grad_bias += grads.pop(0)
        total += loss.detach()
        sums += torch.stack([ce.detach(), div.detach().to(ce), bucketed.to(ce), full.to(ce)]).double().cpu()
    head_grads = [None if grad_weight is None else grad_weight.to(weight.dtype),
                  None if grad_bias is None or bias is None else grad_bias.to(bias.dtype)]
    return total, sums / max(count, 1), [grad_hidden, *head_grads]


class _FusedKD(torch.autograd.Function):
    """Loss and gradients chunk by chunk in forward; backward scales the stored gradients."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                labels: torch.Tensor, teacher: Teacher | None, cfg: KDConfig, stats: list[KDStats],
                transform: LogitTransform | None) -> torch.Tensor:
        want = (True, weight.requires_grad, bias is not None and bias.requires_grad)
        total, means, grads = _chunks(hidden, weight, bias, labels, teacher, cfg, transform, want)
        ctx.save_for_backward(*(g for g in grads if g is not None))
        ctx.has_weight, ctx.has_bias = grads[1] is not None, grads[2] is not None
        stats.append(KDStats(*means.tolist()))
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        saved = list(ctx.saved_tensors)
        grad_hidden = saved.pop(0) * grad_output
        grad_weight = saved.pop(0) * grad_output if ctx.has_weight else None
        grad_bias = saved.pop(0) * grad_output if ctx.has_bias else None
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None


def fused_kd_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, teacher: Teacher | None,
                  cfg: KDConfig, bias: torch.Tensor | None = None,
                  transform: LogitTransform | None = None) -> tuple[torch.Tensor, KDStats]:
    """The KD loss with the student's head fused in, ``cfg.chunk`` tokens at a time.

    ``hidden`` [N, d] are the student's final hidden states (after its norm), ``weight`` [V, d] its head,
    ``transform`` what its family does after the head (Granite's scaling, Gemma's soft-cap); a frozen head
    (``requires_grad=False``, as under LoRA) gets no weight gradient at all. Where no gradient can be wanted
    (``no_grad``, or no input requires one) nothing is differentiated.
    """
    if not torch.is_grad_enabled() or not any(x is not None and x.requires_grad for x in (hidden, weight, bias)):
        total, means, _ = _chunks(hidden, weight, bias, labels, teacher, cfg, transform, (False, False, False))
        return total, KDStats(*means.tolist())
    stats: list[KDStats] = []
    loss = _FusedKD.apply(hidden, weight, bias, labels, teacher, cfg, stats, transform)
    return loss, stats[0]
