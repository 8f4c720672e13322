"""A deterministic store for TUI tests and snapshots: three runs over the same ten items."""

from __future__ import annotations

from pathlib import Path

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
