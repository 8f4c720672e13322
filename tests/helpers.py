"""The helpers test modules share: running kdtui (in this process, or as a user's process), one-line errors,
waiting for a condition, store rows, and the tiny experiment the job tests run.

Test modules import from here (or from ``tiny``, ``tui_store``, ``pilot_helpers``), never from each other.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


def kdtui(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``kdtui ARGS`` run in this process through the console script's own entry point, with stdout and stderr
    captured as a subprocess would capture them. Torch and the CLI are imported once per test process instead of
    once per call (about 3 s each); tests of what a process boundary does (imports, signals, exit on a lock) use
    :func:`kdtui_process`. ``timeout`` is pytest-timeout's business here; it is kept for the same signature."""
    from kdtui.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's --help, --version and usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(["kdtui", *args], code, out.getvalue(), err.getvalue())


def kdtui_process(*args: str, cwd: Path | None = REPO, timeout: float = 600,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m kdtui.cli ARGS`` as its own process, as a user's shell runs it."""
    return subprocess.run([sys.executable, "-m", "kdtui.cli", *args], cwd=cwd, env=env or ENV, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str], pattern: str) -> str:
    """The run failed with exactly one stderr line, ``kdtui: error: ...`` matching ``pattern``."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("kdtui: error: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; ``timeout`` only bounds a hang, it is never what a test measures."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def prediction_rows(n: int, correct_every: int = 2, review_every: int = 0, start: int = 0) -> list[dict[str, Any]]:
    """``n`` prediction rows: every ``correct_every``-th right, every ``review_every``-th sent to review."""
    out = []
    for i in range(start, start + n):
        right = i % correct_every == 0
        out.append(dict(
            item_id=f"q{i}", question=f"question {i}", gold=10.0, prompt="p", response="r",
            n_new_tokens=5, finish_reason="eos", value=10.0 if right else 3.0, rule="first_line",
            needs_review=bool(review_every) and i % review_every == 0, correct=right, candidates=[3.0, 10.0],
        ))
    return out


def experiment(path: Path, model: Path, strategies: list[str], steps: int = 6, **extra: str) -> Path:
    """A tiny experiment TOML: ``model`` teaches itself ``strategies`` beside both controls, all on the CPU."""
    text = f"""
[experiment]
name = "tiny"
strategies = {json.dumps(strategies)}
controls = ["fine-tune", "no-distil"]
[teacher]
model = "{model}"
[[student]]
name = "tiny"
model = "{model}"
[capture]
data = "synthetic"
limit = 8
mode = "answer"
format = "hidden"
device = "cpu"
[distill]
max_steps = {steps}
checkpoint_every = 2
lr = 1e-3
device = "cpu"
data = "synthetic"
[eval]
data = "synthetic"
limit = 3
max_new_tokens = 8
device = "cpu"
"""
    path.write_text(text + "".join(f"{k} = {v}\n" for k, v in extra.items()))
    return path


def stop_worker(store: Path) -> None:
    """SIGTERM the store's worker daemon, if one runs, and wait until it has let go of the store."""
    from kdtui.jobs import daemon

    daemon.stop_worker(store, wait_s=90)


def results(store: Any) -> dict[str, Any]:
    """What an experiment produced: prediction counts per run, and each distill run's steps and last loss."""
    counts = {r["name"]: (r["n"], r["items"]) for r in store.query(
        "SELECT r.name, count(*) AS n, count(DISTINCT p.item_id) AS items FROM predictions p "
        "JOIN runs r ON r.id = p.run_id GROUP BY 1").records()}
    losses = {r["name"]: r["loss"] for r in store.query(
        "SELECT r.name, m.loss FROM train_metrics m JOIN runs r ON r.id = m.run_id WHERE m.split = 'train' "
        "QUALIFY row_number() OVER (PARTITION BY r.name ORDER BY m.step DESC) = 1").records()}
    steps = {r["name"]: (r["n"], r["steps"]) for r in store.query(
        "SELECT r.name, count(*) AS n, count(DISTINCT step) AS steps FROM train_metrics m JOIN runs r "
        "ON r.id = m.run_id WHERE split = 'train' GROUP BY 1").records()}
    return {"counts": counts, "losses": losses, "steps": steps}
