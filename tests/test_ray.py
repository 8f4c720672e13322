"""The Ray executor against a real local Ray head (``ray start --head --num-cpus=2``): an experiment gives
what the local worker gives, results reach the store through the worker's Ray actor, a job killed on the
Ray side is retried and resumes from its checkpoint, and a cancel stops a Ray job. Skipped, with the
reason, where the ``ray`` extra is absent (CI installs it)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdtui.config.layout import StoreLayout
from kdtui.jobs.ray_executor import RayExecutor
from kdtui.kd.checkpoint import checkpoints as complete
from kdtui.store import Store
from kdtui.store.jobs import FINAL
from tests.helpers import ENV, experiment, kdtui, results, stop_worker, wait_for

# A long end-to-end path (`make test-fast` leaves it out); one test process runs both tests, so one Ray head
# serves them (pytest-xdist's loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A real local Ray head (2 CPUs, the dashboard for job submission), shared by this module's tests."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    port = free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    subprocess.run([str(ray_bin), "start", "--head", f"--port={free_port()}", "--num-cpus=2",
                    f"--dashboard-port={port}", "--include-dashboard=true", "--disable-usage-stats"], check=True,
                   capture_output=True, env=ENV)
    yield f"http://127.0.0.1:{port}"
    subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=ENV)


def test_an_experiment_runs_through_the_ray_executor(tiny_model: Path, tmp_path: Path, ray_cluster: str) -> None:
    """The same experiment through Ray's Job Submission API gives what the local worker gives; the jobs reach
    the store through the worker's Ray actor."""
    # A capture, its distillation and its eval: one job of each kind (the next test runs two at once).
    spec = tmp_path / "exp.toml"
    spec.write_text(experiment(tmp_path / "full.toml", tiny_model, ["base"], steps=4).read_text()
                    .replace('controls = ["fine-tune", "no-distil"]', "controls = []"))
    local, remote = tmp_path / "local", tmp_path / "remote"
    try:
        done = kdtui("run", str(spec), "--cpu", "--wait", "--store", str(local), "--logs", str(tmp_path / "l1"))
        assert done.returncode == 0, done.stderr
    finally:
        stop_worker(local)
    try:
        done = kdtui("run", str(spec), "--executor", "ray", "--ray-address", ray_cluster, "--cpu-slots", "2",
                     "--wait", "--store", str(remote), "--logs", str(tmp_path / "l2"))
        assert done.returncode == 0, done.stderr + (tmp_path / "l2" / "worker.log").read_text()
    finally:
        stop_worker(remote)
    ours, theirs = results(Store(remote)), results(Store(local))
    assert ours["counts"] == theirs["counts"] and ours["steps"] == theirs["steps"]
    for run, loss in theirs["losses"].items():
        assert abs(ours["losses"][run] - loss) <= 1e-4, run
    jobs = Store(remote).jobs.all()
    assert all(j.submission and j.submission.startswith(f"kdtui-{j.id}-") for j in jobs)
    log = (tmp_path / "l2" / "jobs" / f"{jobs[0].id}.log").read_text()  # Ray's log, copied back
    assert "job done" in log and "through its Ray actor" in log


def test_a_job_killed_on_ray_resumes_and_cancel_stops_one(tiny_model: Path, tmp_path: Path,
                                                          ray_cluster: str) -> None:
    """SIGKILL one distillation inside its Ray job: Ray reports it failed, the worker submits a second attempt,
    which resumes from the checkpoint. Cancel the other: the worker asks Ray to stop it, and it ends
    cancelled."""
    spec = tmp_path / "exp.toml"
    spec.write_text(experiment(tmp_path / "base.toml", tiny_model, ["base", "teacher"], steps=60).read_text()
                    .replace('controls = ["fine-tune", "no-distil"]', "controls = []")
                    + f'[executor]\nkind = "ray"\naddress = "{ray_cluster}"\n')  # the experiment picks Ray
    store_dir, logs = tmp_path / "store", tmp_path / "logs"
    store = Store(store_dir)
    try:
        started = kdtui("run", str(spec), "--cpu-slots", "2", "--store", str(store_dir), "--logs", str(logs))
        assert started.returncode == 0, started.stderr
        wait_for(lambda: (j := store.jobs.get("tiny/tiny/teacher")) is not None and j.state == "running"
                 and j.pid is not None, 300, "the teacher run to start")
        cancelled = kdtui("cancel", "tiny/tiny/teacher", "--store", str(store_dir))
        assert cancelled.returncode == 0, cancelled.stderr
        checkpoints = StoreLayout(store_dir).run_folder("tiny/tiny/base") / "checkpoints"
        wait_for(lambda: bool(complete(checkpoints)), 300, "a complete checkpoint of the base run")
        base = store.jobs.get("tiny/tiny/base")
        assert base is not None and base.pid is not None and base.submission is not None
        os.kill(base.pid, signal.SIGKILL)  # inside Ray's job: as an OOM kill on a remote node would
        wait_for(lambda: all(j.state in FINAL for j in store.jobs.all()), 400, "every job to end")
    finally:
        stop_worker(store_dir)
    base, teacher = store.jobs.get("tiny/tiny/base"), store.jobs.get("tiny/tiny/teacher")
    assert base is not None and teacher is not None
    assert [a["outcome"] for a in store.jobs.attempts(base.id)] == ["lost", "done"]
    log = (logs / "jobs" / f"{base.id}.log").read_text()
    assert ", attempt 1, pid" in log and ", attempt 2, pid" in log  # both attempts' logs, in order
    resumed = re.search(r"resuming tiny/tiny/base from step (\d+) of (\d+)", log)
    assert resumed is not None and int(resumed[1]) > 0
    total = int(resumed[2])
    assert results(store)["steps"]["tiny/tiny/base"] == (total, total)  # every step once, none lost
    assert teacher.state == "cancelled"
    assert teacher.submission is not None and RayExecutor(ray_cluster).outcome(teacher.submission) == "interrupted"
    evaluation = store.jobs.get("tiny/eval/tiny/teacher")
    assert evaluation is not None and evaluation.state == "dependency_failed"
