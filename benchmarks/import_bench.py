"""Import memory and exit: a large predictions file (default 288 MB) imported N times, each in a fresh process.

Prints peak RSS per run and the exit code, against the issue's bar (RSS < 600 MB, exit 0 every time),
and the size of the file, so the ratio RSS / file size shows memory is flat in the file's size. Each run
imports into a store of its own: one 288 MB import each time (DuckDB's own memory on insert grows with
the table already in the store, which a run into a shared store would add).

    python benchmarks/import_bench.py [--mb 288] [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = ("import resource, sys; from kdtui.cli.main import main; rc = main(sys.argv[1:]); "
          "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def make_file(path: Path, megabytes: int, response_kb: int) -> int:
    rows, steps = 0, max(1, response_kb * 1000 // 24)
    with path.open("w", encoding="utf-8") as fh:
        while fh.tell() < megabytes * 1_000_000:
            work = " ".join(f"Step {s}: {rows % 97} + {s} = {rows % 97 + s}." for s in range(steps))
            fh.write(json.dumps({"question": f"Question {rows}: how many apples? " * 4, "gold": rows % 1000,
                                 "response": f"{work} The answer is {rows % 1000}. \\ud800"}) + "\n")
            rows += 1
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=288)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--protocol", default="default", help="extraction protocol of the import (default: default)")
    parser.add_argument("--response-kb", type=int, default=16,
                        help="size of each response (long ones fill the file with fewer, slower-to-write rows)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "big.jsonl"
        rows = make_file(data, args.mb, args.response_kb)
        size = data.stat().st_size / 1e6
        print(f"file: {size:.0f} MB, {rows:,} rows (each with a lone surrogate escape); protocol {args.protocol}")
        print(f"{'run':>3} {'exit':>4} {'peak RSS MB':>11} {'RSS/file':>8} {'seconds':>7}")
        failures = 0
        for run in range(args.runs):
            start = time.monotonic()
            proc = subprocess.run([sys.executable, "-c", SCRIPT, "import", str(data), "--run", f"big-{run}",
                                   "--protocol", args.protocol,
                                   "--store", str(Path(tmp) / f"store-{run}"), "--logs", str(Path(tmp) / "logs")],
                                  capture_output=True, text=True)
            rss = next((int(line.split()[1]) / 1024 for line in proc.stderr.splitlines()
                        if line.startswith("maxrss_kb")), float("nan"))
            failures += proc.returncode != 0 or not rss < 600
            print(f"{run:>3} {proc.returncode:>4} {rss:>11.0f} {rss / size:>8.2f} {time.monotonic() - start:>7.1f}",
                  flush=True)
            if proc.returncode != 0:
                print(proc.stderr[-2000:])
        print(f"target: exit 0 and peak RSS < 600 MB in every run: {'met' if not failures else f'{failures} missed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
