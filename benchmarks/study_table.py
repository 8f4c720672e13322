"""The study's results table, recomputed three ways, with Wilson intervals and McNemar against the control.

    python benchmarks/study_table.py [--study PATH/TO/knowledge-distillation] [--dev ../shared/.../dev.jsonl]
                                     [--labels FILE.jsonl]

With a checkout of the study's repository, its five assessment logs
(``assessment/logs/{no-distil,no-distil-fine-tune,base-KD,teacher-KD,ai-KD}.csv``) are read;
without one, the two runs in ``dev.jsonl``. Each run is scored:

* ``study+team``: the study's own code (protocol ``study``, in file order), and where that
  code sent a response to a human, the team's manual value: this should reproduce the
  published table (12.2 / 25.0 / 30.6 / 42.3 / 48.1 %);
* ``study-rules``: the four rules as the paper describes them, nothing manual (a response
  sent to review counts as wrong: no settled answer);
* ``default``: kdtui's reading of the committed answer, likewise.

Then, side by side per run: the published accuracy, the study's code as coded (``study+team``),
``default`` with its reviews settled at the careful reader's value, and the careful reader's own
accuracy. The reader's values come from ``--labels`` (JSON lines of ``id``, ``value``; ids are
``RUN/INDEX``, null = no answer), else, for the dev runs, from dev.jsonl's ``committed`` (read blind
to gold) or ``adjudicated``.

Baseline: the published accuracies; the "vs published" column is the difference in points.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from kdtui.extract import answers_match, extract_answers
from kdtui.extract.measure import reader_value
from kdtui.stats import mcnemar_exact

PUBLISHED = {"no-distil": 12.2, "no-distil-fine-tune": 25.0, "base-KD": 30.6, "teacher-KD": 42.3, "ai-KD": 48.1}
CONTROL = "no-distil"
DEFAULT_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed-responses" / "dev.jsonl"
Z = 1.959963984540054


@dataclass
class Item:
    question: str
    response: str
    gold: float
    team: float | None  # the value the study's team finally recorded (None: no answer)
    id: str = ""  # RUN/INDEX, as the labels name it
    reader: float | None = None  # the careful reader's value (None: never committed)


def _float(raw: object) -> float | None:
    try:
        value = float(str(raw).replace(",", ""))
    except ValueError:
        return None
    return None if value == -1 or math.isnan(value) else value


def from_checkout(root: Path) -> dict[str, list[Item]]:
    runs = {}
    for name in PUBLISHED:
        path = root / "assessment" / "logs" / f"{name}.csv"
        with path.open(encoding="utf-8", newline="") as fh:
            runs[name] = [Item(row["question"], row["model_answer"], float(row["extracted_answer"]),
                               _float(row["model_ex1"]), f"{name}/{i}") for i, row in enumerate(csv.DictReader(fh))]
    return runs


def from_dev(path: Path) -> dict[str, list[Item]]:
    runs: dict[str, list[Item]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        runs.setdefault(row["set"], []).append(Item(row["question"], row["study_text"], row["gold"],
                                                    _float(row["adjudicated"]), row["id"], reader_value(row)))
    return runs


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def score(items: list[Item], way: str) -> tuple[list[bool], int]:
    """Per item right or wrong, and how many went to review (settled by the team in study+team)."""
    protocol = {"study+team": "study", "default+reader": "default"}.get(way, way)
    if way == "reader":
        return [answers_match(item.reader, item.gold) for item in items], 0
    extractions = extract_answers([item.response for item in items], protocol,
                                  questions=[item.question for item in items])
    right, review = [], 0
    for item, extraction in zip(items, extractions, strict=True):
        value = extraction.value
        if extraction.needs_review:
            review += 1
            value = {"study+team": item.team, "default+reader": item.reader}.get(way)
        right.append(value is not None and answers_match(value, item.gold))
    return right, review


def load_labels(path: Path, runs: dict[str, list[Item]]) -> int:
    """Set each item's reader value from a JSON-lines file of ``id``, ``value``; returns how many matched."""
    labels = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            labels[str(record["id"])] = record.get("value")
    matched = 0
    for items in runs.values():
        for item in items:
            if item.id in labels:
                item.reader = None if labels[item.id] is None else float(labels[item.id])
                matched += 1
    return matched


def side_by_side(runs: dict[str, list[Item]]) -> None:
    print(f"\n{'run':20s} {'published':>9s} {'as coded':>9s} {'default':>9s} {'reader':>9s} "
          f"{'coded-reader':>12s} {'default-reader':>14s}")
    for name, items in runs.items():
        n = len(items)
        coded, default, reader = (100 * sum(score(items, way)[0]) / n
                                  for way in ("study+team", "default+reader", "reader"))
        published = PUBLISHED.get(name)
        shown = f"{published:8.1f}%" if published is not None else f"{'':9s}"
        print(f"{name:20s} {shown} {coded:8.1f}% {default:8.1f}% {reader:8.1f}% {coded - reader:+11.1f}pt "
              f"{default - reader:+13.1f}pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, help="a checkout of the study's repository")
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--labels", type=Path, help="JSON lines of id (RUN/INDEX) and value: the careful reader")
    args = parser.parse_args()
    runs = from_checkout(args.study) if args.study else from_dev(args.dev)
    if args.labels:
        print(f"labels: {load_labels(args.labels, runs)} items matched in {args.labels}")
    source = f"study checkout {args.study}" if args.study else f"{args.dev.name} (two runs)"
    print(f"source: {source}")
    print(f"{'run':20s} {'way':12s} {'accuracy':>9s} {'95% CI':>14s} {'review':>7s} {'vs published':>13s} "
          f"{'McNemar p vs ' + CONTROL:>22s}")
    for way in ("study+team", "study-rules", "default"):
        scored = {name: score(items, way) for name, items in runs.items()}
        control = {item.question: ok for item, ok in zip(runs[CONTROL], scored[CONTROL][0], strict=True)} \
            if CONTROL in runs else {}
        for name, (right, review) in scored.items():
            k, n = sum(right), len(right)
            low, high = wilson(k, n)
            published = PUBLISHED.get(name)
            delta = f"{100 * k / n - published:+.1f} pt" if published is not None else ""
            mark = " = published" if published is not None and round(100 * k / n, 1) == published else ""
            p_value = ""
            if control and name != CONTROL:
                only_run = sum(ok and not control.get(item.question, False)
                               for item, ok in zip(runs[name], right, strict=True))
                only_control = sum(control.get(item.question, False) and not ok
                                   for item, ok in zip(runs[name], right, strict=True))
                p_value = f"{mcnemar_exact(only_control, only_run):.2e}"
            print(f"{name:20s} {way:12s} {100 * k / n:8.1f}% {100 * low:6.1f}–{100 * high:5.1f}% {review:7d} "
                  f"{delta:>13s} {p_value:>22s}{mark}")
    if args.labels or not args.study:
        side_by_side(runs)


if __name__ == "__main__":
    main()
