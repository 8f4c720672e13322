"""The DuckDB store: migrations, leaderboard maths, triage log, read-only SQL."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from kdtui.errors import KdtuiError
from kdtui.store import NotAStore, ReadOnlyViolation, Store, UserQuery, check_read_only
from kdtui.store.reads import LeaderRow, leaderboard
from kdtui.store.schema import MIGRATIONS
from tests.helpers import prediction_rows


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
    tables = {r["table_name"] for r in store.query("SELECT table_name FROM information_schema.tables").records()}
    assert {"runs", "predictions", "triage", "predictions_final", "leaderboard", "schema_version", "runs_live"} \
        <= tables
    versions = [r["version"] for r in store.query("SELECT version FROM schema_version ORDER BY 1").records()]
    assert versions == list(range(1, len(MIGRATIONS) + 1))


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
    run = store.runs.start("r", "eval", {"model": "m", "prompt": "plain"})
    rows = prediction_rows(n)
    for index, row in enumerate(rows):  # exactly k correct
        row.update(correct=index < k, value=10.0 if index < k else 3.0)
    store.predictions.add(run, rows)
    [record] = leaderboard(store)
    low, high = _wilson(k, n)
    assert record.n == n and record.correct == k
    assert record.accuracy == pytest.approx(k / n)
    assert record.ci_low == pytest.approx(low, abs=1e-12)
    assert record.ci_high == pytest.approx(high, abs=1e-12)
    if (k, n) == (5, 10):  # the textbook value
        assert (round(record.ci_low, 4), round(record.ci_high, 4)) == (0.2366, 0.7634)


def test_predictions_are_unique_per_run_and_item(store_dir: Path) -> None:
    store = Store(store_dir)
    run = store.runs.start("r", "eval", {})
    assert store.predictions.add(run, prediction_rows(10)) == 10
    assert store.predictions.add(run, prediction_rows(15)) == 5
    assert store.predictions.done_items(run) == {f"q{i}" for i in range(15)}
    other = store.runs.start("r2", "eval", {})
    assert store.predictions.add(other, prediction_rows(3)) == 3
    assert store.runs.start("r", "eval", {}) == run


def test_run_kind_mismatch(store_dir: Path) -> None:
    store = Store(store_dir)
    store.runs.start("r", "eval", {})
    with pytest.raises(KdtuiError, match="exists as a eval run"):
        store.runs.start("r", "capture", {})


def test_triage_overrides_extraction_and_undo_restores(store_dir: Path) -> None:
    store = Store(store_dir)
    run = store.runs.start("r", "eval", {})
    store.predictions.add(run, prediction_rows(4, correct_every=2, review_every=1))  # q0,q2 right; all need review

    def board() -> dict[str, Any]:
        return store.query("SELECT correct, pending_review, triaged FROM leaderboard").records()[0]

    assert (board()["correct"], board()["pending_review"]) == (2, 4)
    first = store.triage.decide(run, "q1", 10.0)       # fix a wrong one
    assert (board()["correct"], board()["pending_review"], board()["triaged"]) == (3, 3, 1)
    second = store.triage.decide(run, "q1", None)      # change of mind: no answer
    assert board()["correct"] == 2
    log = store.query("SELECT id, value, previous_value, undone, undoes FROM triage ORDER BY id").rows
    assert log == [(first, 10.0, 3.0, False, None), (second, None, 10.0, False, None)]
    assert store.triage.undo(second) == 10.0           # back to the first decision
    assert board()["correct"] == 3
    assert store.triage.undo(first) == 3.0             # back to the extraction
    assert (board()["correct"], board()["pending_review"], board()["triaged"]) == (2, 4, 0)
    with pytest.raises(KdtuiError, match="already undone"):
        store.triage.undo(first)
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
    assert [s.strip().rstrip(";") for s in check_read_only("SELECT 1; SELECT 2")] == ["SELECT 1", "SELECT 2"]
    result = UserQuery(store, "SELECT 41 + 1 AS answer").rows()
    assert result.columns == ["answer"] and result.rows == [(42,)]
    capped = UserQuery(store, "SELECT * FROM range(10)").rows(max_rows=3)
    assert capped.truncated and len(capped.rows) == 3
    assert UserQuery(store, "SELECT * FROM range(3)").rows(max_rows=3).truncated is False


def test_bad_sql_is_a_clear_error(store_dir: Path) -> None:
    Store(store_dir).migrate()
    with pytest.raises(KdtuiError, match=r"SQL does not parse: Parser Error"):
        UserQuery(Store(store_dir), "SELEC nonsense").rows()
    with pytest.raises(KdtuiError, match="query failed: Catalog Error"):
        UserQuery(Store(store_dir), "SELECT * FROM no_such_table").rows()


def test_read_only_store_refuses_missing_foreign_and_file_paths(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    with pytest.raises(NotAStore, match="no kdtui store at"):
        leaderboard(Store(missing, create=False))
    assert not missing.exists()  # nothing created
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    con = duckdb.connect(str(foreign / "kdtui.duckdb"))
    con.execute("CREATE TABLE mine (a INT)")
    con.close()
    before = (foreign / "kdtui.duckdb").read_bytes()
    for create in (False, True):  # not even a writer migrates someone else's database
        with pytest.raises(NotAStore, match="a DuckDB file but not a kdtui store"):
            Store(foreign, create=create).ensure_schema()
    assert (foreign / "kdtui.duckdb").read_bytes() == before
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotAStore, match="is a file; point --store at the folder"):
        Store(a_file).ensure_schema()


def test_reader_of_a_current_store_never_takes_the_exclusive_lock(store_dir: Path) -> None:
    """A migrated store is checked with a shared read: a reader runs while a writer's lock is held elsewhere."""
    Store(store_dir).migrate()
    import fcntl

    # Hold the store lock shared, as another reader would: an exclusive migrate would wait, a check does not.
    fd = open(store_dir / "kdtui.duckdb.lock", "a+")  # noqa: SIM115
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        reader = Store(store_dir, busy_timeout=2)
        assert [r.name for r in leaderboard(reader)] == []
    finally:
        fd.close()


