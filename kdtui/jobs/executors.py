"""Where a job's attempt runs, behind one protocol: the worker daemon schedules, an executor executes.

:class:`LocalExecutor` runs ``kdtui job exec`` as a process group on this machine, on the cards the
worker assigned; :class:`kdtui.jobs.ray_executor.RayExecutor` submits it to a Ray cluster, which places
its GPUs. Each keeps its own typed record of a running attempt (:class:`LocalAttempt`,
:class:`kdtui.jobs.ray_executor.RayAttempt`); the daemon only asks an executor to launch, adopt, poll and
stop, so it never branches on where a job runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from kdtui.jobs.gpus import GpuInfo, cuda_env
from kdtui.jobs.zygote import Zygote
from kdtui.store.jobs import JobRow, Outcome
from kdtui.store.liveness import alive, process_start

# How long a forked job that is gone may wait for the zygote's word of its exit code before it counts as lost.
EXIT_NOTICE_S = 5.0
# The process exit codes of `kdtui job exec` (kdtui.jobs.runner) a worker reads an outcome from.
EXIT_OUTCOMES: dict[int, Outcome] = {0: "done", 3: "interrupted"}


def earlier_attempts(log_path: Path | str | None, attempt: int) -> bytes:
    """A job log up to where ``attempt`` begins (the runner's first line names it): what a remote attempt's
    copied log goes after."""
    if log_path is None or not Path(log_path).is_file():
        return b""
    text = Path(log_path).read_bytes()
    mark = text.find(f", attempt {attempt}, pid ".encode())
    return text if mark < 0 else text[:text.rfind(b"\n", 0, mark) + 1]


@dataclass
class Attempt:
    """What every running attempt has, wherever it runs."""

    job_id: str
    attempt: int
    cards: list[str]  # GPU UUIDs the worker assigned (empty where the executor places GPUs itself)
    term_sent: float | None = field(default=None, kw_only=True)  # when it was asked to stop (a cancel)

    def placement(self) -> tuple[int | None, float | None, str | None]:
        """(pid, process start, submission id), as the job's row records where it runs."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Ended:
    """How an attempt ended, as its executor saw it (the job itself may have recorded it already)."""

    outcome: Outcome
    exit_code: int | None
    note: str


class Executor(Protocol):
    """Launches, finds again, polls and stops attempts of jobs."""

    # True: the executor places a job's GPUs (Ray); False: the worker assigns free cards before launching
    places_gpus: bool

    def launch(self, job: JobRow, attempt: int, cards: list[GpuInfo], log_path: Path) -> Attempt:
        """Start the attempt; an exception means it never started (the worker records a lost attempt)."""
        ...

    def adopt(self, job: JobRow) -> Attempt | None:
        """A running job of an earlier worker that still runs here, or None (it is lost)."""
        ...

    def poll(self, run: Attempt) -> Ended | None:
        """None while the attempt runs."""
        ...

    def stop(self, run: Attempt, hard: bool) -> None:
        """Ask it to stop at its next step (SIGTERM), or end it now (``hard``)."""
        ...

    def release(self, run: Attempt) -> None:
        """Free what the executor held for an attempt that ended."""
        ...


@dataclass
class LocalAttempt(Attempt):
    """A ``kdtui job exec`` process group on this machine."""

    pid: int
    start: float | None  # the process's start time: with the pid, it names one process
    process: subprocess.Popen[bytes] | None = None  # None: forked by the zygote, or adopted from an earlier worker
    log: IO[bytes] | None = field(default=None, repr=False)
    forked: bool = False  # a child of this worker's zygote, which reports its exit code
    gone_since: float | None = None  # when its process was first seen gone without an exit code

    def placement(self) -> tuple[int | None, float | None, str | None]:
        return self.pid, self.start, None

    def describe(self) -> str:
        return f"pid {self.pid}"


class LocalExecutor:
    """Jobs as process groups on this machine, each seeing exactly its cards."""

    places_gpus = False

    def __init__(self, store_root: Path, logs: Path, cpu_threads: dict[str, str], fork: bool = True) -> None:
        self.store_root, self.logs = store_root, logs
        self.cpu_threads = cpu_threads  # math threads for a job without cards (the cores shared among the slots)
        # jobs without cards are forked from a warm interpreter (kdtui.jobs.zygote): ~3 s of imports saved each
        self.zygote = Zygote(dict(os.environ) | cpu_threads | {"PYTHONUNBUFFERED": "1"},
                             logs / "zygote.log") if fork else None

    def warm(self) -> None:
        """Start the zygote's imports now, before the first job without cards asks for it."""
        if self.zygote is not None:
            self.zygote.start()

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()

    def launch(self, job: JobRow, attempt: int, cards: list[GpuInfo], log_path: Path) -> LocalAttempt:
        env = dict(os.environ) | cuda_env(cards) | {"PYTHONUNBUFFERED": "1"}
        if not cards:
            env |= self.cpu_threads
        argv = ["job", "exec", job.id, "--attempt", str(attempt), "--store", str(self.store_root), "--logs",
                str(self.logs)]
        if not cards and self.zygote is not None:
            try:
                pid = self.zygote.spawn(argv, env, log_path)
                return LocalAttempt(job.id, attempt, [], pid=pid, start=process_start(pid), forked=True)
            except OSError as exc:  # no zygote: a fresh interpreter, as for a job on cards
                with log_path.open("a", encoding="utf-8") as note:
                    note.write(f"(started as a fresh process: {exc})\n")
        log = log_path.open("ab")
        try:
            process = subprocess.Popen([sys.executable, "-m", "kdtui.cli", *argv], stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except OSError:
            log.close()
            raise
        return LocalAttempt(job.id, attempt, [c.uuid for c in cards], pid=process.pid,
                            start=process_start(process.pid), process=process, log=log)

    def adopt(self, job: JobRow) -> LocalAttempt | None:
        if job.submission or not alive(job.pid, job.pid_start):
            return None
        assert job.pid is not None
        return LocalAttempt(job.id, job.attempts, job.gpu_ids, pid=job.pid, start=job.pid_start)

    def poll(self, run: Attempt) -> Ended | None:
        assert isinstance(run, LocalAttempt)
        if run.process is not None:
            code = run.process.poll()
            if code is None:
                return None
        elif run.forked and self.zygote is not None and run.pid in self.zygote.exits:
            code = self.zygote.exits.pop(run.pid)
        elif alive(run.pid, run.start):
            return None
        elif run.forked and self.zygote is not None and self.zygote.running() and \
                (run.gone_since is None or time.monotonic() - run.gone_since < EXIT_NOTICE_S):
            run.gone_since = run.gone_since or time.monotonic()
            return None  # reaped a moment ago: the zygote's notice of its exit code is on its way
        else:
            code = None  # an adopted process: its exit code went to the worker that started it
        # The job records its own end; this only covers a process that died without a word.
        return Ended(EXIT_OUTCOMES.get(code, "lost") if code is not None else "lost", code,
                     f"its process ended (exit {code})")

    def stop(self, run: Attempt, hard: bool) -> None:
        assert isinstance(run, LocalAttempt)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL if hard else signal.SIGTERM)  # the group: dataloader children too

    def release(self, run: Attempt) -> None:
        assert isinstance(run, LocalAttempt)
        if run.log is not None:
            run.log.close()

