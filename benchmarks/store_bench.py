"""Store throughput: bulk insert, leaderboard over 1M predictions, concurrent sessions.

    python benchmarks/store_bench.py [--rows 100000] [--big 1000000] [--seconds 10]

Targets (issue 3): 100k inserts <= 5 s; leaderboard over 1M predictions <= 0.5 s.
Baseline for the session costs: a bare DuckDB connect + close in this process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from kdtui.store import Store
from kdtui.store.reads import leaderboard

REPO = Path(__file__).resolve().parent.parent


def _rows(n: int, start: int = 0) -> list[dict[str, object]]:
    return [dict(item_id=f"q{i}", question="What is 9 * 2?", gold=18.0, prompt="What is 9 * 2?",
                 response="18", n_new_tokens=2, finish_reason="eos", value=18.0 if i % 3 else 17.0,
                 rule="first_line", needs_review=i % 100 == 0, correct=bool(i % 3), candidates=[18.0, 17.0])
            for i in range(start, start + n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    results: list[tuple[str, float, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "a")
        run = store.runs.start("bench", "eval", {"model": "m", "prompt": "plain"})
        rows = _rows(args.rows)
        start = time.perf_counter()
        store.predictions.add(run, rows)
        results.append((f"insert {args.rows:,} predictions", time.perf_counter() - start, "<= 5 s", "s"))

        big = Store(Path(tmp) / "b")
        for r in range(10):
            run_id = big.runs.start(f"run{r}", "eval", {"model": "m", "prompt": "plain"})
            for chunk in range(0, args.big // 10, 100_000):
                big.predictions.add(run_id, _rows(min(100_000, args.big // 10 - chunk), chunk))
            big.triage.decide(run_id, "q0", 18.0)
        leaderboard(big)
        start = time.perf_counter()
        board = leaderboard(big)
        results.append((f"leaderboard over {args.big:,} predictions ({len(board)} runs)",
                        time.perf_counter() - start, "<= 0.5 s", "s"))

        start = time.perf_counter()
        for _ in range(20):
            duckdb.connect(str(Path(tmp) / "c.duckdb")).close()
        bare = (time.perf_counter() - start) / 20
        results.append(("bare DuckDB connect + close (baseline)", bare, "", "s"))
        start = time.perf_counter()
        for i in range(20):
            store.predictions.add(run, _rows(100, args.rows + i * 100))
        session = (time.perf_counter() - start) / 20
        results.append(("locked session: connect + 100-row insert + close", session, "", "s"))
        start = time.perf_counter()
        for _ in range(20):
            store.query("SELECT count(*) FROM runs")
        results.append(("locked read session (read-only, locked config) + query", (time.perf_counter() - start) / 20,
                        "", "s"))
        start = time.perf_counter()
        Store(Path(tmp) / "a", create=False).query("SELECT 1")
        results.append(("first read of a fresh Store (shared schema check)", time.perf_counter() - start, "", "s"))

        procs = []
        for index, (role, name) in enumerate([("write", "w0"), ("write", "w1"), ("write", "w2"), ("read", "-")]):
            out = Path(tmp) / f"{index}.json"
            procs.append((out, subprocess.Popen([sys.executable, "-m", "tests.hammer", role, str(Path(tmp) / "d"),
                                                 name, f"{args.seconds}s", str(out)], cwd=REPO)))
        reports = []
        for out, proc in procs:
            proc.wait()
            reports.append(json.loads(out.read_text()))
        written = sum(r["done"] for r in reports[:3])
        errors = sum(len(r["errors"]) for r in reports)
        results.append((f"3 writers + 1 reader, {args.seconds:.0f} s: rows written/s", written / args.seconds,
                        f"errors: {errors}", "/s"))
        results.append(("  leaderboard reads/s meanwhile", reports[3]["done"] / args.seconds, "", "/s"))

    print(f"{'measure':58s} {'value':>10s} {'vs baseline':>12s}  target")
    for label, value, target, unit in results:
        ratio = f"{value / bare:.1f}x" if unit == "s" else ""
        shown = f"{value:.3f} s" if unit == "s" else f"{value:.0f}/s"
        print(f"{label:58s} {shown:>10s} {ratio:>12s}  {target}")


if __name__ == "__main__":
    main()
