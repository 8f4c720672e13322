"""Import recipe: predictions made elsewhere become a run, extracted, triageable and comparable.

Setup (read and validate every record first, so a bad file changes nothing) -> loop
(extract answers in file order) -> cleanup (the lifecycle writes the rows and the status).
Formats: JSON lines or CSV with question/response/gold; lm-evaluation-harness
``samples_*.jsonl``; the study's assessment CSV (question, answer, model_answer,
extracted_answer).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdtui import __version__
from kdtui.config.imports import ImportConfig
from kdtui.data.jsonl import jsonl_objects
from kdtui.errors import KdtuiError
from kdtui.extract import answers_match, extract_answers, gold_answer
from kdtui.recipes.lifecycle import run_lifecycle
from kdtui.store import Store


@dataclass
class Imported:
    question: str
    response: str
    gold: float


def _gold(raw: Any, where: str) -> float:
    """A gold answer given as a number, or as a GSM8K solution ending in '#### N'."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    text = str(raw if raw is not None else "").strip()
    try:
        return float(text.replace(",", ""))
    except ValueError:
        pass
    try:
        return gold_answer(text)
    except ValueError:
        raise KdtuiError(f"{where}: gold {text[:40]!r} is neither a number nor a GSM8K '#### N' answer") from None


def _text(raw: Any, what: str, where: str) -> str:
    if not isinstance(raw, str):
        raise KdtuiError(f"{where}: {what} must be text, got {'null' if raw is None else type(raw).__name__}")
    return raw


def detect(path: Path) -> str:
    """The format of ``path``: by its ending, then by its first record's fields."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
        return "study" if "model_answer" in header else "csv"
    with path.open(encoding="utf-8") as fh:
        for _, record in jsonl_objects(fh, str(path)):
            return "lm-eval" if "doc" in record and ("resps" in record or "filtered_resps" in record) else "jsonl"
    raise KdtuiError(f"{path} holds no records to import")


def _records(path: Path, fmt: str) -> list[tuple[int, dict[str, Any]]]:
    if fmt in ("csv", "study"):
        with path.open(encoding="utf-8", newline="") as fh:
            return [(i + 2, dict(row)) for i, row in enumerate(csv.DictReader(fh))]
    with path.open(encoding="utf-8") as fh:
        return list(jsonl_objects(fh, str(path)))


def read_items(path: Path, fmt: str, field: str) -> list[Imported]:
    """Every record of ``path`` as (question, response, gold); any bad record is a one-line error."""
    items = []
    for line, record in _records(path, fmt):
        where = f"{path}:{line}"
        if fmt == "lm-eval":
            doc = record.get("doc") or {}
            resps = record.get("resps") or record.get("filtered_resps") or []
            first = resps[0] if resps else None
            response = first[0] if isinstance(first, list) and first else first
            gold = doc.get("answer", record.get("target")) if isinstance(doc, dict) else record.get("target")
            items.append(Imported(_text(doc.get("question") if isinstance(doc, dict) else None, "doc.question",
                                        where), _text(response, "resps[0][0]", where), _gold(gold, where)))
        elif fmt == "study":
            gold = record.get("extracted_answer") or record.get("answer")
            items.append(Imported(_text(record.get("question"), "question", where),
                                  _text(record.get("model_answer"), "model_answer", where), _gold(gold, where)))
        else:
            missing = [k for k in ("question", field, "gold") if k not in record]
            if missing:
                raise KdtuiError(f"{where}: missing field(s) {', '.join(missing)} (need question, {field}, gold; "
                                 "or pick --format)")
            items.append(Imported(_text(record["question"], "question", where), _text(record[field], field, where),
                                  _gold(record["gold"], where)))
    if not items:
        raise KdtuiError(f"{path} holds no records to import")
    return items


def run_import(cfg: ImportConfig, store: Store, logs: Path) -> tuple[int, float]:
    """Import ``cfg.file`` as run ``cfg.run``; returns (predictions, accuracy)."""
    # -- setup: read everything before the run exists
    path = Path(cfg.file).expanduser()
    if not path.is_file():
        raise KdtuiError(f"no such file: {path}")
    fmt = detect(path) if cfg.format == "auto" else cfg.format
    try:
        items = read_items(path, fmt, cfg.field)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise KdtuiError(f"{path}: cannot read it as {fmt} ({exc})") from None
    with run_lifecycle(store, cfg, name=cfg.run, kind="import", logs=logs) as run:
        # -- loop: extraction in file order (the study protocol carries state through it)
        extractions = extract_answers([item.response for item in items], cfg.protocol)
        rows = [{
            "item_id": f"{path.stem}/{index}", "question": item.question, "gold": item.gold, "prompt": None,
            "response": item.response, "n_new_tokens": None, "finish_reason": None, "value": e.value,
            "rule": e.rule, "needs_review": e.needs_review, "correct": answers_match(e.value, item.gold),
            "candidates": e.candidates, "protocol": cfg.protocol, "kdtui_version": __version__,
        } for index, (item, e) in enumerate(zip(items, extractions, strict=True))]
        # -- cleanup: the lifecycle's writer keeps rows through a busy store and records the status
        run.predictions.add(rows)
    correct = sum(answers_match(e.value, item.gold) for item, e in zip(items, extractions, strict=True))
    return len(rows), correct / len(rows)


