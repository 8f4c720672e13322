"""Training checkpoints: trained weights, optimiser, scheduler, RNG and data position, written atomically.

A checkpoint is a folder ``step-NNNNNNN`` built under a temporary name and renamed into place, so a
kill leaves either the whole checkpoint or none of it; only the newest ``keep`` are kept. Weights are
the parameters that train (the LoRA matrices, or everything under full fine-tuning), by name, in
safetensors.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtui.errors import KdtuiError

PREFIX = "step-"


@dataclass
class Position:
    """Where training stands: optimiser steps done, the epoch, and micro-batches of it consumed."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    tokens: int = 0
    elapsed_s: float = 0.0


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                             "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, position: Position,
                    keep: int) -> Path:
    """Write checkpoint ``step-N`` under ``folder`` atomically; delete all but the newest ``keep``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{PREFIX}{position.step:07d}"
    tmp = folder / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()},
               tmp / "state.pt")
    (tmp / "position.json").write_text(json.dumps(asdict(position)))
    for path in tmp.iterdir():  # on disk before the rename makes the checkpoint visible
        with path.open("rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a ``.tmp-`` folder from a kill is not one)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and (p / "position.json").is_file())


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> Position:
    """Restore a checkpoint into a model, optimiser and scheduler built the same way; returns its position."""
    from safetensors.torch import load_file

    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [name for name in weights if name not in params]
    if missing:
        raise KdtuiError(f"checkpoint {path} does not fit this student ({missing[0]} is not a parameter); resume "
                         "with the same --student and LoRA settings")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    state = torch.load(path / "state.pt", weights_only=False)  # our own file: optimiser state and RNG tuples
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return Position(**json.loads((path / "position.json").read_text()))
