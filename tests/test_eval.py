"""The evaluation recipe and its CLI on a tiny real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdtui.config.eval import EvalConfig
from kdtui.recipes.evaluate import run_eval
from kdtui.store import Store
from tests.helpers import one_line_error

KDTUI = [sys.executable, "-m", "kdtui.cli"]


def _kdtui(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run([*KDTUI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_eval_writes_predictions_with_extraction(tiny_model: Path, store_dir: Path, tmp_path: Path) -> None:
    store = Store(store_dir)
    updates = []
    cfg = EvalConfig(model=str(tiny_model), data="synthetic", limit=6, batch_size=4, max_new_tokens=8,
                     run="tiny/plain")
    result = run_eval(cfg, store, tmp_path / "logs", progress=updates.append)
    assert (result.n, result.generated) == (6, 6)
    assert updates[-1].done == 6 and updates[-1].total == 6 and updates[-1].tokens_per_s > 0
    rows = store.query("SELECT item_id, gold, n_new_tokens, finish_reason, rule, prompt, question "
                       "FROM predictions ORDER BY item_id").rows
    assert len(rows) == 6
    for item_id, gold, n_new, finish, rule, prompt, question in rows:
        assert item_id.startswith("synthetic-0/")
        assert gold is not None and 1 <= n_new <= 8 and finish in ("eos", "length")
        assert rule in ("boxed", "first_line", "gsm8k_marker", "last_number", "none")
        assert prompt == question  # the plain prompt is the bare question
    status = store.query("SELECT status FROM runs WHERE name = 'tiny/plain'").rows
    assert status == [("done",)]
    # a rerun generates nothing new
    again = run_eval(cfg, store, tmp_path / "logs")
    assert again.generated == 0


def test_batched_greedy_matches_one_at_a_time(tiny_model: Path, store_dir: Path, tmp_path: Path) -> None:
    store = Store(store_dir)
    common = dict(model=str(tiny_model), data="synthetic", limit=5, max_new_tokens=6)
    run_eval(EvalConfig(**common, batch_size=5, run="batched"), store, tmp_path)
    run_eval(EvalConfig(**common, batch_size=1, run="single"), store, tmp_path)
    pairs = store.query(
        "SELECT a.response, b.response FROM predictions a JOIN predictions b USING (item_id) "
        "JOIN runs ra ON a.run_id = ra.id JOIN runs rb ON b.run_id = rb.id "
        "WHERE ra.name = 'batched' AND rb.name = 'single'").rows
    assert len(pairs) == 5
    assert sum(a == b for a, b in pairs) >= 4  # left padding may flip a near-tie in fp32, rarely


def test_chat_prompt_uses_the_chat_template(tiny_model: Path, store_dir: Path, tmp_path: Path) -> None:
    store = Store(store_dir)
    run_eval(EvalConfig(model=str(tiny_model), data="synthetic", limit=2, prompt="chat", max_new_tokens=4,
                        run="chat"), store, tmp_path)
    prompts = [r[0] for r in store.query("SELECT prompt FROM predictions").rows]
    assert all(p.startswith("<|user|>") and p.endswith("<|assistant|>") for p in prompts)


def test_resume_with_changed_setup_is_refused(tiny_model: Path, store_dir: Path, tmp_path: Path) -> None:
    store = Store(store_dir)
    run_eval(EvalConfig(model=str(tiny_model), data="synthetic", limit=1, max_new_tokens=2, run="x"),
             store, tmp_path)
    with pytest.raises(Exception, match=r"exists with a different setup .*prompt: 'plain' -> 'answer-only'"):
        run_eval(EvalConfig(model=str(tiny_model), data="synthetic", limit=1, max_new_tokens=2, run="x",
                            prompt="answer-only"), store, tmp_path)


def test_local_jsonl_and_gold_parsing(tiny_model: Path, store_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "gsm.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"What is {i} + {i}?", "answer": f"{i}+{i}={2*i}\n#### {2*i}"})
                              for i in range(5)) + "\n", encoding="utf-8")
    store = Store(store_dir)
    run_eval(EvalConfig(model=str(tiny_model), data=str(data), offset=1, limit=3, max_new_tokens=2, run="j"),
             store, tmp_path)
    rows = store.query("SELECT item_id, gold FROM predictions ORDER BY item_id").rows
    assert rows == [("gsm/1", 2.0), ("gsm/2", 4.0), ("gsm/3", 6.0)]


def _count(store_dir: Path) -> int:
    try:
        return int(Store(store_dir, busy_timeout=5).query("SELECT count(*) FROM predictions").rows[0][0])
    except Exception:
        return 0


@pytest.mark.slow
def test_resume_after_sigkill(tiny_model: Path, store_dir: Path) -> None:
    n = 24
    args = ["eval", "--model", str(tiny_model), "--data", "synthetic", "--limit", str(n), "--batch-size", "1",
            "--max-new-tokens", "48", "--run", "killed", "--store", str(store_dir)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.Popen([*KDTUI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while _count(store_dir) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _count(store_dir)
    assert 3 <= partial < n, "the run should have been killed part-way"
    finished = _kdtui(*args)
    assert finished.returncode == 0, finished.stderr
    rows = Store(store_dir).query(
        "SELECT count(*), count(DISTINCT item_id) FROM predictions p JOIN runs r ON p.run_id = r.id "
        "WHERE r.name = 'killed'").rows
    assert rows == [(n, n)]


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "/no/such/model", "--data", "synthetic"], "no model at /no/such/model"),
    (["--data", "BAD_JSONL"], "bad.jsonl:2: not valid JSON"),
    (["--data", "EMPTY_JSONL"], "no problems to evaluate"),
    (["--data", "synthetic", "--prompt", "poem"], "unknown prompt 'poem'; choose one of: answer-only, chat, plain"),
    (["--data", "synthetic", "--limit", "0"], "--limit: Input should be greater than or equal to 1"),
    (["--config", "BAD_TOML"], "bad.toml: not valid TOML"),
    (["--config", "UNKNOWN_FIELD_TOML"], r"unknown.toml: \[eval\] colour: Extra inputs are not permitted"),
    (["--data", "synthetic", "--engine", "vllm"], "--engine vllm needs (vLLM: pip install|a CUDA GPU)"),
])
def test_bad_inputs_give_one_line_errors(tiny_model: Path, tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{oops\n', encoding="utf-8")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[eval\nmodel = 1", encoding="utf-8")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(f'[eval]\nmodel = "{tiny_model}"\ncolour = "red"\n', encoding="utf-8")
    replace = {"BAD_JSONL": str(bad), "EMPTY_JSONL": str(empty), "BAD_TOML": str(bad_toml),
               "UNKNOWN_FIELD_TOML": str(unknown)}
    args = [replace.get(a, a) for a in args]
    if "--model" not in args and "--config" not in args:
        args = ["--model", str(tiny_model), *args]
    proc = _kdtui("eval", *args, "--store", str(tmp_path / "store"))
    one_line_error(proc, message)
    if "--model" in args and "/no/such/model" in args:
        assert not (tmp_path / "store").exists()  # bad input fails before anything is created


def test_the_engine_joins_a_runs_identity_only_when_it_is_not_the_default(tiny_model: Path) -> None:
    """Runs evaluated before the engine field existed keep their identities (resume, job ids); a vLLM run is
    another measurement, so resuming it on transformers is refused."""
    plain = EvalConfig(model=str(tiny_model))
    assert "engine" not in plain.identity()
    vllm = EvalConfig(model=str(tiny_model), engine="vllm")
    assert vllm.identity()["engine"] == "vllm" and vllm.identity_hash() != plain.identity_hash()
