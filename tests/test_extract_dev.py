"""Extraction against the careful reader's reading of the study's responses (skipped without ../shared)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from kdtui.extract import answers_match, extract_answer
from kdtui.extract.measure import measure_runs


def test_default_reads_committed_answers(shared_data: Path) -> None:
    """Against the careful reader (``committed``, else ``adjudicated``), the measures a user is affected by.

    Measured here (dev): no-distil gap -0.4 pp, correctness 99.5%, value 95.4%, review 1.8%; fine-tune gap
    -4.2 pp, correctness 91.7%, value 66.5%, review 11.9%; overall value 81.8%, no-answer caught 54.0%. Issue 20
    asks |gap| <= 2 pp, correctness >= 96%, review <= 12% per run, value >= 93% and caught >= 60% overall: the
    fine-tune run is not there yet. These floors keep what was reached.
    """
    rows = [json.loads(line) for line in (shared_data / "seed-responses" / "dev.jsonl").read_text(
        encoding="utf-8").splitlines()]
    figures = measure_runs(rows, "default")
    for run, m in figures.items():
        print(f"{run:22s} gap {m.gap_pp:+.1f} corr {m.correctness_agreement:.3f} value {m.value_agreement:.3f} "
              f"caught {m.no_answer_caught:.3f} review {m.review_share:.3f}")
    short, trained, overall = figures["no-distil"], figures["no-distil-fine-tune"], figures["overall"]
    assert abs(short.gap_pp) <= 1.0 and short.correctness_agreement >= 0.99 and short.review_share <= 0.03
    assert short.value_agreement >= 0.94
    assert abs(trained.gap_pp) <= 5.0 and trained.correctness_agreement >= 0.91 and trained.review_share <= 0.12
    assert overall.value_agreement >= 0.80 and overall.no_answer_caught >= 0.50
    # The study's cascade, for comparison: the careful reading moves the trained run by 9 pp.
    assert figures["no-distil-fine-tune"].gap_pp > measure_runs(rows, "study-rules")["no-distil-fine-tune"].gap_pp + 8


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
