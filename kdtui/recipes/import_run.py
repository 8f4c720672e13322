"""Import recipe: predictions made elsewhere become a run, extracted, triageable and comparable.

Setup (read and validate every record first, holding none of them, so a bad file changes nothing)
-> loop (extract answers in file order, a block at a time) -> cleanup (the lifecycle writes the
rows and the status). Memory stays flat in the file's size: the file is read twice instead.
Formats: JSON lines or CSV with question/response/gold; lm-evaluation-harness
``samples_*.jsonl``; the study's assessment CSV (question, answer, model_answer,
extracted_answer).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdtui import __version__
from kdtui.config.imports import ImportConfig
from kdtui.errors import KdtuiError
from kdtui.extract import StudyCascade, answers_match, extract_answer, gold_answer
from kdtui.jsonl import Repairs, jsonl_objects
from kdtui.recipes.lifecycle import run_lifecycle
from kdtui.store import StoreAccess

# Records are extracted and written a block at a time: at most this many, and at most this much text
# (DuckDB's insert of a block takes several times its size; long responses make a few rows a lot of text).
BLOCK_ROWS = 2_000
BLOCK_BYTES = 4_000_000
ENCODING = "utf-8-sig"  # a byte-order mark (as Excel and PowerShell write) is skipped


@dataclass
class Imported:
    question: str
    response: str
    gold: float


@dataclass
class ImportSummary:
    count: int
    accuracy: float
    repairs: Repairs


def _gold(raw: Any, where: str) -> float:
    """A gold answer given as a finite number, or as a GSM8K solution ending in '#### N'."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    else:
        text = str(raw if raw is not None else "").strip()
        try:
            value = float(text.replace(",", ""))
        except ValueError:
            try:
                value = gold_answer(text)
            except ValueError:
                raise KdtuiError(f"{where}: gold {text[:40]!r} is neither a number nor a GSM8K '#### N' answer") \
                    from None
    if not math.isfinite(value):
        raise KdtuiError(f"{where}: gold {raw!r} is not a finite number; fix that record")
    return value


def _text(raw: Any, what: str, where: str) -> str:
    if not isinstance(raw, str):
        raise KdtuiError(f"{where}: {what} must be text, got {'null' if raw is None else type(raw).__name__}")
    return raw


def detect(path: Path) -> str:
    """The format of ``path``: by its ending, then by its first record's fields."""
    if path.suffix == ".csv":
        with path.open(encoding=ENCODING, newline="") as fh:
            header = next(csv.reader(fh), [])
        return "study" if "model_answer" in header else "csv"
    with path.open(encoding=ENCODING) as fh:
        for _, record in jsonl_objects(fh, str(path)):
            return "lm-eval" if "doc" in record and ("resps" in record or "filtered_resps" in record) else "jsonl"
    raise KdtuiError(f"{path} holds no records to import")


def _records(path: Path, fmt: str, repairs: Repairs) -> Iterator[tuple[int, dict[str, Any]]]:
    if fmt in ("csv", "study"):
        with path.open(encoding=ENCODING, newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                yield i + 2, row  # CSV text is decoded UTF-8: it cannot carry a lone surrogate
        return
    with path.open(encoding=ENCODING) as fh:
        yield from jsonl_objects(fh, str(path), repairs)


def _item(record: dict[str, Any], fmt: str, field: str, where: str) -> Imported:
    if fmt == "lm-eval":
        doc = record.get("doc") or {}
        resps = record.get("resps") or record.get("filtered_resps") or []
        first = resps[0] if resps else None
        response = first[0] if isinstance(first, list) and first else first
        gold = doc.get("answer", record.get("target")) if isinstance(doc, dict) else record.get("target")
        return Imported(_text(doc.get("question") if isinstance(doc, dict) else None, "doc.question", where),
                        _text(response, "resps[0][0]", where), _gold(gold, where))
    if fmt == "study":
        gold = record.get("extracted_answer") or record.get("answer")
        return Imported(_text(record.get("question"), "question", where),
                        _text(record.get("model_answer"), "model_answer", where), _gold(gold, where))
    missing = [k for k in ("question", field, "gold") if k not in record]
    if missing:
        raise KdtuiError(f"{where}: missing field(s) {', '.join(missing)} (need question, {field}, gold; "
                         "or pick --format)")
    return Imported(_text(record["question"], "question", where), _text(record[field], field, where),
                    _gold(record["gold"], where))


def iter_items(path: Path, fmt: str, field: str, repairs: Repairs | None = None) -> Iterator[Imported]:
    """Every record of ``path`` as (question, response, gold), one at a time; a bad record is a one-line
    error naming it."""
    repairs = repairs if repairs is not None else Repairs()
    try:
        for line, record in _records(path, fmt, repairs):
            yield _item(record, fmt, field, f"{path}:{line}")
    except (UnicodeDecodeError, csv.Error) as exc:
        raise KdtuiError(f"{path}: cannot read it as {fmt} ({exc})") from None


def check_file(path: Path) -> None:
    if not path.exists():
        raise KdtuiError(f"no such file: {path}")
    if not path.is_file():
        raise KdtuiError(f"{path} is not a regular file (a folder, device or pipe); import a file")


def run_import(cfg: ImportConfig, store: StoreAccess, logs: Path) -> ImportSummary:
    """Import ``cfg.file`` as run ``cfg.run``."""
    # -- setup: validate every record before the run exists, keeping none in memory
    path = Path(cfg.file).expanduser()
    check_file(path)
    fmt = detect(path) if cfg.format == "auto" else cfg.format
    count = sum(1 for _ in iter_items(path, fmt, cfg.field))
    if count == 0:
        raise KdtuiError(f"{path} holds no records to import")
    repairs, correct, index = Repairs(), 0, 0
    # "study" carries state through the run in file order: one cascade reads the whole file.
    study = StudyCascade() if cfg.protocol == "study" else None
    with run_lifecycle(store, cfg, name=cfg.run, kind="import", logs=logs) as run:
        # -- loop: a block of records at a time, extracted in file order
        block: list[Imported] = []
        size = 0
        for item in iter_items(path, fmt, cfg.field, repairs):
            block.append(item)
            size += len(item.response) + len(item.question)
            if len(block) == BLOCK_ROWS or size >= BLOCK_BYTES:
                correct += _write_block(run, block, index, path, cfg, study)
                index += len(block)
                block, size = [], 0
        if block:
            correct += _write_block(run, block, index, path, cfg, study)
        # -- cleanup: the lifecycle's writer keeps rows through a busy store and records the status
    return ImportSummary(count, correct / count, repairs)


def _write_block(run: Any, block: list[Imported], start: int, path: Path, cfg: ImportConfig,
                 study: StudyCascade | None) -> int:
    rows, correct = [], 0
    for offset, item in enumerate(block):
        e = study(item.response) if study is not None else \
            extract_answer(item.response, cfg.protocol, question=item.question)
        right = answers_match(e.value, item.gold)
        correct += right
        rows.append({
            "item_id": f"{path.stem}/{start + offset}", "question": item.question, "gold": item.gold,
            "prompt": None, "response": item.response, "n_new_tokens": None, "finish_reason": None,
            "value": e.value, "rule": e.rule, "needs_review": e.needs_review, "correct": right,
            "candidates": e.candidates, "protocol": cfg.protocol, "kdtui_version": __version__,
            "kind": e.kind, "reason": e.reason,
        })
    run.predictions.add(rows)
    return correct