def test_rows_come_by_column_name(store_dir: Path) -> None:
    store = Store(store_dir)
    run = store.runs.start("r", "eval", {"model": "m", "prompt": "plain", "strategy": "teacher"})
    store.predictions.add(run, prediction_rows(4))
    [row] = leaderboard(store)
    assert isinstance(row, LeaderRow)
    assert (row.name, row.kind, row.status, row.strategy, row.prompt, row.n, row.pending) == \
        ("r", "eval", "running", "teacher", "plain", 4, 0)


def test_a_new_store_is_written_for_every_duckdb_client(store_dir: Path) -> None:
    """The store is DuckDB's 1.0 storage format, so a DuckDB 1.x client (the CLI, DBeaver, R) opens it and reads
    its views; with ``$KDTUI_DUCKDB1_PYTHON`` (CI makes one) a real 1.x client does, in its own process."""
    import os
    import subprocess

    store = Store(store_dir)
    store.migrate()
    store.runs.start("outside-readable", "eval", {})
    assert store.storage_version() == "v1.0.0+"
    client = os.environ.get("KDTUI_DUCKDB1_PYTHON")
    if not client:
        pytest.skip("set KDTUI_DUCKDB1_PYTHON to a python with duckdb 1.x to open the store with a 1.x client")
    code = ("import duckdb, sys\nassert duckdb.__version__.startswith('1.'), duckdb.__version__\n"
            "c = duckdb.connect(sys.argv[1], read_only=True)\n"
            "print(c.execute('SELECT name FROM runs').fetchall(), c.execute('SELECT count(*) FROM leaderboard')"
            ".fetchall())")
    proc = subprocess.run([client, "-c", code, str(store.path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "outside-readable" in proc.stdout


def test_the_predictions_browser_lists_ids_in_natural_order(store_dir: Path) -> None:
    """q2 before q10 (text order put /10 between /1 and /2)."""
    from kdtui.store.reads import PredictionFilter, predictions

    store = Store(store_dir)
    run = store.runs.start("r", "eval", {})
    store.predictions.add(run, prediction_rows(12))
    rows, _ = predictions(store, PredictionFilter())
    assert [r.item for r in rows] == [f"q{i}" for i in range(12)]


def test_training_metrics_upsert_replaces_steps_and_keeps_the_later_of_a_batch(store_dir: Path) -> None:
    """A resumed run writes its steps again: a step already stored is replaced, and of two rows of one step in a
    batch the later wins; whole-number columns arrive as floats from JSON and NaN is stored as unknown."""
    store = Store(store_dir)
    run = store.runs.start("r", "distill", {})
    store.train_metrics.upsert(run, [{"split": "train", "step": s, "loss": float(s), "tokens": 10 * s}
                                     for s in (1, 2, 3)])
    store.train_metrics.upsert(run, [{"split": "train", "step": 2.0, "loss": 20.0, "tokens": 21.0},
                                     {"split": "train", "step": 2, "loss": 22.0, "tokens": 22},
                                     {"split": "eval", "step": 2, "loss": float("nan")}])
    assert [(r["step"], r["loss"], r["tokens"]) for r in store.train_metrics.curve(run)] == \
        [(1, 1.0, 10), (2, 22.0, 22), (3, 3.0, 30)]
    assert [(r["step"], r["loss"]) for r in store.train_metrics.curve(run, "eval")] == [(2, None)]
