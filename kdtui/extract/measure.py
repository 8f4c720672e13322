"""Extraction measured the way a user is affected: against a careful reader's reading of each response.

The reader's value of a row is ``committed`` where the row was read by hand blind to gold (null = the
model never committed), else ``adjudicated`` (-1 = no answer). Per run:

* accuracy by extraction, with reviews settled at the reader's value, against accuracy by the reader;
  the gap is what a leaderboard gets wrong;
* correctness agreement on auto-resolved rows (extraction right <=> reader right);
* committed-value agreement on auto-resolved rows (both no answer counts as agreeing);
* no-answer caught: of the rows the reader says never committed, how many extraction marked as no
  answer or sent to review;
* review share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kdtui.extract import answers_match, extract_answers


def reader_value(row: dict[str, Any]) -> float | None:
    """The careful reader's answer of a dev row (see the module docstring)."""
    if "committed_kind" in row:
        value = row["committed"]
        return None if value is None else float(value)
    adjudicated = row.get("adjudicated")
    return None if adjudicated in (-1, None) else float(adjudicated)


@dataclass
class Measures:
    n: int = 0
    extraction_right: int = 0
    reader_right: int = 0
    auto: int = 0
    correctness_agree: int = 0
    value_agree: int = 0
    no_answer: int = 0
    caught: int = 0
    reviews: int = 0

    def add(self, other: Measures) -> Measures:
        return Measures(*(a + b for a, b in zip(vars(self).values(), vars(other).values(), strict=True)))

    @property
    def gap_pp(self) -> float:
        return 100 * (self.extraction_right - self.reader_right) / max(self.n, 1)

    @property
    def correctness_agreement(self) -> float:
        return self.correctness_agree / max(self.auto, 1)

    @property
    def value_agreement(self) -> float:
        return self.value_agree / max(self.auto, 1)

    @property
    def no_answer_caught(self) -> float:
        return self.caught / max(self.no_answer, 1)

    @property
    def review_share(self) -> float:
        return self.reviews / max(self.n, 1)


def measure(rows: Sequence[dict[str, Any]], protocol: str) -> Measures:
    """The figures of one protocol on one run's rows (in the run's order; ``question`` and
    ``finish_reason`` are used when the rows have them)."""
    extractions = extract_answers([r["response"] for r in rows], protocol,
                                  questions=[r.get("question") for r in rows],
                                  finish_reasons=[r.get("finish_reason") for r in rows])
    m = Measures()
    for row, e in zip(rows, extractions, strict=True):
        reader = reader_value(row)
        m.n += 1
        m.extraction_right += answers_match(reader if e.needs_review else e.value, row["gold"])
        m.reader_right += answers_match(reader, row["gold"])
        m.reviews += e.needs_review
        if reader is None:
            m.no_answer += 1
            m.caught += e.value is None or e.needs_review
        if not e.needs_review:
            m.auto += 1
            m.correctness_agree += answers_match(e.value, row["gold"]) == answers_match(reader, row["gold"])
            m.value_agree += answers_match(e.value, reader)  # None matches None: both no answer
    return m


def measure_runs(rows: Sequence[dict[str, Any]], protocol: str) -> dict[str, Measures]:
    """:func:`measure` per run (the rows' ``set``), and ``overall`` summed over them."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        runs.setdefault(str(row.get("set", "all")), []).append(row)
    out = {name: measure(run_rows, protocol) for name, run_rows in runs.items()}
    total = Measures()
    for figures in out.values():
        total = total.add(figures)
    out["overall"] = total
    return out
