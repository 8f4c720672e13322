"""Every command and every ``--help``, as a user types them: a good path, and bad input as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kdtui import __version__
from kdtui.cli.main import build_parser, main
from kdtui.store import Store
from kdtui.store.schema import MIGRATIONS
from tests.helpers import ENV, REPO, kdtui, kdtui_process, one_line_error
from tests.tui_store import build_store

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_every_command_is_listed() -> None:
    assert COMMANDS == ["cancel", "capture", "demo", "distill", "eval", "extract", "import", "job", "jobs",
                        "leaderboard", "logs", "pause", "reextract", "report", "resume", "retry", "run", "serve", "sql",
                        "store", "tui", "worker"]


def test_the_console_script_starts_without_duckdb_or_torch() -> None:
    """``kdtui --help`` as its own process (the tests below run commands in this one) loads neither DuckDB nor
    torch: a user waits for neither before a command that needs neither."""
    code = ("import sys\nfrom kdtui.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit as e:\n"
            "    print('EXIT', e.code, sorted(m for m in ('duckdb', 'torch', 'transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=ENV,
                          timeout=120)
    assert "EXIT 0 []" in proc.stdout, (proc.stdout[-300:], proc.stderr)
    assert kdtui_process("--version").stdout.strip() == f"kdtui {__version__}"


def test_top_level_help_and_version() -> None:
    proc = kdtui("--help")
    assert proc.returncode == 0 and "95%" in proc.stdout and proc.stderr == ""
    for command in COMMANDS:
        assert command in proc.stdout
    version = kdtui("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"kdtui {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: kdtui {command}")
    if command not in ("extract",):
        assert "--store" in out
    assert "--batch_size" not in out and "--max_new_tokens" not in out  # flags are dashed


def test_eval_help_comes_from_the_config_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--batch-size BATCH_SIZE Questions generated together (left-padded); with --engine vllm" in out
    assert "--engine {transformers,vllm} Generation engine" in out
    assert "--sample, --no-sample Sample instead of greedy decoding. (default: off)" in out


def test_parse_errors_are_one_line() -> None:
    one_line_error(kdtui("eval", "--limit", "abc"), r"argument --limit: invalid int value: 'abc' \(see `kdtui eval")
    one_line_error(kdtui("no-such-command"), r"invalid choice: 'no-such-command'")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("smoke") / "store").root


def test_global_store_flag_is_honoured(seeded: Path, tmp_path: Path) -> None:
    proc = kdtui("--store", str(seeded), "leaderboard", cwd=tmp_path)
    assert proc.returncode == 0 and "teacher-kd" in proc.stdout, proc.stderr
    assert not (tmp_path / "store").exists()  # ./store was not created


def test_leaderboard(seeded: Path, tmp_path: Path) -> None:
    proc = kdtui("leaderboard", "--store", str(seeded))
    assert proc.returncode == 0 and "teacher-kd" in proc.stdout and "60.0%" in proc.stdout
    one_line_error(kdtui("leaderboard", "--store", str(tmp_path / "typo")), r"no kdtui store at .*typo")
    assert not (tmp_path / "typo").exists()


def test_sql(seeded: Path, tmp_path: Path) -> None:
    proc = kdtui("sql", "SELECT 42 AS answer", "--store", str(seeded))
    assert proc.returncode == 0 and "42" in proc.stdout and proc.stderr.strip() == "1 row"
    one_line_error(kdtui("sql", "DELETE FROM runs", "--store", str(seeded)), "refused: DELETE")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    import duckdb

    duckdb.connect(str(foreign / "kdtui.duckdb")).execute("CREATE TABLE t (a INT)").close()
    one_line_error(kdtui("sql", "SELECT 1", "--store", str(foreign)), "a DuckDB file but not a kdtui store")


@pytest.mark.slow
def test_eval_and_demo(tiny_model: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = kdtui("eval", "--model", str(tiny_model), "--data", "synthetic", "--limit", "2", "--max-new-tokens", "4",
                 "--run", "smoke", "--store", str(store), "--logs", str(tmp_path / "logs"))
    assert proc.returncode == 0, proc.stderr
    assert "run 'smoke': 2 new of 2 items" in proc.stderr
    one_line_error(kdtui("eval", "--model", str(tiny_model), "--batch-size", "0", "--store", str(store)),
                   r"--batch-size: Input should be greater than or equal to 1")
    one_line_error(kdtui("eval", "--store", str(store)), r"--model: Field required")
    proc = kdtui("demo", "--model", str(tiny_model), "--data", "synthetic", "--limit", "2", "--train", "12",
                 "--steps", "2", "--no-tui", "--store", str(store), "--logs", str(tmp_path / "logs"))
    assert proc.returncode == 0, proc.stderr
    for run in ("demo/eval/smollm2/no-distil", "demo/eval/smollm2/base", "demo/eval/smollm2/teacher",
                "demo/eval/smollm2/fine-tune"):
        assert run in proc.stdout
    assert "stage timings: model" in proc.stdout
    # the students against the fine-tune control, paired, and each distil run's KD term beside its CE
    assert "Against demo/eval/smollm2/fine-tune" in proc.stdout and "McNemar p" in proc.stdout
    assert "(1-α)·D·T²" in proc.stdout and "demo/smollm2/base" in proc.stdout
    board = kdtui("leaderboard", "--baseline", "demo/eval/smollm2/fine-tune", "--store", str(store))
    assert board.returncode == 0 and "McNemar p" in board.stdout, board.stderr
    one_line_error(kdtui("leaderboard", "--baseline", "nope", "--store", str(store)),
                   r"no evaluated run 'nope'; --baseline takes a run name from: ")
    one_line_error(kdtui("demo", "--model", str(tmp_path / "nope"), "--no-tui", "--store", str(store)),
                   "no model at")


def test_capture_and_inspect(tiny_model: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = kdtui("capture", "--teacher", str(tiny_model), "--name", "c", "--data", "synthetic", "--limit", "2",
                 "--k", "4", "--store", str(store), "--logs", str(tmp_path / "logs"))
    assert proc.returncode == 0, proc.stderr
    assert "capture 'c': 2 examples" in proc.stderr
    said = " ".join(proc.stderr.split())  # the console wraps at the terminal's width
    assert "T=5.94227 is refused (use --format hidden" in said  # top-4 keeps little at the study's T
    inspect = kdtui("capture", "inspect", "c", "--store", str(store))
    assert inspect.returncode == 0 and "bytes/token" in inspect.stdout
    assert "teacher mass kept" in inspect.stdout and "under the 90% floor" in inspect.stdout
    one_line_error(kdtui("capture", "--name", "x", "--store", str(store)), r"--teacher: Field required")
    one_line_error(kdtui("capture", "inspect", "nope", "--store", str(store)), r"no capture 'nope'.*known: c")
    state = Store(store).runs.get("capture:c")
    assert state is not None and (state.kind, state.status) == ("capture", "done")


def test_extract(tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"response": "The answer is 12."}) + "\n", encoding="utf-8")
    proc = kdtui("extract", str(data))
    assert proc.returncode == 0 and json.loads(proc.stdout)["value"] == 12.0
    one_line_error(kdtui("extract", str(tmp_path / "missing.jsonl")), "missing.jsonl")


def test_store_info_and_recover(seeded: Path, tmp_path: Path) -> None:
    proc = kdtui("store", "--store", str(seeded))
    assert proc.returncode == 0, proc.stderr
    assert f"schema v{len(MIGRATIONS)}" in proc.stdout and "teacher-kd" in proc.stdout
    (tmp_path / "logs").mkdir()
    proc = kdtui("store", "recover", "--store", str(seeded), "--logs", str(tmp_path / "logs"))
    assert proc.returncode == 0 and "nothing to recover" in proc.stdout
    one_line_error(kdtui("store", "recover", "--store", str(seeded), "--logs", str(tmp_path / "no-logs")),
                   "no logs folder")
    one_line_error(kdtui("store", "--store", str(tmp_path / "typo")), "no kdtui store")


def test_tui_and_serve_refuse_bad_input(tmp_path: Path) -> None:
    one_line_error(kdtui("tui", "--store", str(tmp_path / "typo")), "no kdtui store")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    one_line_error(kdtui("--store", str(a_file)), "is a file; point --store at the folder")
    one_line_error(kdtui("serve", "--port", "99999", "--store", str(tmp_path)), "--port 99999")
