"""KD losses: every divergence against a float64 formula, the chunked fused loss against the naive one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdtui.kd.losses import (
    DIVERGENCES,
    DenseTeacher,
    HiddenTeacher,
    KDConfig,
    TopKTeacher,
    divergence,
    fused_kd_loss,
    naive_kd_loss,
    student_buckets,
)


def _reference(p: np.ndarray, q: np.ndarray, kind: str, beta: float, skew: float) -> float:
    """The textbook formulas in float64, term by term."""
    def kl(a: np.ndarray, b: np.ndarray) -> float:
        return float(sum(x * math.log(x / y) if y > 0 else math.inf for x, y in zip(a, b, strict=True) if x > 0))

    if kind == "forward_kl":
        return kl(p, q)
    if kind == "reverse_kl":
        return kl(q, p)
    if kind == "jsd":
        m = beta * p + (1 - beta) * q
        return beta * kl(p, m) + (1 - beta) * kl(q, m)
    if kind == "tv":
        return float(0.5 * np.abs(p - q).sum())
    return kl(p, skew * p + (1 - skew) * q)


@pytest.mark.parametrize("kind", DIVERGENCES)
def test_divergences_match_float64_formulas(kind: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.dirichlet(np.full(12, 0.3))
        q = rng.dirichlet(np.full(12, 0.3))
        p[rng.integers(12)] = 0.0  # a teacher zero: its terms vanish, never NaN
        p /= p.sum()
        with np.errstate(divide="ignore"):  # log(0) = -inf is the point: a zero the formulas must survive
            got = divergence(torch.tensor(np.log(p)), torch.tensor(np.log(q)), kind, beta=0.3, skew=0.2)
        assert float(got) == pytest.approx(_reference(p, q, kind, 0.3, 0.2), rel=1e-9, abs=1e-12)


def _topk(logits: torch.Tensor, k: int, temperature: float) -> TopKTeacher:
    logp = F.log_softmax(logits.double() / temperature, dim=-1)
    values, ids = logp.topk(k, dim=-1)
    tail = \
        torch.logsumexp(logp.scatter(-1, ids, float("-inf")), dim=-1)  # exact, as a v2 capture stores it
    return TopKTeacher(ids, values.float(), tail.float())


def _teachers(n: int, vocab: int, temperature: float) -> dict[str, object]:
    torch.manual_seed(1)
    logits = torch.randn(n, vocab) * 4
    return {"dense": DenseTeacher(logits), "topk": _topk(logits, 6, temperature),
            "hidden": HiddenTeacher(torch.randn(n, 24), torch.randn(vocab, 24) / 3, torch.randn(vocab), 1.3, 20.0)}


@pytest.mark.parametrize("form", ["dense", "topk", "hidden"])
@pytest.mark.parametrize("kind", DIVERGENCES)
def test_chunked_loss_and_gradients_equal_the_naive_ones(form: str, kind: str) -> None:
    n, d, vocab = 45, 16, 70
    cfg = KDConfig(divergence=kind, temperature=3.0, alpha=0.4, chunk=8)
    teacher = _teachers(n, vocab, cfg.temperature)[form]
    torch.manual_seed(2)
    hidden = torch.randn(n, d, requires_grad=True)
    weight = (torch.randn(vocab, d) / 4).requires_grad_()
    bias = torch.randn(vocab, requires_grad=True)
    labels = torch.randint(0, vocab, (n,))
    labels[[0, 17]] = -100  # masked positions count in neither part
    naive, naive_stats = naive_kd_loss(hidden, weight, labels, teacher, cfg, bias)  # type: ignore[arg-type]
    fused, fused_stats = fused_kd_loss(hidden, weight, labels, teacher, cfg, bias)  # type: ignore[arg-type]
    expected = torch.autograd.grad(naive, [hidden, weight, bias])
    got = torch.autograd.grad(fused, [hidden, weight, bias])
    assert float(fused.detach()) == pytest.approx(float(naive.detach()), rel=1e-5)
    for e, g in zip(expected, got, strict=True):
        assert float((e - g).norm() / e.norm()) <= 1e-5
    assert fused_stats.kl_bucketed == pytest.approx(naive_stats.kl_bucketed, rel=1e-5)
    assert math.isnan(fused_stats.kl_full) == (form == "topk")  # a top-k teacher cannot give the full KL


def test_a_frozen_head_gets_no_gradient_and_costs_none() -> None:
    teacher = _teachers(20, 30, 2.0)["dense"]
    hidden = torch.randn(20, 8, requires_grad=True)
    weight = torch.randn(30, 8)  # frozen, as under LoRA
    loss, _ = fused_kd_loss(hidden, weight, torch.randint(0, 30, (20,)), teacher, KDConfig(chunk=7))  # type: ignore[arg-type]
    loss.backward()
    assert hidden.grad is not None and weight.grad is None


def test_bucketed_kl_is_a_lower_bound_of_the_full_kl() -> None:
    temperature = 5.94
    teachers = _teachers(30, 500, temperature)
    torch.manual_seed(4)
    student = F.log_softmax(torch.randn(30, 500) * 4 / temperature, dim=-1)
    dense = teachers["dense"].log_probs(0, 30, temperature)  # type: ignore[union-attr]
    topk = teachers["topk"]
    full = divergence(dense, student, "forward_kl")
    bucketed = divergence(topk.buckets(0, 30), student_buckets(student, topk.ids), "forward_kl")  # type: ignore[union-attr]
    assert bool((bucketed <= full + 1e-6).all()) and float(bucketed.mean()) < float(full.mean())


def test_a_tiny_tail_gives_finite_exact_kl_both_ways() -> None:
    """Three dominant tokens and a tail of 1e-5: 1 - sum(top-k) rounds to 0 in fp16, the stored log tail does not."""
    vocab = 1000
    probs = np.full(vocab, 1e-5 / (vocab - 3))
    probs[:3] = (1 - 1e-5) * np.array([0.5, 0.3, 0.2])
    logits = torch.tensor(np.log(probs), dtype=torch.float64)
    teacher = _topk(logits[None].float(), 3, 1.0)
    assert float(1 - teacher.logprobs.half().float().exp().sum()) <= 1e-3  # the old way: tail lost to rounding
    student = F.log_softmax(torch.randn(1, vocab, dtype=torch.float64), dim=-1)
    s_buckets = student_buckets(student, teacher.ids)
    t_buckets = teacher.buckets(0, 1).double()
    for kind in ("forward_kl", "reverse_kl"):
        got = float(divergence(t_buckets, s_buckets, kind)[0])
        p = t_buckets.exp().numpy()[0]
        q = s_buckets.exp().numpy()[0]
        assert math.isfinite(got) and got == pytest.approx(_reference(p, q, kind, 0.5, 0.1), rel=1e-6)
