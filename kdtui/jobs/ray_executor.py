"""Jobs on a Ray cluster through Ray's Job Submission API (optional extra ``kdtui[ray]``).

Each attempt is one Ray job: ``submission_id`` ``kdtui-<job>-<attempt>``, its GPUs as
``entrypoint_num_gpus`` (Ray places it), kdtui's ids in ``metadata``, and the same ``kdtui job exec``
entrypoint the local worker runs, with this interpreter. kdtui's store stays the source of truth (Ray
forgets jobs when its head restarts): the worker polls each attempt's status and copies its log into
``logs/jobs/<job>.log``; a cancel is ``stop_job``. Token authentication (on by default in recent Ray):
the cluster's token (see :func:`ray_token`) goes in the ``Authorization`` header of every request.

Results: by default (``store_access="actor"``) a job reaches the store through a Ray actor on the
worker's node (:mod:`kdtui.jobs.ray_store`), so the DuckDB file is only ever opened there; with
``"shared"`` jobs open it themselves over shared storage. Either way the store folder's files (captures,
adapters, logs) must be on storage every node sees.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kdtui.errors import KdtuiError, first_line
from kdtui.jobs.executors import Attempt, Ended, earlier_attempts
from kdtui.jobs.gpus import GpuInfo
from kdtui.jobs.ray_store import ENV as STORE_ENV
from kdtui.store.jobs import JobRow, Outcome

TERMINAL: dict[str, Outcome] = {"SUCCEEDED": "done", "FAILED": "lost", "STOPPED": "interrupted"}
POLL_S = 2.0  # a Ray status request per running job: every pass would cost a core's fifth on a small head
LOG_COPY_S = 3.0


@dataclass
class RayAttempt(Attempt):
    """One Ray job (submission) of an attempt; its log is copied from Ray after the earlier attempts' log."""

    submission: str
    log_path: str | None = None
    log_before: bytes = b""
    log_copied: float = 0.0
    polled: float = 0.0

    def placement(self) -> tuple[int | None, float | None, str | None]:
        return None, None, self.submission

    def describe(self) -> str:
        return f"submission {self.submission}"


