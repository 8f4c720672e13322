"""Answer extraction measured the way a user is affected, and its throughput, protocols side by side.

    python benchmarks/extract_bench.py [--data ../shared/data/seed-responses/dev.jsonl] [--repeat 3]

Per dev run, against the careful reader (``committed``, read blind to gold; ``adjudicated`` where a
row has no reading): accuracy by extraction with reviews settled at the reader's value vs accuracy
by the reader (the gap a leaderboard shows), correctness agreement on auto-resolved rows,
committed-value agreement, no-answer caught (marked no answer or sent to review), review share.
Targets (issue 20): |gap| <= 2.0 pp, correctness agreement >= 96%, review <= 12% per run;
committed-value agreement >= 93% and no-answer caught >= 60% overall.

Throughput baseline: the ``seed`` protocol (the study's rules as described); ``study`` is the
study's code replayed. Target: the whole file in under 2 s per protocol on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kdtui.extract import answers_match, extract_answers

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed-responses" / "dev.jsonl"


def reader_value(row: dict) -> float | None:
    """The careful reader's answer: ``committed`` where the row was read (null = never committed), else
    ``adjudicated`` (-1 = no answer)."""
    if "committed_kind" in row:
        return row["committed"]
    return None if row["adjudicated"] in (-1, None) else float(row["adjudicated"])


def measures(rows: list[dict], protocol: str) -> dict[str, float]:
    """The user-facing figures of one protocol on one run's rows (in the run's order)."""
    extractions = extract_answers([r["response"] for r in rows], protocol)
    n = len(rows)
    ext_right = reader_right = auto = auto_agree = value_auto = value_agree = 0
    no_answer = caught = reviews = 0
    for row, e in zip(rows, extractions, strict=True):
        reader = reader_value(row)
        settled = reader if e.needs_review else e.value
        ext_right += answers_match(settled, row["gold"])
        reader_right += answers_match(reader, row["gold"])
        reviews += e.needs_review
        if reader is None:
            no_answer += 1
            caught += e.value is None or e.needs_review
        if not e.needs_review:
            auto += 1
            auto_agree += answers_match(e.value, row["gold"]) == answers_match(reader, row["gold"])
            value_auto += 1
            value_agree += (e.value is None and reader is None) or answers_match(e.value, reader)
    return {"n": n, "acc_ext": ext_right / n, "acc_reader": reader_right / n,
            "gap_pp": 100 * (ext_right - reader_right) / n, "correct_agree": auto_agree / max(auto, 1),
            "value_agree": value_agree / max(value_auto, 1), "value_auto": value_auto, "value_hits": value_agree,
            "no_answer": no_answer, "caught": caught, "review": reviews / n}


def print_measures(records: list[dict], protocols: tuple[str, ...]) -> None:
    runs: dict[str, list[dict]] = {}
    for row in records:
        runs.setdefault(row["set"], []).append(row)
    print(f"{'protocol':11s} {'run':22s} {'n':>5s} {'acc ext':>8s} {'acc reader':>10s} {'gap pp':>7s} "
          f"{'corr agree':>10s} {'value agree':>11s} {'no-ans caught':>13s} {'review':>7s}")
    for protocol in protocols:
        hits = autos = caught = missing = 0
        for name, rows in runs.items():
            m = measures(rows, protocol)
            hits, autos = hits + m["value_hits"], autos + m["value_auto"]
            caught, missing = caught + m["caught"], missing + m["no_answer"]
            print(f"{protocol:11s} {name:22s} {m['n']:5.0f} {m['acc_ext']:8.1%} {m['acc_reader']:10.1%} "
                  f"{m['gap_pp']:+7.1f} {m['correct_agree']:10.1%} {m['value_agree']:11.1%} "
                  f"{m['caught'] / max(m['no_answer'], 1):13.1%} {m['review']:7.1%}")
        print(f"{protocol:11s} {'overall':22s} {'':5s} {'':8s} {'':10s} {'':7s} {'':10s} {hits / max(autos, 1):11.1%} "
              f"{caught / max(missing, 1):13.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"no data at {args.data}; pass --data FILE.jsonl with a 'response' field")
    records = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    responses = [r["response"] for r in records]
    if records and "gold" in records[0] and "set" in records[0]:
        print("Against the careful reader (committed, else adjudicated); reviews settled at the reader's value")
        print_measures(records, ("default", "study-rules", "study"))
        print()

    timings: dict[str, float] = {}
    for protocol in ("seed", "default", "study"):
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            extract_answers(responses, protocol)
            best = min(best, time.perf_counter() - start)
        timings[protocol] = best

    print(f"{len(responses)} responses from {args.data.name}, best of {args.repeat}")
    print(f"{'protocol':10s} {'whole file (s)':>15s} {'responses/s':>12s} {'vs seed':>8s} {'< 2 s':>6s}")
    for protocol, seconds in timings.items():
        print(f"{protocol:10s} {seconds:15.3f} {len(responses) / seconds:12.0f} "
              f"{timings['seed'] / seconds:8.2f} {'yes' if seconds < 2 else 'NO':>6s}")


if __name__ == "__main__":
    main()
