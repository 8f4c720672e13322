"""Extraction against the study's adjudicated responses (skipped without ../shared)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from kdtui.extract import answers_match, extract_answer


def _agreement(path: Path, protocol: str) -> dict[str, tuple[float, float]]:
    """Per run and overall: (agreement among unflagged, review share)."""
    tallies: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # n, flagged, agree-unflagged
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        result = extract_answer(row["response"], protocol)
        adjudicated = None if row["adjudicated"] == -1 else row["adjudicated"]
        for key in (row["set"], "all"):
            tally = tallies[key]
            tally[0] += 1
            if result.needs_review:
                tally[1] += 1
            else:
                tally[2] += answers_match(result.value, adjudicated)
    return {k: (t[2] / (t[0] - t[1]), t[1] / t[0]) for k, t in tallies.items()}


def test_default_protocol_agrees_with_adjudication(shared_data: Path) -> None:
    figures = _agreement(shared_data / "seed-responses" / "dev.jsonl", "default")
    for run, (agree, review) in sorted(figures.items()):
        print(f"{run:22s} agreement {agree:.3f} review {review:.3f}")
    agree, review = figures["all"]
    assert agree >= 0.91
    assert review <= 0.15
    # the no-distillation run, whose answers mostly open the response, is near-perfect
    assert figures["no-distil"][0] >= 0.95


def test_seed_protocol_reproduces_reported_accuracy(shared_data: Path) -> None:
    """The study reported 12.2% (no-distil) and 25.0% (fine-tune) with its cascade."""
    correct: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in (shared_data / "seed-responses" / "dev.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        result = extract_answer(row["response"], "seed")
        correct[row["set"]][0] += answers_match(result.value, row["gold"])
        correct[row["set"]][1] += 1
    assert abs(correct["no-distil"][0] / correct["no-distil"][1] - 0.122) < 0.01
    assert abs(correct["no-distil-fine-tune"][0] / correct["no-distil-fine-tune"][1] - 0.250) < 0.01
