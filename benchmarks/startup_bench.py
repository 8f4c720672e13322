"""Start-up: what a user waits for before a command does anything, against the floor each is measured from.

Each command runs ``--repeats`` times in a fresh process (the median is shown), beside its floor measured in the
same run:

- ``kdtui --help`` against a bare interpreter (``python -c pass``); target 0.12 s.
- ``kdtui sql "select 1"`` against a DuckDB one-liner opening the same store file read-only; target 1.3x.
- ``kdtui run EXPERIMENT --dry-run`` against a bare interpreter; target 0.35 s.

kdtui's bytecode is compiled first, as an installed kdtui has it. It also says whether each command imported
torch or duckdb (``-X importtime``), which is where the time goes.

    python benchmarks/startup_bench.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

EXPERIMENT = """
[experiment]
name = "bench"
strategies = ["base", "teacher"]
controls = ["fine-tune", "no-distil"]
[teacher]
model = "HuggingFaceTB/SmolLM2-135M-Instruct"
[[student]]
name = "smollm2"
model = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""


def timed(argv: list[str], repeats: int) -> float:
    """The median wall time of ``argv`` in a fresh process, which must succeed."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.strip()[-400:]}")
    return statistics.median(times)


def imports(argv: list[str]) -> str:
    """Which heavy packages ``argv`` (a ``python -m ...`` command) imported, read from ``-X importtime``."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, cwd=REPO)
    loaded = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    heavy = [name for name in ("torch", "transformers", "duckdb", "textual", "pydantic", "rich") if name in loaded]
    return ", ".join(heavy) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    # kdtui's bytecode as an installed kdtui has it (pip compiles on install; any run without
    # PYTHONDONTWRITEBYTECODE writes it): without it each command compiles its modules first, +20-60 ms here.
    subprocess.run([py, "-m", "compileall", "-q", str(REPO / "kdtui")], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        spec = Path(tmp) / "exp.toml"
        spec.write_text(EXPERIMENT)
        kdtui = [py, "-m", "kdtui.cli"]
        subprocess.run([py, "-c", f"from kdtui.store import Store; Store({str(store)!r}).migrate()"], check=True)
        database = next(store.glob("*.duckdb"))
        bare = timed([py, "-c", "pass"], args.repeats)
        one_liner = timed([py, "-c", f"import duckdb; print(duckdb.connect({str(database)!r}, read_only=True)"
                                     ".sql('select 1').fetchall())"], args.repeats)
        rows = [
            ("kdtui --help", [*kdtui, "--help"], bare, "python -c pass", "<= 0.12 s", lambda s, f: s <= 0.12),
            ("kdtui sql \"select 1\"", [*kdtui, "sql", "select 1", "--store", str(store)], one_liner,
             "duckdb one-liner", "<= 1.3x", lambda s, f: s <= 1.3 * f),
            ("kdtui run EXP --dry-run", [*kdtui, "run", str(spec), "--dry-run", "--store", str(store)], bare,
             "python -c pass", "<= 0.35 s", lambda s, f: s <= 0.35),
        ]
        print(f"median of {args.repeats} fresh processes each; python -c pass: {bare:.3f} s, "
              f"duckdb one-liner: {one_liner:.3f} s")
        print(f"{'command':26s} {'seconds':>8s} {'floor':>17s} {'ratio':>7s}  {'target':10s} {'met':4s} imports")
        for label, argv, floor, floor_name, target, met in rows:
            seconds = timed(argv, args.repeats)
            print(f"{label:26s} {seconds:8.3f} {floor_name:>17s} {seconds / floor:6.1f}x  {target:10s} "
                  f"{'yes' if met(seconds, floor) else 'NO':4s} {imports(argv)}")


if __name__ == "__main__":
    main()
