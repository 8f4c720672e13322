"""The job queue with real processes: experiments expanded and hashed, atomic claims, a detached daemon that
survives its terminal, retries after SIGKILL, re-adoption after a daemon restart, DependencyFailed, and GPU
placement against an injected device table."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError
from kdtui.jobs.daemon import Worker, holder, running_options
from kdtui.jobs.experiment import load_experiment
from kdtui.jobs.gpus import GpuInfo, assign, cuda_env
from kdtui.jobs.graph import JobSpec, expand
from kdtui.store import Store
from kdtui.store.liveness import process_start
from tests.helpers import ENV, REPO, experiment, kdtui, results, stop_worker, wait_for

# ------------------------------------------------------------------ specs and hashing


def test_full_fine_tuning_plans_the_eval_of_the_trained_model_not_an_adapter(tiny_model: Path,
                                                                            tmp_path: Path) -> None:
    """With ``lora = false`` distill writes model/, so its eval reads that folder as the model (it used to plan
    an adapter that never exists); with LoRA, the adapter over the student."""
    from kdtui.config.layout import StoreLayout

    root = tmp_path / "store"
    for lora in (False, True):
        path = experiment(tmp_path / f"{lora}.toml", tiny_model, ["base"])
        path.write_text(path.read_text().replace("[distill]\n", f"[distill]\nlora = {str(lora).lower()}\n"))
        spec = load_experiment(path)
        evals = {j.name: j.config for j in expand(spec, root) if j.kind == "eval"}
        trained = evals["tiny/eval/tiny/base"]
        output = StoreLayout(root.resolve()).run_folder("tiny/tiny/base") / ("adapter" if lora else "model")
        assert (trained["model"], trained["adapter"]) == \
            ((str(tiny_model.resolve()), str(output)) if lora else (str(output), None))
        assert evals["tiny/eval/tiny/no-distil"]["adapter"] is None


def test_a_grid_sweep_plans_one_valid_run_per_cell(tiny_model: Path, tmp_path: Path) -> None:
    """Two values or more per key used to fail: the cell's suffix held '=' and ','. Now each cell is a run whose
    name is valid and distinct, its settings in its config."""
    path = experiment(tmp_path / "g.toml", tiny_model, ["base"])
    path.write_text(path.read_text() + "[grid]\nlr = [1e-3, 5e-4]\nalpha = [0.5, 0.7]\n")
    spec = load_experiment(path)
    runs = {j.name: j.config for j in expand(spec, tmp_path / "store") if j.kind == "distill"
            and "fine-tune" not in j.name}
    assert sorted(runs) == ["tiny/tiny/base/alpha-0.5+lr-0.0005", "tiny/tiny/base/alpha-0.5+lr-0.001",
                            "tiny/tiny/base/alpha-0.7+lr-0.0005", "tiny/tiny/base/alpha-0.7+lr-0.001"]
    assert runs["tiny/tiny/base/alpha-0.7+lr-0.0005"]["alpha"] == 0.7
    assert runs["tiny/tiny/base/alpha-0.7+lr-0.0005"]["lr"] == 5e-4
    # four folders, one per run, and the evaluations read each run's own adapter
    layout = StoreLayout((tmp_path / "store").resolve())
    folders = {layout.run_folder(run) for run in runs}
    assert len(folders) == 4 and all(f.parent == layout.distill_runs for f in folders)
    adapters = {j.config["adapter"] for j in expand(spec, tmp_path / "store") if j.kind == "eval"
                and "/base/" in j.name}
    assert adapters == {str(f / "adapter") for f in folders}


def test_two_students_of_one_name_are_refused_in_one_line(tiny_model: Path, tmp_path: Path) -> None:
    path = experiment(tmp_path / "d.toml", tiny_model, ["base"])
    path.write_text(path.read_text().replace("[capture]", f'[[student]]\nname = "tiny"\nmodel = "{tiny_model}"\n'
                                             "[capture]", 1))
    with pytest.raises(KdtuiError, match=r"two \[\[student\]\] entries are named 'tiny'"):
        load_experiment(path)


def test_planning_an_experiment_never_imports_torch(tiny_model: Path, tmp_path: Path) -> None:
    """`kdtui run --dry-run` (and the TUI's enqueue, which expands the same way) plans paths without the 3 s
    torch import: the run folder layout lives in config/paths.py, not in the distill recipe."""
    path = experiment(tmp_path / "a.toml", tiny_model, ["base"])
    code = ("import sys\nfrom kdtui.cli.main import main\n"
            f"rc = main(['run', {str(path)!r}, '--dry-run', '--store', {str(tmp_path / 'store')!r}])\n"
            "print('TORCH', 'torch' in sys.modules, rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert "TORCH False 0" in proc.stdout, (proc.stdout, proc.stderr)


def test_a_rerun_enqueues_nothing_and_a_new_strategy_only_its_jobs(tiny_model: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    spec = load_experiment(experiment(tmp_path / "a.toml", tiny_model, ["base"]))
    first = store.jobs.enqueue(expand(spec, store.root))
    assert len(first) == 6  # capture, distill, fine-tune, 3 evals
    assert store.jobs.enqueue(expand(spec, store.root)) == []
    wider = load_experiment(experiment(tmp_path / "b.toml", tiny_model, ["base", "teacher"]))
    added = store.jobs.enqueue(expand(wider, store.root))
    names = sorted(j.name for j in store.jobs.all() if j.id in added)
    assert names == ["tiny-teacher", "tiny/eval/tiny/teacher", "tiny/tiny/teacher"]


def test_bad_experiment_files_are_one_line(tiny_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[experiment\nname = 1")
    unknown = experiment(tmp_path / "unknown.toml", tiny_model, ["base", "telepathy"])
    typo = tmp_path / "typo.toml"
    typo.write_text(experiment(tmp_path / "t.toml", tiny_model, ["base"]).read_text().replace("max_steps", "max_step"))
    executor = tmp_path / "executor.toml"
    executor.write_text(experiment(tmp_path / "e.toml", tiny_model, ["base"]).read_text()
                        + '[executor]\nkind = "slurm"\n')
    for path, message in ((broken, "not valid TOML"), (unknown, "unknown strategy 'telepathy'; choose from"),
                          (typo, "[distill] max_step: not a `kdtui distill` setting"),
                          (executor, "executor.kind: Input should be 'local' or 'ray'")):
        proc = kdtui("run", str(path), "--store", str(tmp_path / "s"), "--dry-run")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0] and str(path) in lines[0], proc.stderr


# ------------------------------------------------------------------ claims and dependencies


CLAIMER = """
import json, sys
from kdtui.store import Store
store = Store(sys.argv[1])
got = [j.id for j in store.jobs.all() if j.state == "queued" and store.jobs.claim(j.id, sys.argv[2], "h", [], "l")]
print(json.dumps(got))
"""


def test_competing_claims_give_each_job_to_one_worker(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.jobs.enqueue([JobSpec(f"job-{i:02d}", f"r{i}", "eval", {}, 0, "g") for i in range(20)])
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(store.root), f"w{n}"], stdout=subprocess.PIPE,
                              text=True, cwd=REPO, env=ENV) for n in range(4)]
    claimed = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    everything = [job for got in claimed for job in got]
    assert sorted(everything) == [f"job-{i:02d}" for i in range(20)]  # each exactly once
    assert {j.state for j in store.jobs.all()} == {"running"}


def test_four_daemons_started_by_mistake_leave_one(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.migrate()
    procs = [subprocess.Popen([sys.executable, "-m", "kdtui.cli", "worker", "run", "--cpu", "--store",
                               str(store.root), "--logs", str(tmp_path / "logs")], cwd=REPO, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        wait_for(lambda: sum(p.poll() is not None for p in procs) == 3, 60, "three of them to leave")
        left = [p for p in procs if p.poll() is not None]
        assert all(p.returncode == 2 and "a worker already runs" in p.communicate()[1] for p in left)
        assert holder(store.root) == next(p.pid for p in procs if p.poll() is None)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)


def test_a_failure_marks_its_dependants_and_retry_requeues_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.jobs.enqueue([JobSpec("a", "a", "capture", {}, 0, "g", max_attempts=2),
                        JobSpec("b", "b", "distill", {}, 0, "g", ["a"]),
                        JobSpec("c", "c", "eval", {}, 0, "g", ["b"]), JobSpec("d", "d", "eval", {}, 0, "g")])
    assert store.jobs.claim("a", "w", "h", [], "l") == 1
    assert store.jobs.finish("a", 1, "failed", 2, "boom") == "queued"  # one failure of two allowed
    assert store.jobs.finish("a", 1, "failed", 2, "boom") == "queued"  # a second report of the same end: ignored
    assert store.jobs.claim("a", "w", "h", [], "l") == 2
    assert store.jobs.finish("a", 2, "failed", 2, "boom") == "failed"
    states = {j.id: j.state for j in store.jobs.all()}
    assert states == {"a": "failed", "b": "dependency_failed", "c": "dependency_failed", "d": "queued"}
    store.jobs.retry("a")
    assert {j.id: j.state for j in store.jobs.all()} == {"a": "queued", "b": "queued", "c": "queued", "d": "queued"}
    # the attempts keep their real outcomes; the retry gives fresh ones: two more failures before it fails for good
    assert [a["outcome"] for a in store.jobs.attempts("a")] == ["failed", "failed"]
    assert store.jobs.claim("a", "w", "h", [], "l") == 3
    assert store.jobs.finish("a", 3, "failed", 2, "boom") == "queued"
    assert store.jobs.claim("a", "w", "h", [], "l") == 4
    assert store.jobs.finish("a", 4, "failed", 2, "boom") == "failed"
    with pytest.raises(ValueError, match="unknown attempt outcome"):
        store.jobs.finish("d", 1, "exploded", 1)  # type: ignore[arg-type]


def test_retry_counts_from_a_store_written_before_counted_attempts(tmp_path: Path) -> None:
    """A v10 store marked retried attempts by rewriting their outcome; migrating keeps them uncounted and
    restores the outcome."""
    store = Store(tmp_path / "store")
    store.jobs.enqueue([JobSpec("a", "a", "capture", {}, 0, "g", max_attempts=2)])
    for attempt in (1, 2):
        assert store.jobs.claim("a", "w", "h", [], "l") == attempt
        store.jobs.finish("a", attempt, "failed", 2, "boom")
    with store.write() as con:  # as the v10 retry left it
        con.execute("UPDATE jobs SET state = 'queued', counted_from = 0")
        con.execute("UPDATE job_attempts SET outcome = outcome || ' (before retry)'")
        con.execute("DELETE FROM schema_version WHERE version >= 11")  # back to v10: v11 and what came after
        con.execute("ALTER TABLE jobs DROP COLUMN counted_from")
        con.execute("DROP VIEW captures_live")  # v12
    migrated = Store(store.root)
    migrated.migrate()
    assert [a["outcome"] for a in migrated.jobs.attempts("a")] == ["failed", "failed"]
    assert migrated.jobs.get("a").counted_from == 2  # type: ignore[union-attr]
    assert migrated.jobs.claim("a", "w", "h", [], "l") == 3
    assert migrated.jobs.finish("a", 3, "failed", 2, "boom") == "queued"  # one of two fresh attempts used


# ------------------------------------------------------------------ GPUs


def test_gpu_assignment_never_shares_a_card() -> None:
    table = [GpuInfo(0, "GPU-a", 80_000, 79_000), GpuInfo(1, "GPU-b", 80_000, 79_500),
             GpuInfo(2, "GPU-c", 80_000, 20_000),  # held by a killed job's leftovers
             GpuInfo(3, "GPU-d", 80_000, 80_000)]
    first = assign(2, table, None, set())
    assert first is not None and [c.uuid for c in first] == ["GPU-a", "GPU-b"]
    assert assign(2, table, None, {"GPU-a", "GPU-b"}) is None  # only GPU-d is really free
    assert [c.uuid for c in assign(1, table, [3], set()) or []] == ["GPU-d"]
    assert cuda_env(first) == {"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert cuda_env([]) == {"CUDA_VISIBLE_DEVICES": ""}


class Recording(Worker):
    """The worker's own scheduling, recording placements instead of spawning processes."""

    placed: list[tuple[str, list[str]]]

    def start(self, job: Any, cards: list[GpuInfo]) -> None:
        from kdtui.jobs.executors import LocalAttempt

        attempt = self.store.jobs.claim(job.id, self.id, self.host, [c.uuid for c in cards], "log")
        assert attempt is not None
        self.placed.append((job.id, [c.uuid for c in cards]))
        self.running[job.id] = LocalAttempt(job.id, attempt, [c.uuid for c in cards], pid=os.getpid(),
                                            start=process_start(os.getpid()))


def test_a_busy_store_delays_the_worker_and_loses_no_job_end(tmp_path: Path) -> None:
    """An outside read-only client holds the store while a job's process ends: the pass that cannot record the
    end leaves the worker alive and the job tracked; once the client lets go, the next pass records it."""
    from kdtui.jobs.executors import LocalAttempt

    store = Store(tmp_path / "store", busy_timeout=1)
    store.jobs.enqueue([JobSpec("j1", "j1", "eval", {}, 0, "g")])
    worker = Recording(store, tmp_path / "logs", None, True, slots=1, cpu_slots=1)
    worker.placed = []
    worker.step()
    assert [job for job, _ in worker.placed] == ["j1"]
    job_process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    attempt = worker.running["j1"].attempt
    worker.running["j1"] = LocalAttempt("j1", attempt, [], pid=job_process.pid, start=process_start(job_process.pid),
                                        process=job_process)
    holder_code = ("import duckdb, sys\nc = duckdb.connect(sys.argv[1], read_only=True)\nprint('held', flush=True)\n"
                   "sys.stdin.read()")
    outside = subprocess.Popen([sys.executable, "-c", holder_code, str(store.path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert outside.stdout is not None and outside.stdout.readline().strip() == "held"
        assert job_process.stdin is not None
        job_process.stdin.close()
        assert job_process.wait(timeout=60) == 0
        worker.step()  # the end cannot be written: StoreBusy inside the pass, not out of it
        assert "j1" in worker.running
    finally:
        if outside.stdin is not None:
            outside.stdin.close()
        outside.wait(timeout=60)
    worker.step()
    assert "j1" not in worker.running
    assert {j.id: j.state for j in store.jobs.all()}["j1"] == "done"


def test_an_idle_worker_reads_the_store_only_when_it_changed(tmp_path: Path) -> None:
    """Live without polling DuckDB: while nothing changes, a pass opens no store session; a job enqueued by
    another process moves the store's files and the next step reads and starts it."""
    store = Store(tmp_path / "store")
    store.migrate()
    worker = Recording(store, tmp_path / "logs", None, True, slots=1, cpu_slots=1, idle_pass_s=1e9)
    worker.placed = []
    worker.step()
    worker.step()  # the first pass's own writes (none here) would be looked at once more
    settled = worker.passes
    for _ in range(50):
        worker.step()
    assert worker.passes == settled  # fifty steps, no store session
    outside = Store(store.root)  # another process's view of the same store
    outside.jobs.enqueue([JobSpec("j1", "j1", "eval", {}, 0, "g")])
    worker.step()
    assert worker.passes == settled + 1 and [job for job, _ in worker.placed] == ["j1"]


def test_gpu_and_cpu_jobs_have_their_own_slots(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.jobs.enqueue([JobSpec("cpu1", "cpu1", "eval", {}, 0, "g"), JobSpec("cpu2", "cpu2", "eval", {}, 0, "g"),
                        JobSpec("gpu1", "gpu1", "distill", {}, 1, "g")])
    worker = Recording(store, tmp_path / "logs", None, False, slots=1, cpu_slots=1,
                       devices=lambda: [GpuInfo(0, "GPU-0", 80_000, 80_000)])
    worker.placed = []
    worker.step()
    assert worker.placed == [("cpu1", []), ("gpu1", ["GPU-0"])]  # cpu2 waits for the CPU slot, not for the GPU


def test_a_chains_head_starts_before_a_leaf_queued_earlier(tmp_path: Path) -> None:
    """Fewer slots than ready jobs: the job more unfinished work waits on goes first (a capture before an eval
    that nothing needs), then queue order; the leaf still runs once a slot frees."""
    store = Store(tmp_path / "store")
    store.jobs.enqueue([JobSpec("leaf", "leaf", "eval", {}, 0, "g"),
                        JobSpec("ft", "ft", "distill", {}, 0, "g"),
                        JobSpec("ft-eval", "ft-eval", "eval", {}, 0, "g", ["ft"]),
                        JobSpec("cap", "cap", "capture", {}, 0, "g"),
                        JobSpec("kd", "kd", "distill", {}, 0, "g", ["cap"]),
                        JobSpec("kd-eval", "kd-eval", "eval", {}, 0, "g", ["kd"])])
    worker = Recording(store, tmp_path / "logs", None, True, slots=1, cpu_slots=1)
    worker.placed = []
    order = []
    for _ in range(6):
        worker.step()
        (job_id, _), = worker.placed[len(order):]
        order.append(job_id)
        store.jobs.finish(job_id, worker.running.pop(job_id).attempt, "done", 0)
    assert order[:3] == ["cap", "ft", "kd"]  # ft and kd (one job waits on each) in queue order
    assert sorted(order[3:]) == ["ft-eval", "kd-eval", "leaf"]


def test_the_scheduler_places_jobs_on_free_cards(tmp_path: Path) -> None:
    """The worker's own scheduling with an injected device table: 4-GPU jobs wait for four free cards."""
    store = Store(tmp_path / "store")
    store.jobs.enqueue([JobSpec("big1", "big1", "capture", {}, 4, "g"), JobSpec("one", "one", "eval", {}, 1, "g"),
                        JobSpec("big2", "big2", "capture", {}, 4, "g")])
    table = [GpuInfo(i, f"GPU-{i}", 80_000, 80_000) for i in range(4)]
    placed: list[tuple[str, list[str]]] = []
    worker = Recording(store, tmp_path / "logs", None, False, slots=3, devices=lambda: table)
    worker.placed = placed
    worker.step()
    assert placed == [("big1", ["GPU-0", "GPU-1", "GPU-2", "GPU-3"])]  # "one" and "big2" wait for cards
    worker.running.clear()  # big1 ended: the queue's order gives big2 all four cards, "one" still waits
    worker.step()
    assert placed[1:] == [("big2", ["GPU-0", "GPU-1", "GPU-2", "GPU-3"])]
    worker.running.clear()
    worker.step()
    assert placed[2:] == [("one", ["GPU-0"])]


# ------------------------------------------------------------------ the daemon, end to end


@pytest.mark.slow
def test_experiment_survives_sigkilled_job_and_daemon(tiny_model: Path, tmp_path: Path) -> None:
    """SIGKILL a distill job mid-run and the daemon mid-evaluation; a new daemon finishes the experiment, and
    the store holds exactly what an uninterrupted run produces."""
    reference, store_dir, logs = tmp_path / "reference", tmp_path / "store", tmp_path / "logs"
    # One strategy, no controls: capture, distil, evaluate, so each kind of job is interrupted or resumed once.
    spec = tmp_path / "exp.toml"
    spec.write_text(experiment(tmp_path / "full.toml", tiny_model, ["base"], steps=60).read_text()
                    .replace('controls = ["fine-tune", "no-distil"]', "controls = []"))
    done = kdtui("run", str(spec), "--cpu", "--wait", "--store", str(reference), "--logs", str(tmp_path / "rlogs"))
    stop_worker(reference)
    assert done.returncode == 0, done.stderr
    proc = kdtui("run", str(spec), "--cpu", "--store", str(store_dir), "--logs", str(logs))
    assert proc.returncode == 0, proc.stderr
    store = Store(store_dir)
    try:
        metrics = StoreLayout(store_dir).run_folder("tiny/tiny/base") / "metrics.jsonl"
        wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 5, 180, "distillation")
        job = store.jobs.get("tiny/tiny/base")
        assert job is not None and job.pid is not None
        os.killpg(job.pid, signal.SIGKILL)  # the job's process group: as an OOM kill would
        wait_for(lambda: any(a["outcome"] == "lost" for a in store.jobs.attempts(job.id)), 60, "the lost attempt")
        wait_for(lambda: (j := store.jobs.get("tiny/eval/tiny/base")) is not None and j.state == "running"
                 and j.pid is not None, 240, "an evaluation to run")
        daemon = holder(store_dir)
        assert daemon
        os.kill(daemon, signal.SIGKILL)
        wait_for(lambda: holder(store_dir) is None, 30, "the daemon to die")
        restarted = kdtui("worker", "start", "--cpu", "--store", str(store_dir), "--logs", str(logs))
        assert restarted.returncode == 0, restarted.stderr
        wait_for(lambda: all(j.state == "done" for j in store.jobs.all()), 300, "the experiment to finish")
    finally:
        stop_worker(store_dir)
    base = store.jobs.get("tiny/tiny/base")
    assert base is not None and [a["outcome"] for a in store.jobs.attempts(base.id)] == ["lost", "done"]
    ours, theirs = results(store), results(Store(reference))
    assert ours["counts"] == theirs["counts"] and all(n == items for n, items in ours["counts"].values())
    assert ours["steps"] == theirs["steps"] and all(n == steps for n, steps in ours["steps"].values())
    for run, loss in theirs["losses"].items():
        assert abs(ours["losses"][run] - loss) <= 1e-4, (run, ours["losses"][run], loss)
    log = (logs / "worker.log").read_text()
    assert "re-adopted" in log or "was lost with its worker" in log


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_killing_the_tmux_session_leaves_the_daemon_running(tiny_model: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    Store(store_dir).migrate()
    session = f"kdtui-test-{os.getpid()}"
    command = f"cd {REPO} && {sys.executable} -m kdtui.cli worker start --cpu --store {store_dir} --logs {tmp_path}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, command + "; sleep 600"], check=True, env=ENV)
    try:
        # holder() is -1 for a moment: the lock is taken, the pid not yet written
        wait_for(lambda: (holder(store_dir) or -1) > 0, 60, "the worker to start and write its pid")
        pid = holder(store_dir)
        pane = int(subprocess.run(["tmux", "display-message", "-p", "-t", session, "#{pane_pid}"], check=True,
                                  capture_output=True, text=True).stdout)
        subprocess.run(["tmux", "kill-session", "-t", session], check=True)
        # The pane's shell dies of the SIGHUP the session's end sends to everything in it: once it is gone, the
        # same signal has reached the daemon too, had the daemon stayed in the session. Then check it lives.
        wait_for(lambda: process_start(pane) is None, 60, "the pane's shell to die of its SIGHUP")
        assert holder(store_dir) == pid and process_start(pid or 0) is not None
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        stop_worker(store_dir)


def test_a_ray_cpu_reservation_below_one_is_refused_in_one_line(tmp_path: Path) -> None:
    for value, message in (("0", "0: must be 1 or more"), ("x", "'x' is not a whole number")):
        proc = kdtui("worker", "run", "--executor", "ray", "--ray-cpus-per-job", value, "--store", str(tmp_path))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr


def test_a_second_worker_start_reports_the_running_one(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    Store(store_dir).migrate()
    try:
        first = kdtui("worker", "start", "--cpu", "--store", str(store_dir), "--logs", str(tmp_path))
        second = kdtui("worker", "start", "--cpu", "--store", str(store_dir), "--logs", str(tmp_path))
        assert first.returncode == second.returncode == 0
        assert first.stdout.split("pid ")[1].split()[0] == second.stdout.split("pid ")[1].split()[0]
        assert "note:" not in second.stderr  # the same options: nothing to say
        third = kdtui("worker", "start", "--cpu", "--slots", "3", "--store", str(store_dir), "--logs", str(tmp_path))
        assert third.returncode == 0 and "was already running without --slots 3" in third.stderr, third.stderr
        assert "--restart-worker" in third.stderr  # the note names the choice
        first_pid = holder(store_dir)
        # the person chooses the new options: the worker without them stops and one with them starts
        fourth = kdtui("worker", "start", "--cpu", "--slots", "3", "--restart", "--store", str(store_dir),
                       "--logs", str(tmp_path))
        assert fourth.returncode == 0 and f"worker {first_pid} stopped and" in fourth.stderr, fourth.stderr
        new_pid = holder(store_dir)
        assert new_pid not in (None, first_pid) and running_options(new_pid or 0) == ["--slots", "3", "--cpu"]
        status = kdtui("worker", "status", "--store", str(store_dir))
        assert f"pid {holder(store_dir)}" in status.stdout
    finally:
        stop_worker(store_dir)
    with pytest.raises(KdtuiError, match="no experiment file"):
        load_experiment(tmp_path / "missing.toml")


def test_the_shipped_experiments_load_and_expand(tmp_path: Path) -> None:
    """experiments/*.toml are valid; the demo's copy inside the package is the same file."""
    assert (REPO / "experiments" / "demo.toml").read_text() == (REPO / "kdtui" / "presets" / "demo.toml").read_text()
    sizes = {}
    for name in ("study", "study-literal", "demo"):
        spec = load_experiment(REPO / "experiments" / f"{name}.toml")
        jobs = expand(spec, tmp_path)
        sizes[name] = len(jobs)
        by_id = {j.id for j in jobs}
        assert all(d in by_id for j in jobs for d in j.depends)  # every dependency is a job of the plan
    assert sizes == {"study": 15, "study-literal": 15, "demo": 9}  # 4 captures + 4 KD + fine-tune + 6 evals
    literal = load_experiment(REPO / "experiments" / "study-literal.toml")
    assert literal.capture["span"] == "all" and literal.capture["bos"] is False


@pytest.mark.slow
def test_an_experiment_with_capture_replicas_runs_them_in_parallel_and_merges(tiny_model: Path,
                                                                              tmp_path: Path) -> None:
    spec_path = tmp_path / "replicas.toml"
    spec_path.write_text(experiment(tmp_path / "base.toml", tiny_model, ["base"], steps=2).read_text()
                         .replace('controls = ["fine-tune", "no-distil"]', "controls = []")
                         .replace('mode = "answer"', 'mode = "answer"\nreplicas = 2\nexamples_per_shard = 2'))
    store_dir = tmp_path / "store"
    plan = expand(load_experiment(spec_path), store_dir)
    kinds = [(j.kind, j.name) for j in plan]
    assert kinds[:3] == [("capture", "tiny-base.r0-of-2"), ("capture", "tiny-base.r1-of-2"), ("merge", "tiny-base")]
    assert plan[3].depends == [plan[2].id]  # the distillation waits for the joined capture
    try:
        done = kdtui("run", str(spec_path), "--cpu", "--slots", "2", "--wait", "--store", str(store_dir), "--logs",
                     str(tmp_path / "logs"))
    finally:
        stop_worker(store_dir)
    assert done.returncode == 0, done.stderr
    merged = json.loads((store_dir / "captures" / "tiny-base" / "manifest.json").read_text())
    assert merged["n_examples"] == 8 and merged["replicas"] == 2 and len(merged["shards"]) == 4
    # the merge ran inside the worker (hard links and a manifest: no process of its own), logged like any job
    worker_log = (tmp_path / "logs" / "worker.log").read_text()
    assert f"ran {plan[2].id} (merge tiny-base) here, attempt 1: exit 0" in worker_log
    assert "job done" in (tmp_path / "logs" / "jobs" / f"{plan[2].id}.log").read_text()


@pytest.mark.slow
def test_a_student_on_several_gpus_trains_one_rank_per_card(tiny_model: Path, tmp_path: Path) -> None:
    """A student asking for 2 GPUs gets accelerate with 2 ranks; an experiment may pick torchrun itself, and
    such a job runs its ranks to the end through the queue (2 CPU processes, gloo)."""
    spec_text = experiment(tmp_path / "e.toml", tiny_model, ["base"], steps=4).read_text()
    multi = tmp_path / "multi.toml"
    multi.write_text(spec_text.replace('model = "' + str(tiny_model) + '"\n[capture]',
                                       'model = "' + str(tiny_model) + '"\ngpus = 2\n[capture]'))
    distill = next(j for j in expand(load_experiment(multi), tmp_path / "s") if j.kind == "distill")
    assert (distill.gpus, distill.config["launcher"], distill.config["num_processes"]) == (2, "accelerate", 2)
    ranks = tmp_path / "ranks.toml"
    ranks.write_text(spec_text.replace('controls = ["fine-tune", "no-distil"]', "controls = []")
                     .replace("[distill]\n", '[distill]\nlauncher = "torchrun"\nnum_processes = 2\n'))
    store_dir = tmp_path / "store"
    try:
        done = kdtui("run", str(ranks), "--cpu", "--wait", "--store", str(store_dir), "--logs", str(tmp_path / "l"))
    finally:
        stop_worker(store_dir)
    assert done.returncode == 0, done.stderr
    store = Store(store_dir)
    job = store.jobs.get("tiny/tiny/base")
    assert job is not None and job.state == "done"
    assert "torchrun with 2 processes" in (tmp_path / "l" / "jobs" / f"{job.id}.log").read_text()
    assert results(store)["steps"]["tiny/tiny/base"] == (4, 4)
    assert (StoreLayout(store_dir).run_folder("tiny/tiny/base") / "adapter").is_dir()


def test_one_spelling_of_a_workers_options() -> None:
    """`kdtui run`, `worker start` and the TUI's enqueue build a worker's options in one place."""
    from kdtui.jobs.daemon import worker_options
    from kdtui.jobs.experiment import ExecutorSpec

    assert worker_options() == ["--slots", "1"]
    ray = worker_options(ExecutorSpec(kind="ray", address="http://head:8265", cpus_per_job=2), slots=2, cpu=True)
    assert ray == ["--slots", "2", "--executor", "ray", "--ray-store", "actor", "--ray-cpus-per-job", "2",
                   "--ray-address", "http://head:8265", "--cpu"]
    assert worker_options(slots=1, gpus="0,1")[-2:] == ["--gpus", "0,1"]


def test_cpu_jobs_share_the_cores_among_the_slots() -> None:
    """Each CPU job gets the cores divided by the jobs that may run at once; a user's OMP_NUM_THREADS wins."""
    from kdtui.jobs.daemon import cpu_threads

    cores = os.cpu_count() or 1
    assert cpu_threads(1, {}) == {"OMP_NUM_THREADS": str(cores), "MKL_NUM_THREADS": str(cores)}
    assert cpu_threads(2 * cores, {})["OMP_NUM_THREADS"] == "1"
    assert cpu_threads(2, {"OMP_NUM_THREADS": "3"}) == {}


def test_the_zygote_forks_jobs_in_their_own_group_with_their_log_env_and_exit_code(tmp_path: Path) -> None:
    """A CPU job forked from the warm interpreter is what a fresh `kdtui` process would be: its output in its log,
    its environment, its own process group (the worker stops a job by group), and its exit code reported."""
    import signal

    from kdtui.jobs.zygote import JOB_COMM, Zygote

    store = tmp_path / "store"
    Store(store).migrate()
    zygote = Zygote(dict(os.environ), tmp_path / "zygote.log")
    try:
        quick = zygote.spawn(["sql", "SELECT 41 + 1 AS answer", "--store", str(store)],
                             dict(os.environ, COLUMNS="100"), tmp_path / "quick.log")
        wait_for(lambda: quick in zygote.exits, 120, "the quick job's exit")
        assert zygote.exits[quick] == 0 and "42" in (tmp_path / "quick.log").read_text()
        bad = zygote.spawn(["sql", "SELEC 1", "--store", str(store)], dict(os.environ), tmp_path / "bad.log")
        wait_for(lambda: bad in zygote.exits, 60, "the bad job's exit")
        assert zygote.exits[bad] == 2 and "SQL does not parse" in (tmp_path / "bad.log").read_text()
        slow = zygote.spawn(["sql", "SELECT count(*) FROM range(100000000000::BIGINT)", "--timeout", "300",
                             "--store", str(store)], dict(os.environ), tmp_path / "slow.log")
        assert os.getpgid(slow) == slow  # its own process group from the moment its pid is known
        wait_for(lambda: Path(f"/proc/{slow}/comm").read_bytes().strip() == JOB_COMM, 30, "the job's name")
        os.killpg(slow, signal.SIGKILL)
        wait_for(lambda: slow in zygote.exits, 60, "the killed job's exit")
        assert zygote.exits[slow] == -signal.SIGKILL
    finally:
        zygote.close()
    assert not zygote.running()
