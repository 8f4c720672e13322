"""Answer-extraction throughput on the study's responses, both protocols side by side.

    python benchmarks/extract_bench.py [--data ../shared/data/seed-responses/dev.jsonl] [--repeat 3]

Baseline: the ``seed`` protocol (the study's rules as described); ``study`` is the study's code
replayed. Target: the whole file in under 2 s per protocol on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kdtui.extract import extract_answers

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed-responses" / "dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"no data at {args.data}; pass --data FILE.jsonl with a 'response' field")
    responses = [json.loads(line)["response"] for line in args.data.read_text(encoding="utf-8").splitlines()]

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
