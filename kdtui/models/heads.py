"""Output heads: what a model family does to ``h W^T (+ b)`` before its logits, and a check that we agree.

Families transform the head's product (read from transformers' modeling code): Cohere multiplies by
``logit_scale``, Granite divides by ``logits_scaling``, Falcon-H1 multiplies by ``lm_head_multiplier``,
Gemma 2/3/4 soft-cap at ``final_logit_softcapping``. :func:`logit_transform` is the one place that reads
them; :func:`head_agreement` is the check that catches any family this list does not know: logits
rebuilt from the head input are compared with the model's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

# Rebuilt logits whose mean KL from the model's own exceeds this at any checked temperature are refused. A
# wrong transform costs nats (Granite's ignored 1/16 scaling: KL 8.2 at T = 1). Own logits rounded to bf16
# (|logit| ~ 30, 8 bits) differ from an fp32 rebuild by ~0.06, a KL of ~5e-4: half-precision models get the
# looser bound; fp32 agrees to ~1e-10.
HEAD_KL_TOLERANCE = 1e-4
HEAD_KL_TOLERANCE_HALF = 1e-2


@dataclass(frozen=True)
class LogitTransform:
    """logits = softcap * tanh(scale * (h W^T + b) / softcap), or scale * (h W^T + b) without a cap."""

    scale: float = 1.0
    softcap: float | None = None

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if self.scale != 1.0:
            logits = logits * self.scale
        return self.softcap * torch.tanh(logits / self.softcap) if self.softcap else logits


def _text_config(config: Any) -> Any:
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def logit_transform(config: Any) -> LogitTransform:
    """The transform a transformers (or ExLlamaV2) config says its model applies after the head."""
    config = _text_config(config)
    scale = 1.0
    for name in ("logit_scale", "lm_head_multiplier"):
        value = getattr(config, name, None)
        if isinstance(value, int | float) and value not in (0, 1):
            scale *= float(value)
    divisor = getattr(config, "logits_scaling", None)
    if isinstance(divisor, int | float) and divisor not in (0, 1):
        scale /= float(divisor)
    softcap = getattr(config, "final_logit_softcapping", None)
    return LogitTransform(scale, float(softcap) if softcap else None)


@dataclass
class HeadAgreement:
    """Own logits against logits rebuilt from the head input: the largest |difference| and the mean KL(own ||
    rebuilt) at each temperature."""

    max_abs_dlogit: float
    kl: dict[float, float]
    positions: int
    tolerance: float = HEAD_KL_TOLERANCE

    @property
    def worst_kl(self) -> float:
        return max(self.kl.values(), default=0.0)

    @property
    def worst_temperature(self) -> float:
        return max(self.kl, key=lambda t: self.kl[t], default=1.0)

    @property
    def passed(self) -> bool:
        return math.isfinite(self.worst_kl) and self.worst_kl <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        return {"max_abs_dlogit": self.max_abs_dlogit, "kl": {repr(t): v for t, v in self.kl.items()},
                "positions": self.positions, "tolerance": self.tolerance, "passed": self.passed}

    def refusal(self, who: str) -> str:
        """One line for a failed check."""
        return (f"{who}'s logits rebuilt from its output head differ from its own (KL "
                f"{self.worst_kl:.3g} > {self.tolerance:g} at T = {self.worst_temperature:g}, max |dlogit| "
                f"{self.max_abs_dlogit:.3g}): its family transforms logits in a way kdtui does not model")


def head_agreement(own: torch.Tensor, rebuilt: torch.Tensor, temperatures: list[float]) -> HeadAgreement:
    """Compare [n, V] logits (rebuilt may be wider: a padded head's extra rows are dropped); the bound is
    the looser one where the model's own logits are half precision."""
    tolerance = HEAD_KL_TOLERANCE if own.dtype in (torch.float32, torch.float64) else HEAD_KL_TOLERANCE_HALF
    own, rebuilt = own.double(), rebuilt[:, : own.shape[-1]].double()
    kl = {}
    for t in temperatures:
        p, q = torch.log_softmax(own / t, -1), torch.log_softmax(rebuilt / t, -1)
        kl[float(t)] = float((p.exp() * (p - q)).sum(-1).clamp(min=0).mean()) if own.numel() else 0.0
    delta = float((own - rebuilt).abs().max()) if own.numel() else 0.0
    return HeadAgreement(delta, kl, int(own.shape[0]), tolerance)
