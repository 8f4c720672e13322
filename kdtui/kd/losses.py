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

Divergence = Literal["forward_kl", "reverse_kl", "jsd", "tv", "skew_kl"]
DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd", "tv", "skew_kl")
IGNORE = -100


# ------------------------------------------------------------------- divergences


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
        return F.log_softmax(self.logits[start:stop].float() / temperature, dim=-1)


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
        if self._weight32 is None:  # converted once, not once per chunk
            self._weight32 = self.weight.float()
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
        return torch.cat([self.logprobs[start:stop].float(), self.log_tail[start:stop].float()[:, None]], dim=-1)


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

    alpha: float = 0.6093348343631224
    temperature: float = 5.942267335064758
    divergence: str = "reverse_kl"
    beta: float = 0.5  # JSD mixing weight
    skew: float = 0.1  # skew KL mixing weight
    chunk: int = 256  # tokens per chunk in the fused loss: peak memory ~ 20 x chunk x vocabulary x 4 bytes


def _chunk_terms(logits: torch.Tensor, labels: torch.Tensor, teacher: Teacher | None, start: int, stop: int,
                 cfg: KDConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed CE, summed divergence, summed bucketed forward KL, summed full forward KL (NaN when unknown).

    Without a teacher (plain fine-tuning) the divergence is 0 and both KLs are NaN.
    """
    ce = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum")
    if teacher is None:
        nan = torch.tensor(float("nan"), device=logits.device)
        return ce, torch.zeros((), device=logits.device), nan, nan
    student_logp = F.log_softmax(logits.float() / cfg.temperature, dim=-1)
    keep = labels != IGNORE
    if isinstance(teacher, TopKTeacher):
        teacher_logp = teacher.buckets(start, stop)
        student_logp = student_buckets(student_logp, teacher.ids[start:stop])
        full = torch.tensor(float("nan"))
    else:
        teacher_logp = teacher.log_probs(start, stop, cfg.temperature)
        full = _kl(teacher_logp, student_logp).detach().clamp(min=0)[keep].sum()  # rounding can dip below 0
    div = divergence(teacher_logp, student_logp, cfg.divergence, cfg.beta, cfg.skew)[keep].sum()
    bucketed = _kl(teacher_logp, student_logp).detach().clamp(min=0)[keep].sum()
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


def naive_kd_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, teacher: Teacher | None,
                  cfg: KDConfig, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, KDStats]:
    """The reference: full [N, V] student logits at once, plain autograd."""
    logits = hidden @ weight.T + (bias if bias is not None else 0)
    count = int((labels != IGNORE).sum())
    ce, div, bucketed, full = _chunk_terms(logits, labels, teacher, 0, hidden.shape[0], cfg)
    stats = KDStats(*(float(part.detach()) / max(count, 1) for part in (ce, div, bucketed, full)))
    return _mix(ce, div, count, cfg), stats


class _FusedKD(torch.autograd.Function):
    """Loss and gradients chunk by chunk in forward; backward scales the stored gradients."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                labels: torch.Tensor, teacher: Teacher | None, cfg: KDConfig, stats: list[KDStats]) -> torch.Tensor:
        count = int((labels != IGNORE).sum())
        want_weight = weight.requires_grad
        want_bias = bias is not None and bias.requires_grad
        grad_hidden = torch.zeros_like(hidden)
        grad_weight = torch.zeros_like(weight) if want_weight else None
        grad_bias = torch.zeros_like(bias) if want_bias and bias is not None else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        sums = torch.zeros(4, dtype=torch.float64)
        w_leaf = weight.detach().requires_grad_(want_weight)
        b_leaf = None if bias is None else bias.detach().requires_grad_(want_bias)
        for start in range(0, hidden.shape[0], cfg.chunk):
            stop = min(start + cfg.chunk, hidden.shape[0])
            with torch.enable_grad():
                h = hidden[start:stop].detach().requires_grad_(True)
                logits = h @ w_leaf.T
                if b_leaf is not None:
                    logits = logits + b_leaf
                ce, div, bucketed, full = _chunk_terms(logits, labels[start:stop], teacher, start, stop, cfg)
                loss = _mix(ce, div, count, cfg)
                inputs = [h] + ([w_leaf] if want_weight else []) + ([b_leaf] if want_bias else [])
                grads = torch.autograd.grad(loss, inputs)  # type: ignore[arg-type]
            grad_hidden[start:stop] = grads[0]
            if grad_weight is not None:
                grad_weight += grads[1]
            if grad_bias is not None:
                grad_bias += grads[-1]
            total += loss.detach()
            sums += torch.stack([ce.detach(), div.detach().to(ce), bucketed.to(ce), full.to(ce)]).double().cpu()
        ctx.save_for_backward(grad_hidden, *(g for g in (grad_weight, grad_bias) if g is not None))
        ctx.has_weight, ctx.has_bias = grad_weight is not None, grad_bias is not None
        means = (sums / max(count, 1)).tolist()
        stats.append(KDStats(*means))
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        saved = list(ctx.saved_tensors)
        grad_hidden = saved.pop(0) * grad_output
        grad_weight = saved.pop(0) * grad_output if ctx.has_weight else None
        grad_bias = saved.pop(0) * grad_output if ctx.has_bias else None
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


def fused_kd_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, teacher: Teacher | None,
                  cfg: KDConfig, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, KDStats]:
    """The KD loss with the student's head fused in, ``cfg.chunk`` tokens at a time.

    ``hidden`` [N, d] are the student's final hidden states (after its norm), ``weight`` [V, d] its head;
    a frozen head (``requires_grad=False``, as under LoRA) gets no weight gradient at all.
    """
    stats: list[KDStats] = []
    loss = _FusedKD.apply(hidden, weight, bias, labels, teacher, cfg, stats)
    return loss, stats[0]
