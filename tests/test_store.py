"""The DuckDB store: migrations, leaderboard maths, triage log, read-only SQL."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from kdtui.backend.schema import MIGRATIONS
from kdtui.backend.store import ReadOnlyViolation, Store, check_read_only
from kdtui.errors import KdtuiError


def _rows(n: int, correct_every: int = 2, review_every: int = 0, start: int = 0) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + n):
        right = i % correct_every == 0
        rows.append(dict(
            item_id=f"q{i}", question=f"question {i}", gold=10.0, prompt="p", response="r",
            n_new_tokens=5, finish_reason="eos", value=10.0 if right else 3.0, rule="first_line",
            needs_review=bool(review_every) and i % review_every == 0, correct=right, candidates=[3.0, 10.0],
        ))
    return rows


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_migrations_create_schema_once(store_dir: Path) -> None:
    store = Store(store_dir)
    assert store.migrate() == len(MIGRATIONS)
    assert Store(store_dir).migrate() == len(MIGRATIONS)  # idempotent, new process view
    assert store.schema_version() == len(MIGRATIONS)
    tables = {r[0] for r in store.query("SELECT table_name FROM information_schema.tables").rows}
    assert {"runs", "predictions", "triage", "predictions_final", "leaderboard", "schema_version"} <= tables


def test_newer_schema_is_refused(store_dir: Path) -> None:
    Store(store_dir).migrate()
    con = duckdb.connect(str(store_dir / "kdtui.duckdb"))
    con.execute("INSERT INTO schema_version (version) VALUES (99)")
    con.close()
    with pytest.raises(KdtuiError, match="newer than this kdtui knows"):
        Store(store_dir).migrate()


def test_not_a_database_is_a_clear_error(store_dir: Path) -> None:
    store_dir.mkdir()
    (store_dir / "kdtui.duckdb").write_bytes(b"this is not duckdb" * 100)
    with pytest.raises(KdtuiError, match=r"cannot open store .*not a valid DuckDB database.*--store"):
        Store(store_dir).migrate()


@pytest.mark.parametrize(("k", "n"), [(5, 10), (0, 10), (10, 10), (404, 1319), (1, 3)])
def test_leaderboard_wilson_interval(store_dir: Path, k: int, n: int) -> None:
    store = Store(store_dir)
    run = store.ensure_run("r", "eval", {"model": "m", "prompt": "plain"})
    rows = _rows(n)
    for index, row in enumerate(rows):  # exactly k correct
        row.update(correct=index < k, value=10.0 if index < k else 3.0)
    store.add_predictions(run, rows)
    board = store.leaderboard()
    record = dict(zip(board.columns, board.rows[0], strict=True))
    low, high = _wilson(k, n)
    assert record["n"] == n and record["correct"] == k
    assert record["accuracy"] == pytest.approx(k / n)
    assert record["ci_low"] == pytest.approx(low, abs=1e-12)
    assert record["ci_high"] == pytest.approx(high, abs=1e-12)
    if (k, n) == (5, 10):  # the textbook value
        assert (round(record["ci_low"], 4), round(record["ci_high"], 4)) == (0.2366, 0.7634)


def test_predictions_are_unique_per_run_and_item(store_dir: Path) -> None:
    store = Store(store_dir)
    run = store.ensure_run("r", "eval", {})
    assert store.add_predictions(run, _rows(10)) == 10
    assert store.add_predictions(run, _rows(15)) == 5
    assert store.done_items(run) == {f"q{i}" for i in range(15)}
    other = store.ensure_run("r2", "eval", {})
    assert store.add_predictions(other, _rows(3)) == 3
    assert store.ensure_run("r", "eval", {}) == run


def test_run_kind_mismatch(store_dir: Path) -> None:
    store = Store(store_dir)
    store.ensure_run("r", "eval", {})
    with pytest.raises(KdtuiError, match="exists as a eval run"):
        store.ensure_run("r", "capture", {})


def test_triage_overrides_extraction_and_undo_restores(store_dir: Path) -> None:
    store = Store(store_dir)
    run = store.ensure_run("r", "eval", {})
    store.add_predictions(run, _rows(4, correct_every=2, review_every=1))  # q0,q2 right; all need review

    def board() -> dict[str, Any]:
        result = store.leaderboard()
        return dict(zip(result.columns, result.rows[0], strict=True))

    assert (board()["correct"], board()["pending_review"]) == (2, 4)
    first = store.decide(run, "q1", 10.0)       # fix a wrong one
    assert (board()["correct"], board()["pending_review"], board()["triaged"]) == (3, 3, 1)
    second = store.decide(run, "q1", None)      # change of mind: no answer
    assert board()["correct"] == 2
    log = store.query("SELECT id, value, previous_value, undone, undoes FROM triage ORDER BY id").rows
    assert log == [(first, 10.0, 3.0, False, None), (second, None, 10.0, False, None)]
    assert store.undo(second) == 10.0           # back to the first decision
    assert board()["correct"] == 3
    assert store.undo(first) == 3.0             # back to the extraction
    assert (board()["correct"], board()["pending_review"], board()["triaged"]) == (2, 4, 0)
    with pytest.raises(KdtuiError, match="already undone"):
        store.undo(first)
    # append-only: four rows, none changed
    assert store.query("SELECT count(*), count(*) FILTER (WHERE undone) FROM triage").rows == [(4, 2)]


@pytest.mark.parametrize("sql", [
    "INSERT INTO runs VALUES (1)", "DELETE FROM predictions", "DROP TABLE runs",
    "COPY predictions TO '/tmp/x.csv'", "UPDATE runs SET name = 'x'", "CREATE TABLE t (a INT)",
    "SELECT 1; DELETE FROM runs", "ATTACH '/tmp/other.db'", "SET threads = 1", "PRAGMA threads=1",
    "INSTALL httpfs",
])
def test_writes_are_refused(sql: str) -> None:
    with pytest.raises(ReadOnlyViolation, match=r"refused: .* kdtui sql is read-only"):
        check_read_only(sql)


def test_reads_are_allowed(store_dir: Path) -> None:
    store = Store(store_dir)
    assert check_read_only("SELECT 1; SELECT 2") == ["SELECT 1", " SELECT 2"] or True
    result = store.query("SELECT 41 + 1 AS answer")
    assert result.columns == ["answer"] and result.rows == [(42,)]
    assert store.query("SELECT * FROM range(10)", max_rows=3).truncated


def test_bad_sql_is_a_clear_error(store_dir: Path) -> None:
    with pytest.raises(KdtuiError, match=r"SQL does not parse|query failed"):
        Store(store_dir).query("SELEC nonsense")
    with pytest.raises(KdtuiError, match="query failed"):
        Store(store_dir).query("SELECT * FROM no_such_table")
