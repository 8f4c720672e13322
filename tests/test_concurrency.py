"""Three writers and a reader hammer one store: no lock errors, exact row counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kdtui.store import Store

SECONDS = float(os.environ.get("KDTUI_CONCURRENCY_SECONDS", "30"))
REPO = Path(__file__).resolve().parent.parent


def test_three_writers_and_a_reader(store_dir: Path, tmp_path: Path) -> None:
    Store(store_dir).migrate()
    procs = []
    roles = [("write", f"w{i}") for i in range(3)] + [("read", "-")]
    for index, (role, run) in enumerate(roles):
        out = tmp_path / f"{index}.json"
        procs.append((run, out, subprocess.Popen(
            [sys.executable, "-m", "tests.hammer", role, str(store_dir), run, str(SECONDS), str(out)],
            cwd=REPO)))
    reports = {}
    for run, out, proc in procs:
        assert proc.wait(timeout=SECONDS + 120) == 0
        reports[run] = json.loads(out.read_text())
    for run, report in reports.items():
        assert report["errors"] == [], (run, report["errors"][:3])
        assert report["done"] > 0
    counts = dict(Store(store_dir).query(
        "SELECT r.name, count(*) FROM predictions p JOIN runs r ON p.run_id = r.id GROUP BY 1").rows)
    for run in ("w0", "w1", "w2"):
        assert counts[run] == reports[run]["done"]
    total = sum(counts.values())
    print(f"\n{SECONDS:.0f}s: {total} rows written ({total / SECONDS:.0f}/s), "
          f"{reports['-']['done']} leaderboard reads ({reports['-']['done'] / SECONDS:.0f}/s)")
