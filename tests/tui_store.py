"""A deterministic store for TUI tests and snapshots: three runs over the same ten items."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from kdtui.extract import answers_match, extract_answer
from kdtui.store import Store

RESPONSES = [
    "18",
    "The answer is \\boxed{7}",
    "## Step 1: add\n3 + 4 = 7\n## Step 2: check",
    "She has 12 apples. Then 12 - 5",
    "3/4",
    "We get 40. Answer: 40",
    "It is 25 dollars.",
    "## Step 1: eggs\n16 - 3 = 13\n## Step 2: money",
    "No idea.",
    "\\boxed{9} or maybe \\boxed{8}",
]
GOLDS = [18, 7, 7, 7, 5, 40, 25, 26, 3, 9]


def build_store(root: Path) -> Store:
    store = Store(root)
    for run, shift, strategy in (("base", 0, "base"), ("teacher-kd", 1, "teacher"), ("no-distil", 3, None)):
        run_id = store.runs.start(run, "eval", {"model": "tiny", "prompt": "plain", "strategy": strategy})
        rows = []
        for i in range(10):
            response = RESPONSES[(i + shift) % 10] if shift != 1 or i % 2 else RESPONSES[i]
            # as read without a finish reason: the step responses end mid-heading, and count as cut off
            extraction = extract_answer(response, question=f"Question {i}: how many apples?")
            rows.append(dict(
                item_id=f"q{i:02d}", question=f"Question {i}: how many apples?", gold=float(GOLDS[i]),
                prompt=f"Question {i}", response=response, n_new_tokens=10 + i, finish_reason="eos",
                value=extraction.value, rule=extraction.rule, needs_review=extraction.needs_review,
                correct=answers_match(extraction.value, GOLDS[i]), candidates=extraction.candidates,
                kind=extraction.kind, reason=extraction.reason,
            ))
        store.predictions.add(run_id, rows)
        store.runs.finish(run_id, "done")
    return store


def copy_store(template: Path, root: Path) -> Store:
    """A copy of a store built once (no process holds it), as a new store at ``root``."""
    shutil.copytree(template, root)
    return Store(root)


def seed_run(store: Store, name: str, steps: int, nan_at: int | None = None) -> int:
    """A distill run with a decaying, noisy loss curve (and eval points every 100 steps)."""
    run_id = store.runs.start(name, "distill", {"preset": "study", "capture": "c"})
    rng = np.random.default_rng(len(name))
    rows: list[dict[str, Any]] = []
    for step in range(1, steps + 1):
        loss = 4 * math.exp(-step / 200) + 0.5 + float(rng.normal(0, 0.3))
        if nan_at is not None and step >= nan_at:
            loss = math.nan
        rows.append({"split": "train", "step": step, "total_steps": steps, "loss": loss, "ce": loss * 1.2,
                     "divergence": loss * 0.1, "lr": 1e-3 * (1 - step / steps), "grad_norm": 1.0 + step % 7,
                     "tokens": step * 100, "tokens_per_s": 1000.0, "elapsed_s": step * 0.1})
        if step % 100 == 0:
            rows.append({"split": "eval", "step": step, "loss": loss + 0.2})
    store.train_metrics.upsert(run_id, rows)
    store.runs.finish(run_id, "done")
    return run_id
