"""Re-extraction recipe: a stored run's responses read again with another protocol, nothing regenerated.

Setup (the run, its responses in the data's order, the leaderboard line before) -> loop
(extract every response; ``study`` carries its state through the run) -> cleanup (write the
new extractions in one transaction, read the leaderboard line after).  Triage decisions
are untouched and stay in force over any new automatic value.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdtui import __version__
from kdtui.errors import KdtuiError
from kdtui.extract import PROTOCOLS, answers_match, extract_answers
from kdtui.store import Store
from kdtui.store.reads import LeaderRow, leaderboard


@dataclass
class ReextractResult:
    run: str
    protocol: str
    n: int
    changed: int  # predictions whose automatic value changed
    before: LeaderRow
    after: LeaderRow


def _line(store: Store, run_id: int) -> LeaderRow:
    return next(r for r in leaderboard(store) if r.run_id == run_id)


def run_reextract(store: Store, run: str, protocol: str) -> ReextractResult:
    # -- setup
    if protocol not in PROTOCOLS:
        raise KdtuiError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    record = store.runs.get(run)
    if record is None:
        raise KdtuiError(f"no run {run!r} in {store.path}; `kdtui store` lists the runs")
    rows = store.predictions.responses(record.id)
    if not rows:
        raise KdtuiError(f"run {run!r} has no predictions to re-extract")
    before = _line(store, record.id)

    # -- loop
    extractions = extract_answers([r["response"] or "" for r in rows], protocol,
                                  questions=[r["question"] for r in rows],
                                  finish_reasons=[r["finish_reason"] for r in rows])
    updates, changed = [], 0
    for row, extraction in zip(rows, extractions, strict=True):
        changed += not answers_match(extraction.value, row["value"])
        updates.append({
            "item_id": row["item_id"], "value": extraction.value, "rule": extraction.rule,
            "needs_review": extraction.needs_review, "correct": answers_match(extraction.value, row["gold"]),
            "candidates": extraction.candidates, "protocol": protocol, "kdtui_version": __version__,
            "kind": extraction.kind, "reason": extraction.reason,
        })

    # -- cleanup
    store.predictions.replace_extractions(record.id, updates)
    return ReextractResult(run, protocol, len(rows), changed, before, _line(store, record.id))