class RayExecutor:
    """Submit, poll, stop and read the logs of kdtui jobs on a Ray cluster (an :class:`Executor`)."""

    places_gpus = True  # entrypoint_num_gpus: the cluster places a job's GPUs

    def __init__(self, address: str, store_root: Path | None = None, store_access: str = "actor",
                 cpus_per_job: int = 1, logs: Path | None = None) -> None:
        self.store_root, self.logs = store_root, logs
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError:
            raise KdtuiError("the ray executor needs Ray: pip install -e '.[ray]' (or use the local executor)") \
                from None
        token = ray_token()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        target = address if address != "auto" else os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265")
        try:
            self.client = JobSubmissionClient(target, headers=headers)
        except Exception as exc:  # connection refused, bad address, auth: one line
            raise KdtuiError(f"cannot reach the Ray cluster at {target} ({first_line(exc)[:200]}); start it with "
                             "`ray start --head` or pass --ray-address http://HEAD:8265") from None
        self.address = target
        self.cpus = cpus_per_job
        if store_access not in ("actor", "shared"):
            raise KdtuiError(f"unknown --ray-store {store_access!r}; use actor or shared")
        self.store_actor: str | None = None
        if store_access == "actor" and store_root is not None:
            from kdtui.jobs.ray_store import start_service

            self.store_actor = start_service(store_root)

    def launch(self, job: JobRow, attempt: int, cards: list[GpuInfo], log_path: Path) -> RayAttempt:
        assert self.store_root is not None and self.logs is not None, "a worker's executor knows its store"
        submission = self.submit(job.id, attempt, job.gpus, job.grp, self.store_root, self.logs)
        return RayAttempt(job.id, attempt, [], submission=submission, log_path=str(log_path),
                          log_before=earlier_attempts(str(log_path), attempt))

    def adopt(self, job: JobRow) -> RayAttempt | None:
        if not job.submission or self.outcome(job.submission) is not None:
            return None
        return RayAttempt(job.id, job.attempts, [], submission=job.submission, log_path=job.log_path,
                          log_before=earlier_attempts(job.log_path, job.attempts))

    def poll(self, run: Attempt) -> Ended | None:
        assert isinstance(run, RayAttempt)
        if time.monotonic() - run.polled < POLL_S:
            return None
        run.polled = time.monotonic()
        outcome = self.outcome(run.submission)
        if run.log_path and (outcome is not None or time.monotonic() - run.log_copied > LOG_COPY_S):
            # for `kdtui logs` and the Jobs screen
            Path(run.log_path).write_bytes(run.log_before + self.logs_of(run.submission).encode())
            run.log_copied = time.monotonic()
        return None if outcome is None else Ended(outcome, None, f"its Ray job ended: {outcome}")

    def stop(self, run: Attempt, hard: bool) -> None:
        assert isinstance(run, RayAttempt)
        if not hard:  # Ray sends SIGTERM, then kills after its own grace
            self.stop_submission(run.submission)

    def release(self, run: Attempt) -> None:
        pass

    def submit(self, job_id: str, attempt: int, gpus: int, group: str, store: Path, logs: Path) -> str:
        # unique on the cluster, which outlives stores and keeps old submissions
        submission = f"kdtui-{job_id}-{attempt}-{uuid.uuid4().hex[:8]}"
        entrypoint = shlex.join([sys.executable, "-m", "kdtui.cli", "job", "exec", job_id, "--attempt", str(attempt),
                                 "--store", str(store.resolve()), "--logs", str(logs.resolve())])
        env = {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HF_HOME", "HF_HUB_OFFLINE",
                                                            "HF_DATASETS_OFFLINE", "KDTUI_BUSY_TIMEOUT",
                                                            "KDTUI_JOB_KINDS")}
        if self.store_actor:
            env[STORE_ENV] = self.store_actor
        # as many threads as CPUs Ray reserved for the job (what Ray does for its own tasks): jobs packed on
        # one node then share its cores instead of each spawning a thread per core
        env |= {"OMP_NUM_THREADS": str(self.cpus), "MKL_NUM_THREADS": str(self.cpus)}
        self.client.submit_job(entrypoint=entrypoint, submission_id=submission,
                               entrypoint_num_gpus=gpus or None, entrypoint_num_cpus=self.cpus,
                               metadata={"kdtui_job": job_id, "attempt": str(attempt), "experiment": group},
                               runtime_env={"env_vars": env | {"PYTHONUNBUFFERED": "1"}})
        return submission

    def outcome(self, submission: str) -> Outcome | None:
        """None while the attempt runs; else done, lost (failed, e.g. killed) or interrupted (stopped)."""
        try:
            status = str(self.client.get_job_status(submission)).rsplit(".", 1)[-1]
        except Exception:  # the head forgot it (restarted): the attempt is lost
            return "lost"
        return TERMINAL.get(status)

    def stop_submission(self, submission: str) -> None:
        with contextlib.suppress(Exception):  # already over
            self.client.stop_job(submission)

    def logs_of(self, submission: str) -> str:
        try:
            return str(self.client.get_job_logs(submission))
        except Exception:
            return ""


def ray_token() -> str | None:
    """The cluster's token: $KDTUI_RAY_TOKEN, $RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token
    (where `ray start` writes it when token authentication is on, the default in recent Ray)."""
    for name in ("KDTUI_RAY_TOKEN", "RAY_AUTH_TOKEN"):
        if os.environ.get(name):
            return os.environ[name].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    return path.read_text().strip() if path.is_file() else None


def make_executor(kind: str, address: str | None, store_root: Path, logs: Path, store_access: str = "actor",
                  cpus_per_job: int = 1) -> RayExecutor | None:
    """None for the local executor (the worker makes its own), else a remote one."""
    if kind == "local":
        return None
    if kind == "ray":
        return RayExecutor(address or "auto", store_root, store_access, cpus_per_job, logs)
    raise KdtuiError(f"unknown executor {kind!r}; use local or ray")
