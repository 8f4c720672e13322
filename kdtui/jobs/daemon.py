"""The worker daemon: one per store, fully detached, the only process that starts jobs.

``kdtui worker start`` launches ``kdtui worker run`` in a new session (``setsid``: no controlling
terminal, stdin from /dev/null), so a closed SSH session or a killed tmux session leaves it and its
jobs running. It holds ``store/worker.lock`` (flock) for its whole life: a second daemon started by
mistake sees the lock and leaves. Each job runs as ``kdtui job exec`` in its own process group, with
its cards in ``CUDA_VISIBLE_DEVICES`` (by UUID), its output in ``logs/jobs/<job>.log``.

Recovery: a job records its own end; one whose process died without a word (SIGKILL, OOM) is found
dead and queued again, up to its max attempts, resuming from its own checkpoints. A restarted daemon
re-adopts jobs whose process is still alive (same pid *and* same process start time) instead of
killing them. SIGTERM to the daemon forwards SIGTERM to every job (each stops at its next step, and is
queued again), waits for them, then exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, NamedTuple

from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError
from kdtui.jobs.gpus import GpuInfo, assign, cuda_env, nvml_devices
from kdtui.jobs.kinds import runs_inline
from kdtui.store import Store, StoreBusy
from kdtui.store.jobs import FINAL, JobRow, Outcome
from kdtui.store.liveness import alive, process_start

BEAT_S = 5.0
GRACE_S = 60.0
REMOTE_POLL_S = 2.0  # a Ray status request per running job: every pass would cost a core's fifth on a small head


def cpu_threads(slots: int, environ: Any) -> dict[str, str]:
    """Math threads for a job on the CPU: the machine's cores shared by the jobs that may run at once, so two jobs
    on two cores do not run four busy-waiting thread pools; an OMP_NUM_THREADS the user set wins."""
    if "OMP_NUM_THREADS" in environ:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // max(1, slots)))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def holder(root: Path) -> int | None:
    """The pid of the daemon holding the store's worker lock, or None when none runs."""
    path = StoreLayout(root).worker_lock
    if not path.is_file():
        return None
    with path.open("r+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = path.read_text().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def earlier_attempts(log_path: Path | str | None, attempt: int) -> bytes:
    """A job log up to where ``attempt`` begins (the runner's first line names it): what a remote attempt's
    copied log goes after."""
    if log_path is None or not Path(log_path).is_file():
        return b""
    text = Path(log_path).read_bytes()
    mark = text.find(f", attempt {attempt}, pid ".encode())
    return text if mark < 0 else text[:text.rfind(b"\n", 0, mark) + 1]


@dataclass
class Running:
    job_id: str
    attempt: int
    pid: int
    start: float | None
    cards: list[str]
    process: subprocess.Popen[bytes] | None = None  # None: adopted from an earlier daemon
    term_sent: float | None = None
    log: IO[bytes] | None = field(default=None, repr=False)
    submission: str | None = None  # on a remote executor (Ray): its submission id
    log_path: str | None = None
    log_copied: float = 0.0
    polled: float = 0.0  # when the remote executor was last asked about it
    log_before: bytes = b""  # earlier attempts' log: a remote attempt's log is copied after it, as local ones append


class Worker:
    """The scheduling loop of one daemon."""

    def __init__(self, store: Store, logs: Path, gpus: list[int] | None, cpu: bool, slots: int,
                 poll: float = 0.5, devices: Any = nvml_devices, cpu_slots: int | None = None,
                 executor: Any = None) -> None:
        # Two slot groups: jobs holding cards (at most `slots` at once, and never more cards than free) and
        # jobs needing none (`cpu_slots`): a 4-GPU capture and CPU evaluations do not wait for each other.
        self.store, self.logs, self.slots, self.poll = store, logs, slots, poll
        self.cpu_slots = slots if cpu_slots is None else cpu_slots
        self.executor = executor  # None: jobs are local processes; else e.g. a RayExecutor that places them
        self.allowed = None if gpus is None else list(gpus)
        self.cpu = cpu
        self.devices = devices  # injected in tests: a function returning the GPU table
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.host}:{self.pid}"
        self.running: dict[str, Running] = {}
        self.stopping = False
        self._lock: IO[str] | None = None

    # ------------------------------------------------------------------ lifecycle

    def acquire(self) -> None:
        self.store.root.mkdir(parents=True, exist_ok=True)
        fh = StoreLayout(self.store.root).worker_lock.open("a+")
        deadline = time.monotonic() + 2.0  # `holder()` of a starting command may hold it for an instant
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    fh.close()
                    raise KdtuiError(f"a worker already runs for {self.store.root} (pid "
                                     f"{holder(self.store.root)}); `kdtui worker status` shows it") from None
                time.sleep(0.05)
        fh.seek(0)
        fh.truncate()
        fh.write(str(self.pid))
        fh.flush()
        self._lock = fh

    def run(self) -> None:
        """Schedule until SIGTERM; then stop the jobs gracefully and leave."""
        self.acquire()
        self.store.ensure_schema(purpose="write")
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        (self.logs / "jobs").mkdir(parents=True, exist_ok=True)
        self._say(f"worker {self.id} started: {self.slots} GPU-job slots, {self.cpu_slots} CPU-job slots, "
                  f"{'CPU only' if self.cpu else 'GPUs ' + str(self.allowed or 'all')}")
        while not self.stopping:  # a busy store delays the start; it does not end the worker
            try:
                self.adopt()
                break
            except StoreBusy:
                time.sleep(self.poll)
        last_beat = 0.0
        while not self.stopping:
            if time.monotonic() - last_beat > BEAT_S:
                self._beat("running")
                last_beat = time.monotonic()
            try:
                self.step()
            except Exception:  # a bug in one pass must not take the worker and its jobs' bookkeeping with it
                self._say("a scheduling pass failed; the worker goes on:\n" + traceback.format_exc().rstrip())
            time.sleep(self.poll)
        self.shutdown()

    def _on_term(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def _say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    def _beat(self, state: str) -> None:
        with contextlib.suppress(Exception):  # a busy store skips a beat
            self.store.jobs.worker_beat(self.id, self.host, self.pid, process_start(self.pid) or 0.0,
                                        [str(g) for g in (self.allowed or [])], self.slots, state, time.time())

    # --------------------------------------------------------------- the loop

    def step(self) -> None:
        """One pass: reap ended jobs, act on cancels, start what can start."""
        try:
            jobs = self.store.jobs.all()
            by_id = {j.id: j for j in jobs}
            self.reap(by_id)
            self.cancels(by_id)
            self.schedule(jobs, by_id)
        except StoreBusy:
            return  # an outside client holds the store: the rest of this pass waits for the next one

    def adopt(self) -> None:
        """Take over running jobs of an earlier daemon whose processes live; the others are lost attempts."""
        for job in self.store.jobs.all():
            if job.state != "running":
                continue
            if self.executor is not None and job.submission:
                if self.executor.outcome(job.submission) is None:
                    self.running[job.id] = Running(job.id, job.attempts, 0, None, [], submission=job.submission,
                                                   log_path=job.log_path,
                                                   log_before=earlier_attempts(job.log_path, job.attempts))
                    self._say(f"re-adopted {job.id} ({job.name}), submission {job.submission}")
                    continue
            elif alive(job.pid, job.pid_start):
                assert job.pid is not None
                self.running[job.id] = Running(job.id, job.attempts, job.pid, job.pid_start, job.gpu_ids)
                self._say(f"re-adopted {job.id} ({job.name}), pid {job.pid}")
            else:
                state = self.store.jobs.finish(job.id, job.attempts, "lost", None, "its process died with the worker")
                self._say(f"{job.id} ({job.name}) was lost with its worker: {state}")

    def reap(self, by_id: dict[str, JobRow]) -> None:
        for job_id, run in list(self.running.items()):
            if run.submission is not None:
                self._reap_remote(job_id, run, by_id)
                continue
            code = run.process.poll() if run.process is not None else None
            ended = code is not None if run.process is not None else not alive(run.pid, run.start)
            if not ended:
                continue
            # The job records its own end; this only covers a process that died without a word. Recorded
            # before it is forgotten: a busy store raises here and the next pass records it.
            outcome: Outcome = "lost"
            if code == 0 or code == 3:
                outcome = "done" if code == 0 else "interrupted"
            state = self.store.jobs.finish(job_id, run.attempt, outcome, code, f"its process ended (exit {code})")
            del self.running[job_id]
            if run.log is not None:
                run.log.close()
            job = by_id.get(job_id)
            self._say(f"{job_id} ({job.name if job else '?'}) ended, exit {code}: {state}")

    def _reap_remote(self, job_id: str, run: Running, by_id: dict[str, JobRow]) -> None:
        assert self.executor is not None and run.submission is not None
        if time.monotonic() - run.polled < REMOTE_POLL_S:
            return
        run.polled = time.monotonic()
        outcome = self.executor.outcome(run.submission)
        if run.log_path and (outcome is not None or time.monotonic() - run.log_copied > 3.0):
            # for `kdtui logs` and the Jobs screen
            Path(run.log_path).write_bytes(run.log_before + self.executor.logs(run.submission).encode())
            run.log_copied = time.monotonic()
        if outcome is None:
            return
        state = self.store.jobs.finish(job_id, run.attempt, outcome, None, f"its Ray job ended: {outcome}")
        del self.running[job_id]  # only once recorded (a busy store raises above: the next pass records it)
        job = by_id.get(job_id)
        self._say(f"{job_id} ({job.name if job else '?'}) ended on Ray ({outcome}): {state}")

    def cancels(self, by_id: dict[str, JobRow]) -> None:
        for job_id, run in self.running.items():
            job = by_id.get(job_id)
            if job is None or not job.cancel_requested:
                continue
            if run.submission is not None:
                if run.term_sent is None and self.executor is not None:
                    self.executor.stop(run.submission)  # Ray sends SIGTERM, then kills after its own grace
                    run.term_sent = time.monotonic()
                continue
            if run.term_sent is None:
                self._signal(run, signal.SIGTERM)
                run.term_sent = time.monotonic()
            elif time.monotonic() - run.term_sent > GRACE_S:
                self._signal(run, signal.SIGKILL)

    def _signal(self, run: Running, sig: int) -> None:
        if run.submission is not None:
            if self.executor is not None and sig == signal.SIGTERM:
                self.executor.stop(run.submission)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, sig)  # the whole group: dataloader children too

    def schedule(self, jobs: list[JobRow], by_id: dict[str, JobRow]) -> None:
        if self.stopping:
            return
        paused = self.store.jobs.paused_groups() if any(j.state == "queued" for j in jobs) else set()
        devices: list[GpuInfo] | None = None
        for job in jobs:
            if job.state != "queued" or job.grp in paused or job.cancel_requested:
                continue
            on_cards = sum(bool(r.cards) for r in self.running.values())
            full = on_cards >= self.slots if job.gpus else len(self.running) - on_cards >= self.cpu_slots
            if full and not runs_inline(job.kind):
                continue  # its slot group is full (a merge takes no slot: it runs here, in a moment)
            states = {d: by_id[d].state if d in by_id else "missing" for d in job.depends}
            blocked = [d for d, s in states.items() if (s in FINAL and s != "done") or s == "missing"]
            if blocked:
                self.store.jobs.dependency_failed(job.id, f"needs {blocked[0]}, which is {states[blocked[0]]}")
                continue
            if any(s != "done" for s in states.values()):
                continue  # waits for its dependencies
            cards: list[GpuInfo] | None
            if self.executor is not None:
                cards = []  # the cluster places the job's GPUs (entrypoint_num_gpus)
            elif job.gpus and self.cpu:
                continue
            elif job.gpus:
                devices = self.devices() if devices is None else devices
                busy = {c for r in self.running.values() for c in r.cards}
                cards = assign(job.gpus, devices or [], self.allowed, busy)
                if cards is None:
                    continue
            else:
                cards = []
            self.start(job, cards)

    def start(self, job: JobRow, cards: list[GpuInfo]) -> None:
        log_path = self.logs / "jobs" / f"{job.id}.log"
        attempt = self.store.jobs.claim(job.id, self.id, self.host, [c.uuid for c in cards], str(log_path))
        if attempt is None:
            return  # another worker took it
        if runs_inline(job.kind):
            self.run_inline(job, attempt, log_path)
            return
        if self.executor is not None:
            try:
                submission = self.executor.submit(job.id, attempt, job.gpus, job.grp, self.store.root, self.logs)
            except Exception as exc:  # the cluster refused it: a lost attempt, retried like any other
                self.store.jobs.finish(job.id, attempt, "lost", None, f"submission failed: {str(exc)[:300]}")
                self._say(f"{job.id} ({job.name}): submission failed: {str(exc).splitlines()[0][:200]}")
                return
            self.store.jobs.started(job.id, attempt, None, None, submission)
            self.running[job.id] = Running(job.id, attempt, 0, None, [], submission=submission,
                                           log_path=str(log_path), log_before=earlier_attempts(log_path, attempt))
            self._say(f"submitted {job.id} ({job.kind} {job.name}), attempt {attempt}, as {submission}")
            return
        log = log_path.open("ab")
        env = dict(os.environ) | cuda_env(cards) | {"PYTHONUNBUFFERED": "1"}
        if not cards:
            env |= cpu_threads(self.cpu_slots, os.environ)
        process = subprocess.Popen(
            [sys.executable, "-m", "kdtui.cli", "job", "exec", job.id, "--attempt", str(attempt),
             "--store", str(self.store.root), "--logs", str(self.logs)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        start = process_start(process.pid)
        self.running[job.id] = Running(job.id, attempt, process.pid, start, [c.uuid for c in cards], process, log=log)
        self.store.jobs.started(job.id, attempt, process.pid, start or 0.0)
        self._say(f"started {job.id} ({job.kind} {job.name}), attempt {attempt}, pid {process.pid}, "
                  f"cards {json.dumps([c.index for c in cards])}")

    def run_inline(self, job: JobRow, attempt: int, log_path: Path) -> None:
        """A bookkeeping job (a merge: hard links and a manifest) runs here, in a moment, rather than paying a
        process start or a Ray submission; it records its end like any job (a daemon killed meanwhile leaves
        it running with a dead pid: lost, and run again)."""
        from kdtui.jobs.runner import run_job

        with log_path.open("a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
            code = run_job(self.store, job.id, attempt, self.logs)
        self._say(f"ran {job.id} ({job.kind} {job.name}) here, attempt {attempt}: exit {code}")

    def shutdown(self) -> None:
        """SIGTERM every job (each stops at its next step and is queued again), wait, then leave."""
        self._say(f"stopping: {len(self.running)} jobs asked to stop at their next step")
        for run in self.running.values():
            self._signal(run, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while self.running and time.monotonic() < deadline:
            self.reap({})
            time.sleep(0.2)
        for run in self.running.values():
            self._signal(run, signal.SIGKILL)
        self._beat("stopped")
        self._say("worker stopped")


def worker_options(executor: Any = None, slots: int = 1, cpu_slots: int | None = None, cpu: bool = False,
                   gpus: str | None = None) -> list[str]:
    """`kdtui worker run` options: slot counts, the executor of an experiment's ``[executor]`` table (or the
    command line's), and the devices. The one spelling for `kdtui run`, `worker start` and the TUI."""
    out = ["--slots", str(slots)] + ([] if cpu_slots is None else ["--cpu-slots", str(cpu_slots)])
    kind = getattr(executor, "kind", None) or "local"
    if kind != "local":
        out += ["--executor", kind, "--ray-store", getattr(executor, "store", None) or "actor",
                "--ray-cpus-per-job", str(getattr(executor, "cpus_per_job", None) or 1)]
        address = getattr(executor, "address", None)
        out += ["--ray-address", address] if address else []
    if cpu:
        out.append("--cpu")
    elif gpus:
        out += ["--gpus", gpus]
    return out


class WorkerStart(NamedTuple):
    pid: int
    started: bool  # False: a worker was already running (possibly started by someone else at the same moment)
    ignored: list[str] = []  # options asked for that the running worker lacks (a NamedTuple default: never mutated)


def running_options(pid: int) -> list[str] | None:
    """The options a running worker was started with (``--slots 1 --cpu``, no --store/--logs), from its command
    line; None where it cannot be read."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return None
    if "run" not in argv:
        return None
    options, rest = [], argv[argv.index("run") + 1:]
    skip = False
    for arg in rest:
        if skip:
            skip = False
        elif arg in ("--store", "--logs"):
            skip = True
        elif arg:
            options.append(arg)
    return options


def ignored_options(wanted: list[str], running: list[str] | None) -> list[str]:
    """The options a caller asked for that the running worker does not have (each flag with its value)."""
    if running is None:
        return []
    pairs, i = [], 0
    while i < len(wanted):
        takes_value = i + 1 < len(wanted) and not wanted[i + 1].startswith("--")
        pairs.append(wanted[i:i + 2] if takes_value else wanted[i:i + 1])
        i += 2 if takes_value else 1
    text = " ".join(running)
    return [" ".join(pair) for pair in pairs if " ".join(pair) not in text]


def start_detached(root: Path, logs: Path, args: list[str]) -> WorkerStart:
    """Launch ``kdtui worker run`` in its own session, detached from this terminal, unless one runs.

    Several starts at once launch several processes, but only one gets the worker lock (the others
    exit at once): every caller reports the pid of the one that holds it.
    """
    running = holder(root)
    if running is not None:
        return WorkerStart(running, False, ignored_options(args, running_options(running)))
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / "worker.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "kdtui.cli", "worker", "run", "--store", str(root),
                                "--logs", str(logs), *args],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 30
    while (pid := holder(root)) is None or pid < 0:
        if process.poll() is not None and holder(root) is None:
            raise KdtuiError(f"the worker could not start (exit {process.returncode}); see {logs / 'worker.log'}")
        if time.monotonic() > deadline:
            raise KdtuiError(f"the worker did not start within 30 s; see {logs / 'worker.log'}")
        time.sleep(0.05)
    if pid != process.pid:
        # Another start won the lock. Ours would leave at its own lock attempt, but if it had not got there
        # yet it could take the lock once the winner stops: it must not outlive this call.
        process.terminate()
        process.wait(timeout=30)
    return WorkerStart(pid, pid == process.pid,
                       [] if pid == process.pid else ignored_options(args, running_options(pid)))
