"""`kdtui sql` and `kdtui leaderboard` on a real store (`--out /dev/stdout` in a process of its own: it writes to
the process's own standard output)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pytest

from tests.helpers import kdtui, kdtui_process
from tests.tui_store import build_store


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return build_store(tmp_path / "store").root


@pytest.mark.parametrize("sql", ["INSERT INTO runs (kind, name, config, status) VALUES ('a', 'b', '{}', 'c')",
                                 "DELETE FROM predictions", "DROP TABLE runs", "COPY runs TO 'x.csv'"])
def test_writes_are_refused_with_one_line(store_root: Path, sql: str) -> None:
    proc = kdtui("sql", sql, "--store", str(store_root))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("kdtui: error: refused: ")
    assert len(proc.stderr.strip().splitlines()) == 1
    counts = kdtui_process("sql", "SELECT count(*) AS n FROM predictions", "--format", "csv", "--out", "/dev/stdout",
                           "--store", str(store_root))
    assert counts.stdout.splitlines()[:2] == ["n", "30"]  # nothing was written or deleted


def test_exports(store_root: Path, tmp_path: Path) -> None:
    query = "SELECT name, n, accuracy FROM leaderboard ORDER BY name"
    for fmt in ("csv", "json", "parquet"):
        out = tmp_path / f"board.{fmt}"
        proc = kdtui("sql", query, "--format", fmt, "--out", str(out), "--store", str(store_root))
        assert proc.returncode == 0, proc.stderr
    with (tmp_path / "board.csv").open() as fh:
        assert next(iter(csv.reader(fh))) == ["name", "n", "accuracy"]
    assert [r["name"] for r in json.loads((tmp_path / "board.json").read_text())] == ["base", "no-distil",
                                                                                      "teacher-kd"]
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'board.parquet'}'").fetchall() == [(3,)]


def test_leaderboard_and_bad_sql(store_root: Path) -> None:
    proc = kdtui("leaderboard", "--store", str(store_root))
    assert proc.returncode == 0 and "teacher-kd" in proc.stdout and "60.0%" in proc.stdout
    proc = kdtui("sql", "SELECT * FROM nowhere", "--store", str(store_root))
    assert proc.returncode == 2 and "query failed" in proc.stderr and "Traceback" not in proc.stderr
