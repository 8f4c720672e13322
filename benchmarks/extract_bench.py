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

from kdtui.extract import extract_answers
from kdtui.extract.measure import measure_runs

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed-responses" / "dev.jsonl"


def print_measures(records: list[dict], protocols: tuple[str, ...]) -> None:
    print(f"{'protocol':11s} {'run':22s} {'n':>5s} {'acc ext':>8s} {'acc reader':>10s} {'gap pp':>7s} "
          f"{'corr agree':>10s} {'value agree':>11s} {'no-ans caught':>13s} {'review':>7s}")
    for protocol in protocols:
        for name, m in measure_runs(records, protocol).items():
            print(f"{protocol:11s} {name:22s} {m.n:5d} {m.extraction_right / m.n:8.1%} {m.reader_right / m.n:10.1%} "
                  f"{m.gap_pp:+7.1f} {m.correctness_agreement:10.1%} {m.value_agreement:11.1%} "
                  f"{m.no_answer_caught:13.1%} {m.review_share:7.1%}")


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

    questions = [r.get("question") for r in records]
    timings: dict[str, float] = {}
    for protocol in ("seed", "default", "study"):
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            extract_answers(responses, protocol, questions=questions)
            best = min(best, time.perf_counter() - start)
        timings[protocol] = best

    print(f"{len(responses)} responses from {args.data.name}, best of {args.repeat}")
    print(f"{'protocol':10s} {'whole file (s)':>15s} {'responses/s':>12s} {'vs seed':>8s} {'10k (s)':>8s} "
          f"{'10k < 2 s':>9s}")
    for protocol, seconds in timings.items():
        per_10k = seconds / len(responses) * 10_000
        print(f"{protocol:10s} {seconds:15.3f} {len(responses) / seconds:12.0f} "
              f"{timings['seed'] / seconds:8.2f} {per_10k:8.2f} {'yes' if per_10k < 2 else 'NO':>9s}")


if __name__ == "__main__":
    main()
