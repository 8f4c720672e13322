"""Hostile input: SQL that tries to write or reach files, names that try to leave the store, strings
that try to break the screen, sizes and corruption. Every refusal leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from kdtui.data.gsm8k import load_problems
from kdtui.errors import KdtuiError
from kdtui.extract import extract_answer
from kdtui.store import ReadOnlyViolation, Store, UserQuery
from tests.helpers import kdtui, one_line_error
from tests.tui_store import build_store

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store in a folder of its own, HOME pointed inside it so extension folders would show."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    build_store(tmp_path / "store")
    return tmp_path


def snapshot(root: Path) -> tuple[set[str], list[tuple[object, ...]]]:
    files = {str(p.relative_to(root)) for p in root.rglob("*") if ".wal" not in p.name}
    counts = Store(root / "store").query(
        "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM predictions) AS predictions, "
        "(SELECT count(*) FROM triage) AS triage").rows
    return files, counts


BYPASSES = [
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{d}/x.csv'",
    "EXPLAIN ANALYZE SET log_query_path='{d}/q.txt'; SELECT 'any text'",
    "PRAGMA import_database('{d}/dump')",
    "ATTACH '{d}/new.duckdb' AS z (READ_WRITE); CREATE TABLE z.t (a INT)",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('/root/**')",
    "SELECT * FROM read_xlsx('{d}/book.xlsx')",
    "COPY runs TO '{d}/runs.csv'",
    "INSTALL excel",
    "SET enable_external_access = true; SELECT * FROM read_text('/etc/hostname')",
]


def _dump(root: Path) -> None:
    dump = root / "dump"
    dump.mkdir(exist_ok=True)
    (dump / "schema.sql").write_text(f"COPY (SELECT 'owned') TO '{root}/owned.csv';\n", encoding="utf-8")
    (dump / "load.sql").write_text("", encoding="utf-8")


@pytest.mark.parametrize("sql", BYPASSES)
def test_user_sql_cannot_write_or_reach_files(sandbox: Path, sql: str) -> None:
    _dump(sandbox)
    before = snapshot(sandbox)
    query = sql.format(d=sandbox)
    with pytest.raises(KdtuiError, match=r"refused|query failed"):
        UserQuery(Store(sandbox / "store", create=False), query).rows()
    proc = kdtui("sql", query, "--store", str(sandbox / "store"), cwd=sandbox)
    one_line_error(proc, "refused|query failed")
    assert snapshot(sandbox) == before  # no file created, no extension folder, no row changed
    assert not (sandbox / "home" / ".duckdb").exists()


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1) TO '{d}/x.csv'", "SET log_query_path='{d}/q.txt'", "PRAGMA import_database('{d}/dump')",
    "ATTACH '{d}/new.duckdb' AS z (READ_WRITE)", "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/root/**')", "INSTALL excel", "SET enable_external_access = true",
])
def test_the_read_session_itself_refuses_without_any_statement_check(sandbox: Path, sql: str) -> None:
    """Read-only by configuration, not by parsing: raw SQL on a read session still cannot get out."""
    _dump(sandbox)
    before = snapshot(sandbox)
    with Store(sandbox / "store", create=False).read() as con, pytest.raises(duckdb.Error):
        con.execute(sql.format(d=sandbox))
    assert snapshot(sandbox) == before


def test_friendly_refusals_say_what_is_allowed(sandbox: Path) -> None:
    store = Store(sandbox / "store", create=False)
    with pytest.raises(ReadOnlyViolation, match="EXPLAIN of anything but a SELECT"):
        UserQuery(store, "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'").rows()
    with pytest.raises(ReadOnlyViolation, match="PRAGMA import_database"):
        UserQuery(store, "PRAGMA import_database('d')").rows()
    with pytest.raises(ReadOnlyViolation, match=r"cannot read or write files .*--allow-files"):
        UserQuery(store, "SELECT * FROM read_text('/etc/hostname')").rows()
    assert UserQuery(store, "EXPLAIN ANALYZE SELECT count(*) FROM runs").rows().rows
    assert UserQuery(store, "PRAGMA table_info('runs')").rows().rows


def test_allow_files_reads_local_files_on_the_cli_only(sandbox: Path) -> None:
    data = sandbox / "numbers.csv"
    data.write_text("n\n1\n2\n", encoding="utf-8")
    query = f"SELECT sum(n) AS total FROM read_csv('{data}')"
    one_line_error(kdtui("sql", query, "--store", str(sandbox / "store")), "cannot read or write files")
    proc = kdtui("sql", query, "--allow-files", "--store", str(sandbox / "store"))
    assert proc.returncode == 0 and "3" in proc.stdout, proc.stderr
    still = kdtui("sql", f"COPY (SELECT 1) TO '{sandbox}/out.csv'", "--allow-files", "--store",
                  str(sandbox / "store"))
    one_line_error(still, "refused: COPY")
    assert not (sandbox / "out.csv").exists()


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["../../x", "/abs/path", "", ".", "..", "a/b", "-rf"])
def test_capture_names_cannot_leave_the_store(tiny_model: Path, tmp_path: Path, name: str) -> None:
    store = tmp_path / "deep" / "store"
    proc = kdtui("capture", "--teacher", str(tiny_model), f"--name={name}", "--data", "synthetic", "--limit", "1",
                 "--store", str(store))
    one_line_error(proc, r"--name: .*capture name")
    assert not store.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
    assert not Path("/abs/path").exists()


@pytest.mark.parametrize("name", ["../../x", "/etc", "a/../../b"])
def test_capture_inspect_cannot_read_outside_the_store(sandbox: Path, name: str) -> None:
    one_line_error(kdtui("capture", "inspect", name, "--store", str(sandbox / "store")), "capture name")


def test_run_names_are_checked(tiny_model: Path, tmp_path: Path) -> None:
    for bad in ["a/../b", "[/]", "x" * 201, "/lead"]:
        one_line_error(kdtui("eval", "--model", str(tiny_model), f"--run={bad}", "--store", str(tmp_path / "s")),
                       r"--run: .*run name")


# --------------------------------------------------------------------------- serve

def test_serve_refuses_the_network_without_expose(sandbox: Path) -> None:
    one_line_error(kdtui("serve", "--host", "0.0.0.0", "--store", str(sandbox / "store")),
                   "would open the TUI .* SSH tunnel .*--expose")


# ------------------------------------------------------------------- text is data

HOSTILE = ["[/]", "[/INST]", "[bold red]x[/", "\x1b[2J\x1b[31mred", "zero\u200bwidth", "\u202eevil", "[link=x]y"]


def hostile_store(root: Path) -> Store:
    store = Store(root)
    for index, text in enumerate(HOSTILE):
        run = store.runs.start(f"{text}-{index}", "eval", {"model": text, "prompt": text, "strategy": text})
        # the first run's response is over 1 MB
        response = "The answer is 7. " + text + ("9" * 10 + " ") * (100_000 if index == 0 else 0)
        store.predictions.add(run, [dict(
            item_id=f"{text}/{index}", question=f"Q {text}", gold=7.0, prompt=text, response=response,
            n_new_tokens=3, finish_reason="eos", value=7.0, rule=text, needs_review=True, correct=True,
            candidates=[7.0, 9.0])])
        store.runs.finish(run, "done")
    return store


def test_cli_tables_show_hostile_strings_as_written(tmp_path: Path) -> None:
    store = hostile_store(tmp_path / "store")
    for args in (["leaderboard"], ["sql", "SELECT name, config FROM runs"],
                 ["sql", "SELECT response, rule FROM predictions"], ["store"]):
        proc = kdtui(*args, "--store", str(store.root))
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr and "\x1b" not in proc.stdout
        assert "[/INST]" in proc.stdout and "[/]" in proc.stdout and "⇆evil" in proc.stdout


async def test_every_screen_survives_hostile_strings(tmp_path: Path) -> None:
    from textual.widgets import Static, TextArea

    from kdtui.tui.app import KdtuiApp
    from tests.pilot_helpers import settle

    store = hostile_store(tmp_path / "store")
    app = KdtuiApp(store.root)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        board = app.screen
        assert {r.name for r in board.rows} >= {f"{t}-{i}" for i, t in enumerate(HOSTILE)}  # type: ignore[attr-defined]
        await pilot.press("b", "v", "o")
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)
        for _ in HOSTILE:
            shown = str(app.screen.query_one("#response", Static).render())
            assert "\x1b" not in shown
            await pilot.press("j")
            await settle(pilot, 0.05)
        await pilot.press("f3")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("escape", "f4")
        await settle(pilot)
        app.screen.query_one("#editor", TextArea).text = "SELECT name, config, status FROM runs"
        await pilot.press("f5")
        await settle(pilot)
        assert "7 rows" in str(app.screen.query_one("#sql-status", Static).render())
        await pilot.press("f6", "f1")
        await settle(pilot)
        assert app.return_code is None and app.is_running  # nothing crashed
        assert not [n for n in app._notifications if n.severity == "error"]


# ----------------------------------------------------------------- sizes, corruption

def test_synthetic_data_is_made_lazily() -> None:
    problems = load_problems("synthetic", limit=10**20, offset=998)
    assert [p.item_id for p in problems] == ["synthetic-0/998", "synthetic-0/999"]
    assert load_problems("synthetic:3", limit=1)[0].question == load_problems("synthetic:3", limit=2)[0].question
    with pytest.raises(KdtuiError, match="synthetic seed must be a whole number"):
        load_problems("synthetic:abc")


def test_overlong_prompts_are_cut_and_counted_or_refused(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"question": "How many? " + "apples and pears " * 12_000, "answer": "#### 4"}) + "\n"
                    + json.dumps({"question": "What is 2 + 2?", "answer": "#### 4"}) + "\n", encoding="utf-8")
    common = ["eval", "--model", str(tiny_model), "--data", str(data), "--max-new-tokens", "4",
              "--store", str(tmp_path / "store"), "--logs", str(tmp_path / "logs")]
    proc = kdtui(*common, "--run", "cut")
    assert proc.returncode == 0, proc.stderr
    assert "warning: 1 prompts were longer than the model's context" in proc.stderr
    assert Store(tmp_path / "store").runs.get("cut").warnings == {"inputs_truncated": 1}  # type: ignore[union-attr]
    one_line_error(kdtui(*common, "--run", "strict", "--overlong", "refuse"), "1 prompts are longer than")


def test_damaged_captures_are_noticed(tiny_model: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    args = ["capture", "--teacher", str(tiny_model), "--name", "c", "--data", "synthetic", "--limit", "4",
            "--examples-per-shard", "2", "--k", "4", "--store", str(store)]
    assert kdtui(*args).returncode == 0
    shard = store / "captures" / "c" / "shard-00001.safetensors"
    blob = shard.read_bytes()
    shard.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))  # same size, one bit pattern changed
    inspect = kdtui("capture", "inspect", "c", "--store", str(store))
    assert inspect.returncode == 0 and "sizes: ok" in inspect.stdout
    one_line_error(kdtui("capture", "inspect", "c", "--verify", "--store", str(store)),
                   "shard-00001.safetensors does not match its sha256")
    one_line_error(kdtui(*args), r"capture 'c' is damaged: shard-00001.safetensors does not match")
    shard.write_bytes(blob[:100])  # truncated
    one_line_error(kdtui("capture", "inspect", "c", "--store", str(store)), "has 100 bytes, the manifest says")


@pytest.mark.parametrize("garbage", ["{not json", "[]", '{"name": "c", "shards": "many"}'])
def test_a_garbled_manifest_is_one_line(tiny_model: Path, tmp_path: Path, garbage: str) -> None:
    store = tmp_path / "store"
    folder = store / "captures" / "c"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(garbage, encoding="utf-8")
    one_line_error(kdtui("capture", "inspect", "c", "--store", str(store)), "manifest.json is damaged")
    one_line_error(kdtui("capture", "--teacher", str(tiny_model), "--name", "c", "--data", "synthetic", "--limit",
                         "1", "--store", str(store)), "manifest.json is damaged")


def test_numbers_no_answer_has() -> None:
    huge = extract_answer("The total is " + "9" * 100_000)
    assert (huge.value, huge.needs_review) == (None, True)
    assert extract_answer("The answer is 1e3").value == 1000.0
    assert extract_answer("It is 2.5e-3 grams").value == 0.0025


# ---------------------------------------------------------------- one-line errors

def test_bad_inputs_are_one_line(tiny_model: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    one_line_error(kdtui("eval", "--model", str(broken), "--data", "synthetic", "--limit", "1", "--store", store),
                   "cannot load model .*check that its files are complete")
    one_line_error(kdtui("eval", "--model", str(tiny_model), "--data", "synthetic:abc", "--store", store),
                   "synthetic seed must be a whole number")
    one_line_error(kdtui("eval", "--model", str(tiny_model), "--data", "synthetic", "--device", "quantum",
                         "--limit", "1", "--store", store), "--device 'quantum' is not a device")
    nulls = tmp_path / "nulls.jsonl"
    nulls.write_text(json.dumps({"question": None, "answer": "#### 3"}) + "\n", encoding="utf-8")
    one_line_error(kdtui("eval", "--model", str(tiny_model), "--data", str(nulls), "--store", store),
                   "'question' must be non-empty text, got null")
    toml = tmp_path / "yes.toml"
    toml.write_text(f'[eval]\nmodel = "{tiny_model}"\ndo_sample = "yes"\n', encoding="utf-8")
    one_line_error(kdtui("eval", "--config", str(toml), "--store", store),
                   r"do_sample: Input should be a valid boolean")
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"response": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    one_line_error(kdtui("extract", str(nested)), "nested too deeply|not valid JSON")
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps({"response": "7"}) + "\n", encoding="utf-8")
    one_line_error(kdtui("extract", str(ok), "--out", str(tmp_path / "missing" / "o.jsonl")), "does not exist")
    build_store(tmp_path / "s2")
    one_line_error(kdtui("sql", "SELECT 1", "--format", "csv", "--out", str(tmp_path / "missing" / "o.csv"),
                         "--store", str(tmp_path / "s2")), "does not exist")
    assert not os.path.exists(tmp_path / "missing")
