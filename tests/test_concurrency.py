"""Three writers and a reader hammer one store: no lock errors, exact row counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdtui.store import Store
from tests.helpers import REPO

pytestmark = pytest.mark.slow  # a long end-to-end path: `make test-fast` leaves it out

# Each writer's share of the hammering, as a count of 50-row batches: the test waits for the work, not a clock.
BATCHES = int(os.environ.get("KDTUI_CONCURRENCY_BATCHES", "40"))


def test_three_writers_and_a_reader(store_dir: Path, tmp_path: Path) -> None:
    """Three writers insert their batches while a reader reads the leaderboard until every writer has finished."""
    Store(store_dir).migrate()
    stop = tmp_path / "writers-done"
    procs = []
    roles = [("write", f"w{i}", str(BATCHES)) for i in range(3)] + [("read", str(stop), "until")]
    for index, (role, run, limit) in enumerate(roles):
        out = tmp_path / f"{index}.json"
        procs.append((run, out, subprocess.Popen(
            [sys.executable, "-m", "tests.hammer", role, str(store_dir), run, limit, str(out)], cwd=REPO)))
    reports = {}
    for run, out, proc in procs[:3]:
        assert proc.wait(timeout=600) == 0
        reports[run] = json.loads(out.read_text())
    stop.touch()
    _, out, reader = procs[3]
    assert reader.wait(timeout=600) == 0
    reports["-"] = json.loads(out.read_text())
    for run, report in reports.items():
        assert report["errors"] == [], (run, report["errors"][:3])
        assert report["done"] > 0
    counts = dict(Store(store_dir).query(
        "SELECT r.name, count(*) FROM predictions p JOIN runs r ON p.run_id = r.id GROUP BY 1").rows)
    for run in ("w0", "w1", "w2"):
        assert counts[run] == reports[run]["done"] == BATCHES * 50
