"""The registry of job kinds: a kind defined outside kdtui runs through `kdtui run` and the worker, touching
only its own module; bad kinds and configs are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdtui.jobs.kinds import KINDS, job_kind
from kdtui.store import Store
from tests.helpers import kdtui, one_line_error, stop_worker
from tests.toy_kind import TOY_EXPERIMENT


def test_the_built_in_kinds_are_registered_with_their_needs() -> None:
    assert {"capture", "merge", "distill", "eval"} <= set(KINDS)
    assert job_kind("merge").inline and not job_kind("distill").inline
    with pytest.raises(Exception, match=r"unknown job kind 'nope'; kinds: .*capture.*distill"):
        job_kind("nope")


def test_a_kind_defined_in_its_own_module_runs_through_kdtui_run_and_the_worker(toy_plugin: None,
                                                                                 tmp_path: Path) -> None:
    exp = tmp_path / "toy.toml"
    exp.write_text(TOY_EXPERIMENT)
    store_dir, logs = tmp_path / "store", tmp_path / "logs"
    plan = kdtui("run", str(exp), "--store", str(store_dir), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "toy/first" in plan.stdout and "toy/second" in plan.stdout
    try:
        done = kdtui("run", str(exp), "--cpu", "--wait", "--store", str(store_dir), "--logs", str(logs))
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        stop_worker(store_dir)
    jobs = {j.name: j for j in Store(store_dir).jobs.all()}
    assert {name: (j.kind, j.state) for name, j in jobs.items()} == {"toy/first": ("toy", "done"),
                                                                     "toy/second": ("toy", "done")}
    assert jobs["toy/second"].depends == [jobs["toy/first"].id]
    # the second ran after the first: it copied the first's file before writing its own
    assert (store_dir / "toy" / "toy_second.txt").read_text() == "hello\nagainagain\n"
    assert job_kind("toy").outputs({"name": "toy/first"}, store_dir) == [store_dir / "toy" / "toy_first.txt"]


@pytest.mark.parametrize(("table", "message"), [
    ('kind = "nope"\nname = "x"', r"\[\[job\]\] x: unknown job kind 'nope'"),
    ('kind = "toy"\nname = "x"\nconfig = { name = "x", repeat = 0 }',
     r"\[\[job\]\] x: toy job: message: Field required"),
    ('kind = "toy"\nname = "x"\nconfig = { name = "x", message = "m" }\ndepends = ["y"]',
     r"\[\[job\]\] x: depends on 'y', which is not a job of this experiment"),
    ('kind = "toy"\nname = "bad name!"', r"job\.0\.name: .*run name"),
])
def test_a_bad_job_table_is_one_line(toy_plugin: None, tmp_path: Path, table: str, message: str) -> None:
    exp = tmp_path / "bad.toml"
    exp.write_text(f'[experiment]\nname = "bad"\n\n[[job]]\n{table}\n')
    proc = kdtui("run", str(exp), "--store", str(tmp_path / "store"), "--dry-run")
    assert proc.returncode == 2
    one_line_error(proc, message)


def test_an_experiment_with_nothing_to_run_says_what_to_add(tmp_path: Path) -> None:
    exp = tmp_path / "empty.toml"
    exp.write_text('[experiment]\nname = "empty"\n')
    proc = kdtui("run", str(exp), "--store", str(tmp_path / "store"), "--dry-run")
    one_line_error(proc, r"nothing to run: add strategies")
