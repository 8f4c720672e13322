"""Hardening, round two: serve only for its owner, SQL that stops when asked, export that cannot hurt the
store, text shown by category, recovery that never gives up on good data, messages that say what is true."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from kdtui.render import visible
from kdtui.store import Store
from kdtui.store.session import StoreBusy, lock_holders
from kdtui.store.writer import append_spill, recover
from tests.helpers import kdtui, one_line_error, wait_for
from tests.tui_store import build_store

REPO = Path(__file__).resolve().parent.parent
ENDLESS = "SELECT sum(range) FROM range(10000000000000)"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- serve

@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """``kdtui serve`` on loopback (no --expose): its port and the token from the printed link."""
    store = build_store(tmp_path / "store").root
    port = _port()
    err = tmp_path / "serve.err"
    with err.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "kdtui.cli", "serve", "--port", str(port), "--store",
                                 str(store)], stderr=fh, cwd=REPO)
    try:
        wait_for(lambda: re.search(r"\?token=([\w-]+)", err.read_text()) is not None, 60, "the printed link")
        found = re.search(r"http://127\.0\.0\.1:\d+/\?token=([\w-]+)", err.read_text())
        assert found, err.read_text()

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(answers, 60, "the server to listen")
        yield port, found.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_serve_needs_its_token_on_loopback_and_trades_it_for_a_cookie(served: tuple[int, str]) -> None:
    port, token = served
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/") as page:
            assert page.status == 403
            assert page.headers["Referrer-Policy"] == "no-referrer"
        async with client.get(f"{base}/?token=wrong") as page:
            assert page.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(f"ws://127.0.0.1:{port}/ws")
        assert refused.value.status == 403
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(f"{base}/?token={token}", allow_redirects=False) as first:
            assert first.status == 302 and first.headers["Location"] == "/"  # the token leaves the address bar
            cookie = first.cookies[f"kdtui_token_{port}"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        async with client.get(f"{base}/") as page:
            assert page.status == 200 and "kdtui" in await page.text()
            assert token not in await page.text()
        # a page of another site, even with the owner's cookie (a browser sends it), is refused
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await client.ws_connect(f"ws://127.0.0.1:{port}/ws", origin="http://evil.example")
        assert foreign.value.status == 403
        # a DNS name rebound to 127.0.0.1 is not a name this server answers to
        async with client.get(f"{base}/", headers={"Host": f"evil.example:{port}"}) as page:
            assert page.status == 403
        socket_ = await client.ws_connect(f"ws://127.0.0.1:{port}/ws?width=80&height=24",
                                          origin=f"http://127.0.0.1:{port}")
        message = await socket_.receive(timeout=60)
        assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
        await socket_.close()


def test_another_local_user_cannot_drive_serve(served: tuple[int, str]) -> None:
    if os.geteuid() != 0 or not shutil.which("runuser") or not shutil.which("curl"):
        pytest.skip("needs root, runuser and curl to act as another local user")
    port, _ = served
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
         "-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
         "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "-H", f"Origin: http://127.0.0.1:{port}",
         f"http://127.0.0.1:{port}/ws"], capture_output=True, text=True, timeout=60)
    assert probe.stdout == "403", (probe.stdout, probe.stderr)


def test_a_wildcard_bind_prints_a_link_one_can_open() -> None:
    from kdtui.cli.serve import allowed_hosts, link_host

    assert link_host("0.0.0.0") not in ("0.0.0.0", "")
    assert link_host("127.0.0.1") == "127.0.0.1" and link_host("::1") == "[::1]"
    assert "evil.example" not in allowed_hosts("127.0.0.1") and "localhost" in allowed_hosts("127.0.0.1")


# ------------------------------------------------------------------ SQL that stops

def test_ctrl_c_stops_a_long_query_and_releases_the_store(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store")
    # SIGINT as a terminal's Ctrl-C delivers it: a test run started in the background (`make test &`) leaves
    # SIGINT ignored in its children, and Python then installs no handler for it (the query ran on).
    proc = subprocess.Popen([sys.executable, "-m", "kdtui.cli", "sql", ENDLESS, "--store", str(store.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # Holding the lock: opening the store or running the query. Ctrl-C in either is "query cancelled" and
        # must leave the store free (under load it can land before the query starts; both are checked alike).
        wait_for(lambda: proc.pid in lock_holders(store.root / "kdtui.duckdb"), 120, "the query to be running")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        print(f"SIGINT to exit: {time.monotonic() - sent:.2f}s")
    finally:
        proc.kill()
    assert proc.returncode == 2 and "query cancelled" in err and "Traceback" not in err, err
    Store(store.root, busy_timeout=5).runs.start("after-the-query", "eval", {})  # the store is free


def test_a_cancel_that_lands_before_the_statement_starts_still_stops_it(tmp_path: Path) -> None:
    """interrupt() right after the query thread starts usually lands before DuckDB runs the statement, where a
    single interrupt finds nothing to stop and is forgotten (a CI run hung on it): every one must end."""
    import threading

    from kdtui.errors import KdtuiError
    from kdtui.store import UserQuery

    store = build_store(tmp_path / "store")
    for _ in range(10):
        query = UserQuery(store, ENDLESS)
        ended, said = threading.Event(), []

        def run(query: UserQuery = query, ended: threading.Event = ended, said: list[str] = said) -> None:
            try:
                query.rows()
            except KdtuiError as exc:
                said.append(str(exc))
            finally:
                ended.set()

        threading.Thread(target=run, daemon=True).start()
        query.interrupt()
        assert ended.wait(120), "a cancel was lost: the query runs on"
        assert said and "cancelled" in said[0], said


def test_a_time_limit_stops_a_query(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store")
    one_line_error(kdtui("sql", ENDLESS, "--timeout", "0.5", "--store", str(store.root)),
                   r"query stopped after 0\.5s .*--timeout")
    one_line_error(kdtui("sql", "SELECT 1", "--timeout", "0", "--store", str(store.root)), "above 0")


def test_read_sessions_cap_memory_and_scratch_disk(tmp_path: Path) -> None:
    from kdtui.store import UserQuery

    store = build_store(tmp_path / "store")
    rows = UserQuery(store, "SELECT current_setting('memory_limit') AS m, "
                            "current_setting('max_temp_directory_size') AS t").rows().records()[0]
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    number, unit = re.match(r"([\d.]+) (\w+)", rows["m"]).groups()  # type: ignore[union-attr]
    limit = float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
    assert limit <= total * 0.26 and rows["t"] != "0 bytes"


async def test_quitting_the_tui_mid_query_cancels_it(tmp_path: Path) -> None:
    from textual.widgets import TextArea

    from kdtui.tui.app import KdtuiApp
    from tests.pilot_helpers import settle

    store = build_store(tmp_path / "store")
    app = KdtuiApp(store.root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f4")
        await settle(pilot)
        app.screen.query_one("#editor", TextArea).text = ENDLESS
        await pilot.press("f5")
        for _ in range(1200):
            if app.screen.running is not None and app.screen.running._live is not None:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        assert app.screen.running._live is not None  # type: ignore[attr-defined]
        await pilot.press("ctrl+q")
    # the query was interrupted, so its session closed and the store takes a writer at once
    Store(store.root, busy_timeout=30).runs.start("after-quit", "eval", {})


def test_pivot_is_a_read(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store")
    proc = kdtui("sql", "PIVOT (SELECT name, kind FROM runs) ON kind USING count(*)", "--store", str(store.root))
    assert proc.returncode == 0, proc.stderr


def test_wide_results_stay_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = build_store(tmp_path / "store")
    env = dict(os.environ, COLUMNS="80")
    proc = subprocess.run([sys.executable, "-m", "kdtui.cli", "sql", "SELECT * FROM runs", "--store",
                           str(store.root)], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # a table when the columns fit, else one `column  value` block per row: either way no column squeezed away
    lines = proc.stdout.splitlines()
    shown = lines[1] if "record 1" not in proc.stdout else "\n".join(line.split()[0] for line in lines if line.split())
    for column in ("id", "name", "kind", "status", "config", "pid", "pid_start", "host", "heartbeat", "warnings",
                   "identity"):
        assert re.search(rf"(^|\s){column}(\s|$)", shown, re.M), (column, proc.stdout)
    from rich.console import Console

    from kdtui.cli import console

    monkeypatch.setattr(console, "out", Console(width=60, record=True, file=open(os.devnull, "w")))  # noqa: SIM115
    console.print_table(["name", "kind", "status", "config", "heartbeat", "warnings", "identity"],
                        [("a", "eval", "done", "{}", 1.5, None, "x")])
    shown = console.out.export_text()
    assert re.search(r"^heartbeat\s+1\.5\s*$", shown, re.M) and re.search(r"^identity\s+x\s*$", shown, re.M), shown


# ------------------------------------------------------------------------- export

def test_export_never_overwrites_the_store_or_a_file_unasked(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store")
    db = store.root / "kdtui.duckdb"
    for target in (db, store.root / "kdtui.duckdb.lock"):
        one_line_error(kdtui("sql", "SELECT 1", "--format", "csv", "--out", str(target), "--force", "--store",
                             str(store.root)), "refused")
    copy = tmp_path / "copy.bin"
    shutil.copy(db, copy)
    one_line_error(kdtui("sql", "SELECT 1", "--format", "csv", "--out", str(copy), "--force", "--store",
                         str(store.root)), "DuckDB database")
    assert Store(store.root, create=False).query("SELECT count(*) AS n FROM runs").records()[0]["n"] == 3
    out = tmp_path / "rows.csv"
    out.write_text("mine\n")
    one_line_error(kdtui("sql", "SELECT 1", "--format", "csv", "--out", str(out), "--store", str(store.root)),
                   "exists; add --force")
    assert out.read_text() == "mine\n"
    sql = "SELECT range AS i, 'x' || range AS s FROM range(120000)"
    proc = kdtui("sql", sql, "--format", "csv", "--out", str(out), "--force", "--store", str(store.root))
    assert proc.returncode == 0 and "120,000 rows" in proc.stdout, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "i,s" and len(lines) == 120_001 and lines[-1] == "119999,x119999"
    proc = kdtui("sql", "SELECT [1, 2] AS l, 'a' AS s", "--format", "json", "--out", str(tmp_path / "r.json"),
                 "--store", str(store.root))
    assert proc.returncode == 0 and json.loads((tmp_path / "r.json").read_text()) == [{"l": [1, 2], "s": "a"}]


def test_tui_exports_go_to_the_exports_folder_only(tmp_path: Path) -> None:
    from kdtui.errors import KdtuiError
    from kdtui.store.exports import tui_export_target

    root = build_store(tmp_path / "store").root
    for name in ("../x.csv", "/tmp/x.csv", ".bashrc_demo", "sub/x.csv", "x.sh"):
        with pytest.raises(KdtuiError):
            tui_export_target(name, root)
    assert tui_export_target("r.csv", root) == root / "exports" / "r.csv"


async def test_tui_export_asks_before_overwriting(tmp_path: Path) -> None:
    from textual.widgets import Input

    from kdtui.tui.app import KdtuiApp
    from kdtui.tui.screens.dialogs import ConfirmScreen
    from tests.pilot_helpers import settle

    store = build_store(tmp_path / "store")
    target = store.root / "exports" / "result.csv"
    target.parent.mkdir()
    target.write_text("keep me\n")
    app = KdtuiApp(store.root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f4")
        await settle(pilot)
        await pilot.press("f5")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen.query_one(Input).value == "result.csv"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert target.read_text() == "keep me\n"
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("y")
        for _ in range(400):
            if target.read_text() != "keep me\n":
                break
            await asyncio.sleep(0.05)
        assert target.read_text() != "keep me\n"


# ------------------------------------------------------------------ text is data

async def test_markup_in_column_names_is_shown_literally(tmp_path: Path) -> None:
    from textual.widgets import TextArea
    from textual_fastdatatable import DataTable

    from kdtui.tui.app import KdtuiApp
    from tests.pilot_helpers import settle

    store = build_store(tmp_path / "store")
    app = KdtuiApp(store.root)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("f4")
        await settle(pilot)
        app.screen.query_one("#editor", TextArea).text = 'SELECT 1 AS "[/]", 2 AS "[/INST]", 3 AS "[a-z]+"'
        await pilot.press("f5")
        for _ in range(400):
            grid = app.screen.query_one("#results", DataTable)
            if grid.ordered_columns and len(grid.ordered_columns) == 3:
                break
            await asyncio.sleep(0.05)
        labels = [c.label.plain for c in app.screen.query_one("#results", DataTable).ordered_columns]
        assert labels == ["[/]", "[/INST]", "[a-z]+"]
        assert app.is_running and app.return_code is None


HIDDEN = {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"}


def test_every_hidden_character_is_made_visible_by_category() -> None:
    planes = [*range(0, 0x30000), *range(0xE0000, 0xE0080), *range(0xF0000, 0xF0010), *range(0x10FFF0, 0x110000)]
    hidden = [chr(c) for c in planes if unicodedata.category(chr(c)) in HIDDEN and chr(c) not in "\t\n"]
    assert len(hidden) > 6000  # the categories, not a list: private use, tags, format characters...
    shown = visible("".join(hidden))
    assert len(shown) == len(hidden)  # one for one: highlighted spans still line up
    assert not [c for c in shown if unicodedata.category(c) in HIDDEN]
    for char in "\u061c\U000e0041\u2061\u206a\ufff9\u00ad\u180e\u2028\u2029":
        assert visible(f"a{char}b") != f"a{char}b"
    assert visible("tab\tnew\nline é 中 [/]") == "tab\tnew\nline é 中 [/]"


def _lone_surrogate_file(path: Path, rows: int = 3) -> Path:
    lines = [json.dumps({"question": f"q{i}", "response": "The answer is 7. \\ud800" if i == 1 else "7",
                         "gold": 7}).replace("\\\\ud800", "\\ud800") for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert "\\ud800" in path.read_text()
    return path


def test_a_lone_surrogate_is_mended_at_import_and_in_extract(tmp_path: Path) -> None:
    data = _lone_surrogate_file(tmp_path / "odd.jsonl")
    proc = kdtui("import", str(data), "--run", "odd", "--store", str(tmp_path / "store"), "--logs",
                 str(tmp_path / "logs"))
    assert proc.returncode == 0 and "1 lone surrogate" in proc.stdout, (proc.stdout, proc.stderr)
    responses = Store(tmp_path / "store").query("SELECT response FROM predictions ORDER BY item_id").records()
    assert responses[1]["response"] == "The answer is 7. \ufffd"
    assert not list((tmp_path / "logs").glob("unsaved-*"))
    proc = kdtui("extract", str(data), "--out", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 0 and "lone surrogate" in proc.stderr, proc.stderr


def test_import_takes_a_bom_and_refuses_non_finite_gold_and_non_files(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    bom = tmp_path / "bom.jsonl"
    bom.write_text("\ufeff" + json.dumps({"question": "q", "response": "7", "gold": 7}) + "\n", encoding="utf-8")
    assert kdtui("import", str(bom), "--run", "bom", "--store", store).returncode == 0
    csv_bom = tmp_path / "bom.csv"
    csv_bom.write_text("\ufeffquestion,response,gold\nq,7,7\n", encoding="utf-8")
    assert kdtui("import", str(csv_bom), "--run", "bom-csv", "--store", store).returncode == 0
    for gold in ("NaN", "Infinity", '"inf"'):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"question": "q", "response": "7", "gold": ' + gold + "}\n", encoding="utf-8")
        one_line_error(kdtui("import", str(bad), "--run", "bad", "--store", store), "not a finite number")
    one_line_error(kdtui("import", "/dev/null", "--run", "null", "--store", store), "not a regular file")
    one_line_error(kdtui("import", str(tmp_path / "nope.jsonl"), "--run", "nope", "--store", store), "no such file")


@pytest.mark.slow
def test_a_big_import_streams(tmp_path: Path) -> None:
    """Memory flat in the file's size: 4x the rows take about the same peak RSS (and the process exits 0)."""
    peaks = []
    for rows in (5_000, 20_000):
        data = tmp_path / f"big{rows}.jsonl"
        with data.open("w", encoding="utf-8") as fh:
            for i in range(rows):
                fh.write(json.dumps({"question": "q" * 200, "response": f"Working... {'x' * 2000} The answer is {i}.",
                                     "gold": i}) + "\n")
        script = ("import resource, sys; from kdtui.cli.main import main; rc = main(sys.argv[1:]); "
                  "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
        proc = subprocess.run([sys.executable, "-c", script, "import", str(data), "--run", f"big{rows}", "--store",
                               str(tmp_path / "store")], capture_output=True, text=True, cwd=REPO, timeout=600)
        assert proc.returncode == 0, proc.stderr
        peaks.append(int(proc.stderr.strip().splitlines()[-1]))
    assert peaks[1] < peaks[0] * 1.25 + 40_000, peaks  # 4x the data (45 -> 180 MB), not 4x the memory


# ---------------------------------------------------------------------- recovery

def test_recover_ingests_good_spills_and_quarantines_a_poisoned_one(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store")
    logs = tmp_path / "logs"
    run_id = store.runs.start("spilled", "eval", {})
    store.runs.finish(run_id, "interrupted", f"{logs}/unsaved-a.jsonl: predictions not yet in the store")
    poisoned = [logs / f"unsaved-{i}-bad-{what}.jsonl" for i, what in enumerate(("json", "status", "gold"))]
    logs.mkdir()
    poisoned[0].write_text('{"run": "spilled", "row": \n', encoding="utf-8")
    append_spill(poisoned[1], [{"run": "spilled", "status": "exploded"}])
    append_spill(poisoned[2], [{"run": "spilled", "row": {"item_id": "x/0", "gold": "seven"}}])
    good = logs / "unsaved-9-good.jsonl"
    append_spill(good, [{"run": "spilled", "row": {
        "item_id": f"x/{i}", "question": "q \ud800", "gold": 1.0, "response": "1", "value": 1.0, "rule": "r",
        "needs_review": False, "correct": True, "candidates": [1.0]}} for i in range(5000)])
    lines = recover(store, logs)
    assert len(lines) == 4
    for path in poisoned:
        assert (path.with_suffix(".quarantined")).exists() and any(path.name in line and "moved to" in line
                                                                     for line in lines), lines
    assert good.with_suffix(".recovered").exists()
    record = store.runs.get("spilled")
    assert record is not None and record.status == "done"
    count = store.query("SELECT count(*) AS n FROM predictions WHERE run_id = ?", [run_id]).records()[0]["n"]
    assert count == 5000
    proc = kdtui("store", "recover", "--store", str(store.root), "--logs", str(logs))
    assert proc.returncode == 0 and "nothing to recover" in proc.stdout


# ---------------------------------------------------------------------- messages

def test_the_wait_message_names_the_process_that_holds_the_store(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store")
    outside = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                                "print('ready', flush=True); sys.stdin.read()", str(store.root / "kdtui.duckdb")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reader = None
    try:
        assert outside.stdout is not None and outside.stdout.readline().strip() == "ready"
        env = dict(os.environ, KDTUI_BUSY_TIMEOUT="120")
        reader = subprocess.Popen([sys.executable, "-m", "kdtui.cli", "sql", "SELECT 1", "--store", str(store.root)],
                                  env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: reader.pid in lock_holders(store.root / "kdtui.duckdb.lock"), 120, "the reader to wait")
        with pytest.raises(StoreBusy) as busy:
            Store(store.root, busy_timeout=1, report_wait=lambda _: None).runs.start("w", "eval", {})
        assert f"pid {outside.pid}" in str(busy.value) and f"pid {reader.pid}" not in str(busy.value), busy.value
    finally:
        outside.kill()
        if reader is not None:
            reader.kill()


def test_job_commands_say_what_is_true(tmp_path: Path) -> None:
    from kdtui.jobs.daemon import holder

    store = Store(tmp_path / "store")
    store.ensure_schema("write")
    from kdtui.jobs.graph import JobSpec

    store.jobs.enqueue([JobSpec("a", "a", "eval", {}, 0, "g")])
    with store.write() as con:
        con.execute("UPDATE jobs SET state = 'done' WHERE id = 'a'")
    root = str(store.root)
    proc = kdtui("cancel", "a", "--store", root)
    assert proc.returncode == 0 and "already ended (done); nothing to cancel" in proc.stdout
    one_line_error(kdtui("retry", "a", "--store", root), "is done; add --rerun")
    assert store.jobs.get("a").state == "done"  # type: ignore[union-attr]
    # three starts at once: one worker, and all three name it
    starts = [subprocess.Popen([sys.executable, "-m", "kdtui.cli", "worker", "start", "--cpu", "--store", root,
                                "--logs", str(tmp_path / "logs")], stdout=subprocess.PIPE, text=True, cwd=REPO)
              for _ in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in starts]
    try:
        pids = {re.search(r"pid (\d+)", o).group(1) for o in outs}  # type: ignore[union-attr]
        assert pids == {str(holder(store.root))}, outs
        assert sum("(started" in o for o in outs) == 1, outs
    finally:
        kdtui("worker", "stop", "--store", root)


async def test_a_crash_in_the_tui_exits_non_zero(tmp_path: Path) -> None:
    from kdtui.tui.app import KdtuiApp, exit_status

    store = build_store(tmp_path / "store")
    app = KdtuiApp(store.root)

    def boom() -> None:
        raise RuntimeError("a bug in a screen")

    with pytest.raises(RuntimeError, match="a bug in a screen"):  # the harness hands the error on, as run() prints it
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            app.call_later(boom)
            for _ in range(400):
                if app.return_code is not None:
                    break
                await asyncio.sleep(0.05)
    assert exit_status(app) == 1  # what `kdtui tui` returns: not the 0 it used to
