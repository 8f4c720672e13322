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

The daemon schedules; where an attempt runs is an executor's business (:mod:`kdtui.jobs.executors`: local
process groups, or a Ray cluster), and what it runs is its kind's (:mod:`kdtui.jobs.kinds`).
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
from pathlib import Path
from types import FrameType
from typing import IO, Any, NamedTuple

from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError
from kdtui.jobs.executors import Attempt, Ended, Executor, LocalAttempt, LocalExecutor
from kdtui.jobs.gpus import GpuInfo, assign, nvml_devices
from kdtui.jobs.kinds import runs_inline
from kdtui.store import Store, StoreBusy
from kdtui.store.jobs import FINAL, JobRow
from kdtui.store.liveness import process_start

BEAT_S = 5.0
# A scheduling pass reads the store when its files changed or an attempt ended, and at least this often
# (cards freed by processes outside kdtui are no store change).
IDLE_PASS_S = 5.0
GRACE_S = 60.0


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


class Worker:
    """The scheduling loop of one daemon."""

    def __init__(self, store: Store, logs: Path, gpus: list[int] | None, cpu: bool, slots: int,
                 poll: float = 0.5, devices: Any = nvml_devices, cpu_slots: int | None = None,
                 executor: Executor | None = None, idle_pass_s: float = IDLE_PASS_S) -> None:
        # Two slot groups: jobs holding cards (at most `slots` at once, and never more cards than free) and
        # jobs needing none (`cpu_slots`): a 4-GPU capture and CPU evaluations do not wait for each other.
        self.store, self.logs, self.slots, self.poll = store, logs, slots, poll
        self.cpu_slots = slots if cpu_slots is None else cpu_slots
        # jobs run as local processes unless another executor (Ray) is given; the local one also keeps any
        # process an earlier worker started here
        self.local = LocalExecutor(store.root, logs, cpu_threads(self.cpu_slots, os.environ))
        self.executor: Executor = executor or self.local
        self.allowed = None if gpus is None else list(gpus)
        self.cpu = cpu
        self.devices = devices  # injected in tests: a function returning the GPU table
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.host}:{self.pid}"
        self.running: dict[str, Attempt] = {}
        self.ended: dict[str, Ended] = {}  # attempts seen ending whose end is not recorded yet
        self.passes = 0  # scheduling passes that read the store (tests read it)
        self.idle_pass_s = idle_pass_s
        self._seen: tuple[int, ...] | None = None  # the store's change stamp the last pass began at
        self._passed = 0.0
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
        if self.cpu:  # every job will be forked from the zygote: its imports start now, beside the first pass
            self.local.warm()
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
        """One pass: reap ended jobs, act on cancels, start what can start. Nothing changed (the store's files,
        an attempt's end) and the last pass recent: no store session at all."""
        self._poll_running()
        stamp = self.store.change_stamp()
        if not self.ended and stamp == self._seen and time.monotonic() - self._passed < self.idle_pass_s:
            return
        # the stamp from before the pass: this pass's own writes make the next step look once more, and a
        # write by another process during the pass is never taken as seen
        self._seen, self._passed = stamp, time.monotonic()
        self.passes += 1
        try:
            jobs = self.store.jobs.all()
            by_id = {j.id: j for j in jobs}
            self.reap(by_id)
            self.cancels(by_id)
            self.schedule(jobs, by_id)
        except StoreBusy:
            return  # an outside client holds the store: the rest of this pass waits for the next one

    def adopt(self) -> None:
        """Take over running jobs of an earlier daemon that still run; the others are lost attempts."""
        for job in self.store.jobs.all():
            if job.state != "running":
                continue
            run = self.executor.adopt(job) or (self.local.adopt(job) if self.executor is not self.local else None)
            if run is not None:
                self.running[job.id] = run
                self._say(f"re-adopted {job.id} ({job.name}), {run.describe()}")
            else:
                state = self.store.jobs.finish(job.id, job.attempts, "lost", None, "its process died with the worker")
                self._say(f"{job.id} ({job.name}) was lost with its worker: {state}")

    def _executor(self, run: Attempt) -> Executor:
        return self.local if isinstance(run, LocalAttempt) else self.executor

    def _poll_running(self) -> None:
        """Ask the executors which attempts ended (no store access); kept until their end is recorded."""
        for job_id, run in self.running.items():
            if job_id not in self.ended and (ended := self._executor(run).poll(run)) is not None:
                self.ended[job_id] = ended

    def reap(self, by_id: dict[str, JobRow]) -> None:
        """Record the ends ``_poll_running`` found."""
        for job_id, ended in list(self.ended.items()):
            run = self.running.get(job_id)
            if run is None:  # no longer tracked (dropped by a test's hand): nothing to record
                del self.ended[job_id]
                continue
            # The job records its own end; this only covers one that ended without a word. Recorded before it
            # is forgotten: a busy store raises here and the next pass records it.
            state = self.store.jobs.finish(job_id, run.attempt, ended.outcome, ended.exit_code, ended.note)
            del self.running[job_id], self.ended[job_id]
            self._executor(run).release(run)
            job = by_id.get(job_id)
            self._say(f"{job_id} ({job.name if job else '?'}) ended ({ended.note}): {state}")

    def cancels(self, by_id: dict[str, JobRow]) -> None:
        for job_id, run in self.running.items():
            job = by_id.get(job_id)
            if job is None or not job.cancel_requested:
                continue
            if run.term_sent is None:
                self._executor(run).stop(run, hard=False)
                run.term_sent = time.monotonic()
            elif time.monotonic() - run.term_sent > GRACE_S:
                self._executor(run).stop(run, hard=True)

    def schedule(self, jobs: list[JobRow], by_id: dict[str, JobRow]) -> None:
        if self.stopping:
            return
        paused = self.store.jobs.paused_groups() if any(j.state == "queued" for j in jobs) else set()
        devices: list[GpuInfo] | None = None
        for job in _critical_first(jobs):
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
            if self.executor.places_gpus:
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
        try:
            run = self.executor.launch(job, attempt, cards, log_path)
        except Exception as exc:  # it never started (the cluster refused it): a lost attempt, retried like any
            self.store.jobs.finish(job.id, attempt, "lost", None, f"it could not start: {str(exc)[:300]}")
            self._say(f"{job.id} ({job.name}): could not start: {str(exc).splitlines()[0][:200]}")
            return
        self.running[job.id] = run  # tracked before anything else can fail: its end is never missed
        self.store.jobs.started(job.id, attempt, *run.placement())
        self._say(f"started {job.id} ({job.kind} {job.name}), attempt {attempt}, {run.describe()}, "
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
            self._executor(run).stop(run, hard=False)
        deadline = time.monotonic() + GRACE_S
        while self.running and time.monotonic() < deadline:
            self._poll_running()
            self.reap({})
            time.sleep(0.2)
        for run in self.running.values():
            self._executor(run).stop(run, hard=True)
        self.local.close()
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
    replaced: int | None = None  # the worker stopped to start this one with the options asked for

    def ignored_note(self) -> str | None:
        """One line naming the options the running worker lacks and the choice the person has; None when it has
        them."""
        if not self.ignored:
            return None
        return (f"worker {self.pid} was already running without {', '.join(self.ignored)}; to apply them, restart "
                f"it ({RESTART_NOTE}): add --restart-worker, or `kdtui worker start --restart` with them")

    def replaced_note(self) -> str | None:
        if self.replaced is None:
            return None
        return f"worker {self.replaced} stopped and {self.pid} started with the options asked for ({RESTART_NOTE})"


# What a restart does to work in flight, said wherever one is offered.
RESTART_NOTE = "its running jobs stop at their next step and resume under the new worker"


def stop_worker(root: Path, wait_s: float | None = None) -> int | None:
    """SIGTERM the store's worker (its jobs stop at their next step and are queued again); the pid asked, None
    when none ran. With ``wait_s``, wait until it has let go of the store's worker lock."""
    pid = holder(root)
    if pid is None or pid < 0:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_s is not None:
        deadline = time.monotonic() + wait_s
        while holder(root) == pid:
            if time.monotonic() > deadline:
                raise KdtuiError(f"worker {pid} did not stop within {wait_s:.0f} s (its jobs are still stopping); "
                                 "`kdtui worker status` shows them, and `kdtui worker start` starts a new one later")
            time.sleep(0.1)
    return pid


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


def start_detached(root: Path, logs: Path, args: list[str], restart: bool = False) -> WorkerStart:
    """Launch ``kdtui worker run`` in its own session, detached from this terminal, unless one runs.

    A running worker is kept and the options it lacks are reported, unless ``restart``: then a worker without
    them is stopped (its jobs stop at their next step and are queued again) and one with them is started.
    Several starts at once launch several processes, but only one gets the worker lock (the others
    exit at once): every caller reports the pid of the one that holds it.
    """
    running = holder(root)
    if running is not None:
        ignored = ignored_options(args, running_options(running))
        if not (restart and ignored):
            return WorkerStart(running, False, ignored)
        stop_worker(root, wait_s=GRACE_S + 30)  # its own grace for its jobs, and time to leave
        return start_detached(root, logs, args)._replace(replaced=running)
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


def _critical_first(jobs: list[JobRow]) -> list[JobRow]:
    """Jobs that more unfinished work waits on first (then in queue order): on a machine with fewer slots than
    ready jobs, a chain's head (a capture its distillation and evaluation need) does not wait behind a leaf."""
    waiting: dict[str, set[str]] = {j.id: set() for j in jobs}
    open_jobs = [j for j in jobs if j.state not in FINAL]
    for job in open_jobs:
        for dep in job.depends:
            if dep in waiting:
                waiting[dep].add(job.id)
    memo: dict[str, set[str]] = {}

    def below(job_id: str) -> set[str]:
        if job_id not in memo:
            memo[job_id] = set()  # a cycle (refused at submission) cannot recurse forever
            found = set(waiting[job_id])
            for child in waiting[job_id]:
                found |= below(child)
            memo[job_id] = found
        return memo[job_id]

    order = {j.id: i for i, j in enumerate(jobs)}
    return sorted(jobs, key=lambda j: (-len(below(j.id)), order[j.id]))
