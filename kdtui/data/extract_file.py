"""``kdtui extract``: run answer extraction over a JSON-lines file."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kdtui.errors import KdtuiError
from kdtui.extract import StudyCascade, answers_match, extract_answer
from kdtui.jsonl import Repairs, jsonl_objects


@dataclass
class ExtractSummary:
    """What one extraction pass over a file found."""

    count: int = 0
    auto_resolved: int = 0
    needs_review: int = 0
    with_gold: int = 0
    correct: int = 0
    with_adjudicated: int = 0
    agree: int = 0
    agree_unflagged: int = 0
    unflagged_adjudicated: int = 0
    no_answer: int = 0
    repairs: Repairs = field(default_factory=Repairs)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        def share(part: int, whole: int) -> str:
            return f"{part}/{whole} ({part / whole:.1%})" if whole else "n/a"

        out = [
            f"responses:        {self.count}",
            f"auto-resolved:    {share(self.auto_resolved, self.count)}",
            f"needs review:     {share(self.needs_review, self.count)}",
            f"no answer:        {share(self.no_answer, self.count)}",
        ]
        if self.repairs.surrogates:
            out.append(f"mended:           {self.repairs.note().lstrip('; ')}")
        if self.with_gold:
            out.append(f"accuracy (gold):  {share(self.correct, self.with_gold)}")
        if self.with_adjudicated:
            out.append(f"agreement (adj.): {share(self.agree, self.with_adjudicated)}")
            out.append(
                "  not flagged:    " + share(self.agree_unflagged, self.unflagged_adjudicated)
            )
        return out


def _as_number(raw: Any, line_no: int, field: str) -> float | None:
    """A gold/adjudicated field: a number, -1 (no answer) or null."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise KdtuiError(f"line {line_no}: field {field!r} must be a number, got {raw!r}") from None
    return None if value == -1 else value


def extract_stream(src: IO[str], dst: IO[str], protocol: str, field: str, source_name: str) -> ExtractSummary:
    """Extract answers from every line of ``src``; write enriched lines to ``dst``."""
    summary = ExtractSummary()
    # "study" is stateful over a run in its file order: one cascade reads the whole file.
    study = StudyCascade() if protocol == "study" else None
    for line_no, record in jsonl_objects(src, source_name, summary.repairs):
        response = record.get(field)
        if not isinstance(response, str):
            raise KdtuiError(
                f"{source_name}:{line_no}: no text field {field!r} (fields: {', '.join(record) or 'none'}); "
                "choose one with --field"
            )
        question, finish = record.get("question"), record.get("finish_reason")
        result = study(response) if study is not None else extract_answer(
            response, protocol, question=question if isinstance(question, str) else None,
            finish_reason=finish if isinstance(finish, str) else None)
        record.update(
            value=result.value,
            rule=result.rule,
            needs_review=result.needs_review,
            candidates=result.candidates,
            kind=result.kind,
            reason=result.reason,
        )
        summary.no_answer += result.kind == "no_answer"
        dst.write(json.dumps(record, ensure_ascii=False) + "\n")
        summary.count += 1
        summary.needs_review += result.needs_review
        summary.auto_resolved += not result.needs_review
        if "gold" in record:
            summary.with_gold += 1
            summary.correct += answers_match(result.value, _as_number(record["gold"], line_no, "gold"))
        if "adjudicated" in record:
            agreed = answers_match(result.value, _as_number(record["adjudicated"], line_no, "adjudicated"))
            summary.with_adjudicated += 1
            summary.agree += agreed
            if not result.needs_review:
                summary.unflagged_adjudicated += 1
                summary.agree_unflagged += agreed
    return summary


def extract_file(path: Path, out: Path | None, protocol: str, field: str) -> ExtractSummary:
    """Run :func:`extract_stream` on files; the output is written atomically."""
    if out is not None and not out.parent.is_dir():
        raise KdtuiError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    if not path.exists():
        raise KdtuiError(f"no such input file: {path}")
    if not path.is_file():
        raise KdtuiError(f"{path} is not a regular file (a folder, device or pipe); give a JSON-lines file")
    if out is None:
        with path.open(encoding="utf-8") as src:
            return extract_stream(src, sys.stdout, protocol, field, str(path))
    tmp = out.with_name(out.name + ".part")
    try:
        with path.open(encoding="utf-8") as src, tmp.open("w", encoding="utf-8") as dst:
            summary = extract_stream(src, dst, protocol, field, str(path))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return summary
