"""Nothing is lost when others hold the store: outside DuckDB clients, deleted lock files, a frozen writer.

Every process here is real (kdtui evals, a DuckDB client in this process, a stopped
writer); every wait polls for a condition.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from kdtui.store import Store
from kdtui.store.writer import PredictionWriter, recover
from tests.helpers import prediction_rows, wait_for

REPO = Path(__file__).resolve().parent.parent


def hold_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """Open ``path`` read-only as an outside client would, retrying while a kdtui writer has it for a moment."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def start_kdtui(args: list[str], stderr: Path, **env: str) -> subprocess.Popen[bytes]:
    environ = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **env)
    # A shell running the tests in the background ignores SIGINT, and children inherit that: restore it,
    # so the Ctrl-C test sends what a terminal would.
    return subprocess.Popen([sys.executable, "-m", "kdtui.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=stderr.open("w"), env=environ, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def eval_args(tiny_model: Path, store: Path, run: str, n: int, logs: Path) -> list[str]:
    return ["eval", "--model", str(tiny_model), "--data", "synthetic", "--limit", str(n), "--batch-size", "1",
            "--max-new-tokens", "24", "--run", run, "--store", str(store), "--logs", str(logs)]


def progress_lines(stderr: Path, run: str) -> int:
    return sum(1 for line in stderr.read_text().splitlines() if line.startswith(f"{run}: "))


def run_state(store: Path, run: str) -> tuple[str, int]:
    record = Store(store).runs.get(run)
    assert record is not None
    return record.state, Store(store).predictions.count(record.id)


@pytest.mark.slow
def test_outside_client_at_start_and_mid_run(tiny_model: Path, tmp_path: Path) -> None:
    """An outside read-only DuckDB client blocks the eval's writes: it waits, keeps generating, loses nothing."""
    store, n = tmp_path / "store", 10
    Store(store).migrate()
    outside = duckdb.connect(str(store / "kdtui.duckdb"), read_only=True)  # held while the eval starts
    err = tmp_path / "eval.err"
    proc = start_kdtui(eval_args(tiny_model, store, "held", n, tmp_path / "logs"), err)
    try:
        wait_for(lambda: "an outside DuckDB client" in err.read_text(), 30, "the eval to say who holds the store")
        assert f"pid {os.getpid()}" in err.read_text()  # it names this process
        outside.close()
        wait_for(lambda: progress_lines(err, "held") >= 3, 120, "the eval to make progress")
        outside = hold_read_only(store / "kdtui.duckdb")  # held mid-run
        seen = progress_lines(err, "held")
        wait_for(lambda: progress_lines(err, "held") >= seen + 2 or proc.poll() is not None, 120,
                 "the eval to keep generating while the store is held")
        outside.close()
        assert proc.wait(timeout=180) == 0, err.read_text()
    finally:
        outside.close()
        proc.kill()
    assert run_state(store, "held") == ("done", n)


@pytest.mark.slow
def test_outside_client_through_the_end_spills_and_recovers(tiny_model: Path, tmp_path: Path) -> None:
    """Held past the busy timeout at the end: rows and status go to a spill file; `store recover` restores both."""
    store, logs, n = tmp_path / "store", tmp_path / "logs", 6
    Store(store).migrate()
    err = tmp_path / "eval.err"
    proc = start_kdtui(eval_args(tiny_model, store, "spilled", n, logs), err, KDTUI_BUSY_TIMEOUT="2")
    outside = None
    try:
        wait_for(lambda: progress_lines(err, "spilled") >= 1, 120, "the eval to start writing")
        outside = hold_read_only(store / "kdtui.duckdb")
        assert proc.wait(timeout=180) == 2
    finally:
        if outside is not None:
            outside.close()
        proc.kill()
    last = err.read_text().strip().splitlines()[-1]
    assert "unsaved results are in" in last and "kdtui store recover" in last, last
    spills = list(logs.glob("unsaved-*.jsonl"))
    assert len(spills) == 1
    recovered = subprocess.run([sys.executable, "-m", "kdtui.cli", "store", "recover", "--store", str(store),
                                "--logs", str(logs)], capture_output=True, text=True, cwd=REPO)
    assert recovered.returncode == 0, recovered.stderr
    state, count = run_state(store, "spilled")
    assert count == n  # every generated row is in the store
    # The status the eval could not write came from the spill ("interrupted: predictions not yet in the
    # store"); with every row now in, recover settles the run as done.
    assert state == "done" and "runs now spilled done" in recovered.stdout, recovered.stdout
    assert not list(logs.glob("unsaved-*.jsonl"))


@pytest.mark.slow
def test_deleted_lock_files_do_not_stop_three_evals(tiny_model: Path, tmp_path: Path) -> None:
    store, n = tmp_path / "store", 8
    Store(store).migrate()
    procs = []
    for i in range(3):
        err = tmp_path / f"e{i}.err"
        procs.append((f"r{i}", err, start_kdtui(eval_args(tiny_model, store, f"r{i}", n, tmp_path / "logs"), err)))
    try:
        while any(p.poll() is None for _, _, p in procs):
            for name in ("kdtui.duckdb.lock", "kdtui.duckdb.gate"):
                (store / name).unlink(missing_ok=True)
            time.sleep(0.02)
        for _run, err, proc in procs:
            assert proc.returncode == 0, err.read_text()
    finally:
        for _, _, proc in procs:
            proc.kill()
    for run, _, _ in procs:
        assert run_state(store, run) == ("done", n)


HOLDER = """
import sys, time
from kdtui.store import Store
store = Store(sys.argv[1])
while True:
    with store.write() as con:
        print("held", flush=True)
        time.sleep(1.0)
"""


def test_a_stopped_writer_is_named_within_seconds(tmp_path: Path) -> None:
    store = tmp_path / "store"
    Store(store).migrate()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    waiters: list[subprocess.Popen[bytes]] = []
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGSTOP)  # frozen inside its write session
        reader_err, writer_err = tmp_path / "reader.err", tmp_path / "writer.err"
        waiters.append(start_kdtui(["sql", "SELECT 42", "--store", str(store)], reader_err))
        writer = ("from kdtui.store import Store; import sys; Store(sys.argv[1]).runs.start('w', 'eval', {}); "
                  "print('written')")
        waiters.append(subprocess.Popen([sys.executable, "-c", writer, str(store)], stdout=subprocess.PIPE,
                                        stderr=writer_err.open("w"), cwd=REPO))
        for err in (reader_err, writer_err):
            wait_for(lambda err=err: f"held by pid {holder.pid}" in err.read_text(), 10, f"{err.name} to name it")
            text = err.read_text()
            assert "stopped: resume it with kill -CONT" in text
        assert "waiting to read" in reader_err.read_text() and "waiting to write" in writer_err.read_text()
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        for waiter in waiters:
            assert waiter.wait(timeout=60) == 0
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        for waiter in waiters:
            waiter.kill()
    assert Store(store).runs.get("w") is not None


def test_writer_keeps_rows_through_any_failure_and_recover_ingests_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", busy_timeout=0.5)
    run = store.runs.start("r", "eval", {})
    writer = PredictionWriter(store, run, "r", tmp_path / "logs")
    writer.add(prediction_rows(3))
    assert writer.pending == [] and writer.written == 3
    outside = duckdb.connect(str(store.path), read_only=True)
    try:
        writer.add(prediction_rows(2, start=3))  # refused: kept
        assert len(writer.pending) == 2 and writer.last_error and "locked" in writer.last_error
        spill = writer.close()
    finally:
        outside.close()
    assert spill is not None and spill.is_file() and writer.pending == []
    assert store.predictions.count(run) == 3
    assert recover(store, tmp_path / "logs") == [f"{spill.name}: 2 predictions, 2 new"]
    assert store.predictions.done_items(run) == {f"q{i}" for i in range(5)}
    assert recover(store, tmp_path / "logs") == []  # a spill is ingested once


def test_reader_is_not_blocked_by_other_readers(tmp_path: Path) -> None:
    """A fresh reader only checks the schema version under the shared lock: a long read does not stall it."""
    import fcntl

    store = tmp_path / "store"
    Store(store).migrate()
    with open(store / "kdtui.duckdb.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # as a long console query does
        proc = subprocess.run([sys.executable, "-m", "kdtui.cli", "sql", "SELECT 42", "--store", str(store)],
                              capture_output=True, text=True, cwd=REPO, env=dict(os.environ, KDTUI_BUSY_TIMEOUT="5"),
                              timeout=60)
    assert proc.returncode == 0 and "42" in proc.stdout, proc.stderr
    assert "waiting" not in proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_eval_says_one_line_and_keeps_its_rows(tiny_model: Path, tmp_path: Path, signum: int) -> None:
    store, n = tmp_path / "store", 500  # far more than it gets through before the signal
    err = tmp_path / "eval.err"
    proc = start_kdtui(eval_args(tiny_model, store, "stopped", n, tmp_path / "logs"), err)
    try:
        wait_for(lambda: progress_lines(err, "stopped") >= 3, 120, "the eval to make progress")
        proc.send_signal(signum)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    state, count = run_state(store, "stopped")
    text = err.read_text()
    assert state == "interrupted" and 0 < count < n, (state, count, text)
    assert "Traceback" not in text, text
    if signum == signal.SIGINT:
        assert code == 130 and text.strip().splitlines()[-1].startswith("kdtui: interrupted;"), (code, text)
    else:
        assert code == 0  # SIGTERM: stopped cleanly after the batch in hand
