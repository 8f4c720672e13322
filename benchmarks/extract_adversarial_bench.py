"""Extraction time on megabyte-sized adversarial inputs (moved here from the tests: timing is not a test).

    python benchmarks/extract_adversarial_bench.py

Baseline: the 1 s budget per 1 MB response from the extraction issue; the ratio
column is seconds / budget (below 1.00 is within budget), both protocols side by side.
"""

from __future__ import annotations

import time

from kdtui.extract import extract_answer

BUDGET_S = 1.0
INPUTS = {
    "digits": "1" * 1_000_000,
    "commas": "1," * 500_000,
    "mixed": "1 1/" * 250_000,
    "boxes": "\\boxed{" * 140_000,
    "phrases": "the answer is " * 70_000,
    "steps": "Step 1. " * 125_000,
    "loop": "18. " * 250_000,
    "cjk": "".join(chr(0x4E00 + i % 20000) for i in range(1_000_000)),
}


def main() -> None:
    print(f"{'input':10s} {'seed (s)':>9s} {'default (s)':>12s} {'seed/budget':>12s} {'default/budget':>15s}")
    for name, text in INPUTS.items():
        seconds = {}
        for protocol in ("seed", "default"):
            start = time.perf_counter()
            extract_answer(text, protocol)
            seconds[protocol] = time.perf_counter() - start
        print(f"{name:10s} {seconds['seed']:9.3f} {seconds['default']:12.3f} "
              f"{seconds['seed'] / BUDGET_S:12.2f} {seconds['default'] / BUDGET_S:15.2f}")


if __name__ == "__main__":
    main()
