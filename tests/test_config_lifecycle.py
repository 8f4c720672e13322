"""Recipe configs (flags, TOML, identity) and the run lifecycle (status, heartbeat, lost runs)."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdtui.config.capture import CaptureConfig
from kdtui.config.eval import EvalConfig
from kdtui.errors import KdtuiError
from kdtui.recipes.evaluate import run_eval
from kdtui.recipes.lifecycle import run_lifecycle
from kdtui.store import Store
from tests.helpers import prediction_rows


def parse(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    EvalConfig.add_flags(parser)
    return vars(parser.parse_args(argv))


def test_flags_are_generated_dashed_with_help_and_only_given_ones_are_set() -> None:
    assert parse() == {}  # an absent flag never overrides TOML
    assert parse("--batch-size", "4", "--max-new-tokens", "9") == {"batch_size": 4, "max_new_tokens": 9}
    assert parse("--sample") == {"do_sample": True} and parse("--no-sample") == {"do_sample": False}
    with pytest.raises(SystemExit):
        parse("--protocol", "nope")


@pytest.mark.parametrize(("toml", "flags", "expected"), [
    ("do_sample = true", ["--no-sample"], False),
    ("do_sample = false", ["--sample"], True),
    ("do_sample = true", [], True),
])
def test_explicit_flags_override_toml_both_ways(tmp_path: Path, toml: str, flags: list[str], expected: bool) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(f'[eval]\nmodel = "m"\n{toml}\n', encoding="utf-8")
    assert EvalConfig.from_sources(parse(*flags), path).do_sample is expected


def test_errors_name_the_dashed_flag_or_the_toml_key(tmp_path: Path) -> None:
    with pytest.raises(KdtuiError, match=r"^--batch-size: Input should be greater than or equal to 1$"):
        EvalConfig.from_sources({"model": "m", "batch_size": 0})
    path = tmp_path / "exp.toml"
    path.write_text('[eval]\nmodel = "m"\nbatch_size = 0\n', encoding="utf-8")
    with pytest.raises(KdtuiError, match=r"exp.toml: \[eval\] batch_size: Input should be"):
        EvalConfig.from_sources({}, path)
    assert EvalConfig.from_sources({"batch_size": 2}, path).batch_size == 2  # the flag fixes it


def test_identity_covers_seed_dtype_and_the_prompts_file_text(tmp_path: Path) -> None:
    prompts = tmp_path / "p.toml"
    prompts.write_text('[[prompt]]\nname = "x"\ntemplate = "Q: {question}"\n', encoding="utf-8")
    base = EvalConfig(model="m", prompts_file=str(prompts))
    identity = base.identity()
    assert {"seed", "dtype", "prompts_file", "model", "protocol"} <= set(identity)
    assert not {"batch_size", "limit", "offset", "device", "run"} & set(identity)
    assert EvalConfig(model="m", prompts_file=str(prompts), batch_size=64).identity_hash() == base.identity_hash()
    assert EvalConfig(model="m", prompts_file=str(prompts), seed=1).identity_hash() != base.identity_hash()
    prompts.write_text('[[prompt]]\nname = "x"\ntemplate = "Question: {question}"\n', encoding="utf-8")
    assert base.identity()["prompts_file"] != identity["prompts_file"]  # same path, new text: another identity
    assert "strategies_file" in CaptureConfig(name="c", teacher="t").identity()


def test_resume_refuses_a_changed_prompts_file(tiny_model: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    prompts = tmp_path / "p.toml"
    prompts.write_text('[[prompt]]\nname = "x"\ntemplate = "Q: {question}"\nmax_new_tokens = 2\n', encoding="utf-8")
    cfg = EvalConfig(model=str(tiny_model), data="synthetic", limit=1, prompt="x", prompts_file=str(prompts), run="p")
    run_eval(cfg, store, tmp_path / "logs")
    prompts.write_text('[[prompt]]\nname = "x"\ntemplate = "A: {question}"\nmax_new_tokens = 2\n', encoding="utf-8")
    with pytest.raises(KdtuiError, match=r"run 'p' exists with a different setup \(prompts_file: "):
        run_eval(cfg, store, tmp_path / "logs")
    with pytest.raises(KdtuiError, match=r"seed: 0 -> 3"):
        run_eval(cfg.model_copy(update={"seed": 3}), store, tmp_path / "logs")


def test_a_failing_run_records_failed_with_its_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    cfg = EvalConfig(model="m")
    with pytest.raises(ZeroDivisionError), run_lifecycle(store, cfg, name="boom", kind="eval",
                                                         logs=tmp_path / "logs") as run:
        run.predictions.add(prediction_rows(2))
        raise ZeroDivisionError("division by zero in the loop")
    record = store.runs.get("boom")
    assert record is not None
    assert (record.status, record.state, record.error) == ("failed", "failed", "division by zero in the loop")
    assert store.predictions.count(record.id) == 2  # rows produced before the failure are kept
    assert (record.pid, record.host) == (os.getpid(), socket.gethostname())


def test_a_killed_run_shows_as_lost(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    code = ("import sys, time\nfrom kdtui.store import Store\n"
            "Store(sys.argv[1]).runs.start('killed', 'eval', {})\nprint('started', flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        assert store.runs.get("killed").state == "running"  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()
    record = store.runs.get("killed")
    assert record is not None and (record.status, record.state) == ("running", "lost")
    # without a live process to ask (another host), a heartbeat older than a minute means lost too
    with store.write() as con:
        con.execute("UPDATE runs SET host = 'elsewhere', heartbeat = ? WHERE name = 'killed'", [time.time() - 61])
    assert store.query("SELECT state FROM runs_live WHERE name = 'killed'").records() == [{"state": "lost"}]
    assert store.runs.get("killed").state == "lost"  # type: ignore[union-attr]


def test_a_reused_pid_is_not_taken_for_the_run(tmp_path: Path) -> None:
    """The run's pid now belongs to another process (here: this one, with another start time): lost, although
    its heartbeat is fresh and a process with that pid lives."""
    store = Store(tmp_path / "store")
    run_id = store.runs.start("reused", "eval", {})
    record = store.runs.get("reused")
    assert record is not None and record.state == "running"
    with store.write() as con:
        con.execute("UPDATE runs SET pid_start = pid_start - 1 WHERE id = ?", [run_id])
    assert store.runs.get("reused").state == "lost"  # type: ignore[union-attr]


def test_a_field_added_later_at_its_default_does_not_block_resume(tmp_path: Path) -> None:
    from kdtui.recipes.lifecycle import check_identity

    store = Store(tmp_path / "store")
    cfg = EvalConfig(model="m")
    identity = cfg.identity()
    del identity["overlong"]  # as stored by a kdtui from before the field existed
    store.runs.start("old", "eval", cfg.model_dump(), identity)
    check_identity(store, "old", "eval", cfg)  # default value: the same measurement
    with pytest.raises(KdtuiError, match="overlong: None -> 'refuse'"):
        check_identity(store, "old", "eval", cfg.model_copy(update={"overlong": "refuse"}))


def test_a_field_whose_new_default_changes_the_work_blocks_resume_of_older_runs() -> None:
    """``eos`` came with a default that computes something else (answer-mode targets end with EOS): a capture
    recorded before it existed made none, so resuming it under the default would mix two kinds of examples."""
    from kdtui.config.base import resume_changes

    answer = CaptureConfig(name="c", teacher="t", mode="answer")
    recorded = answer.identity()
    del recorded["eos"]  # as a kdtui from before the field recorded it
    assert resume_changes(recorded, answer) == ["eos: False -> True"]
    assert resume_changes(recorded, answer.model_copy(update={"eos": False})) == []
    prompt = CaptureConfig(name="c", teacher="t", mode="prompt")
    assert "eos" not in prompt.identity()  # only an answer-mode capture ends with EOS: prompt-mode ids are as before
    assert resume_changes(prompt.identity(), prompt) == []
