"""The job queue's tables: jobs, their attempts, workers and paused groups.

Every state change is one short write session; a claim is a conditional update (``state =
'queued'``) under the store's exclusive lock, so of several workers exactly one gets a job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

if TYPE_CHECKING:
    from kdtui.store.store import Store


class NewJob(Protocol):
    """What enqueuing needs of a job (``kdtui.jobs.graph.JobSpec`` has it)."""

    id: str
    name: str
    kind: str
    group: str
    config: dict[str, Any]
    depends: list[str]
    gpus: int
    max_attempts: int

# A job's state, as pueue's task states: queued and running, or one of the final states.
JobState = Literal["queued", "running", "done", "failed", "cancelled", "dependency_failed"]
JOB_STATES: tuple[JobState, ...] = get_args(JobState)
FINAL: tuple[JobState, ...] = ("done", "failed", "cancelled", "dependency_failed")
# How one attempt ended: done; interrupted (stopped on request: queued again, not a failure); failed (the job
# said so); lost (its process or submission vanished without a word). Failed and lost count toward max_attempts.
Outcome = Literal["done", "interrupted", "failed", "lost"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


@dataclass
class JobRow:
    """A job as the queue holds it."""

    id: str
    name: str
    kind: str
    grp: str
    config: dict[str, Any]
    depends: list[str]
    gpus: int
    state: JobState
    attempts: int
    max_attempts: int
    worker: str | None = None
    pid: int | None = None
    pid_start: float | None = None
    gpu_ids: list[str] = field(default_factory=list)
    log_path: str | None = None
    error: str | None = None
    exit_code: int | None = None
    progress: float | None = None
    cancel_requested: bool = False
    started_at: Any = None  # a datetime: when the current (or last) attempt began
    finished_at: Any = None  # a datetime: when the job ended (None while it is queued or running)
    submission: str | None = None  # the executor's id of the current attempt (Ray submission id)
    counted_from: int = 0  # failures of attempts up to this one no longer count (a retry gives fresh attempts)


def _row(record: dict[str, Any]) -> JobRow:
    for key in ("config", "depends", "gpu_ids"):
        value = record.get(key)
        record[key] = json.loads(value) if isinstance(value, str) else (value or ([] if key != "config" else {}))
    names = set(JobRow.__dataclass_fields__)
    return JobRow(**{k: v for k, v in record.items() if k in names})


class JobsRepo:
    """Enqueue, claim, finish and inspect jobs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ reading

    def all(self, group: str | None = None) -> list[JobRow]:
        where, params = ("WHERE grp = ?", [group]) if group else ("", [])
        return [_row(r) for r in self.store.query(f"SELECT * FROM jobs {where} ORDER BY created_at, id",
                                                  params).records()]

    def get(self, job_id: str) -> JobRow | None:
        records = self.store.query("SELECT * FROM jobs WHERE id = ? OR name = ?", [job_id, job_id]).records()
        return _row(records[0]) if records else None

    def paused_groups(self) -> set[str]:
        return {r["name"] for r in self.store.query("SELECT name FROM job_groups WHERE paused").records()}

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM job_attempts WHERE job_id = ? ORDER BY attempt", [job_id]).records()

    # ------------------------------------------------------------------ writing

    def enqueue(self, jobs: Sequence[NewJob]) -> list[str]:
        """Insert the jobs not yet known (by id); returns the ids added."""
        with self.store.write() as con:
            known = {r[0] for r in con.execute("SELECT id FROM jobs").fetchall()}
            added = [j for j in jobs if j.id not in known]
            if added:  # one INSERT from an Arrow table: executemany runs a statement per job (1,000 took 1.1 s)
                import pyarrow as pa

                con.register("incoming", pa.table({
                    "id": [j.id for j in added], "name": [j.name for j in added], "kind": [j.kind for j in added],
                    "grp": [j.group for j in added], "config": [json.dumps(j.config) for j in added],
                    "depends": [json.dumps(j.depends) for j in added],
                    "gpus": pa.array([j.gpus for j in added], type=pa.int32()),
                    "max_attempts": pa.array([j.max_attempts for j in added], type=pa.int32())}))
                con.execute("INSERT INTO jobs (id, name, kind, grp, config, depends, gpus, state, max_attempts) "
                            "SELECT id, name, kind, grp, config, depends, gpus, 'queued', max_attempts FROM incoming")
            for group in {j.group for j in added}:
                con.execute("INSERT INTO job_groups (name) VALUES (?) ON CONFLICT DO NOTHING", [group])
        return [j.id for j in added]

    def claim(self, job_id: str, worker: str, host: str, gpu_ids: list[str], log_path: str) -> int | None:
        """Take a queued job for ``worker``; returns the attempt number, or None when another worker took it."""
        with self.store.write() as con:
            row = con.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = ?, gpu_ids = ?, "
                              "log_path = ?, pid = NULL, pid_start = NULL, started_at = current_timestamp, "
                              "updated_at = current_timestamp, error = NULL WHERE id = ? AND state = 'queued' "
                              "AND NOT cancel_requested RETURNING attempts",
                              [worker, json.dumps(gpu_ids), log_path, job_id]).fetchone()
            if row is None:
                return None
            con.execute("INSERT INTO job_attempts (job_id, attempt, worker, host, gpu_ids, log_path) "
                        "VALUES (?, ?, ?, ?, ?, ?)", [job_id, row[0], worker, host, json.dumps(gpu_ids), log_path])
            return int(row[0])

    def started(self, job_id: str, attempt: int, pid: int | None, pid_start: float | None,
                submission: str | None = None) -> None:
        """Where an attempt runs: its process (pid and start time) and/or its executor submission."""
        with self.store.write() as con:
            if pid is not None:
                con.execute("UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ? AND attempts = ?",
                            [pid, pid_start, job_id, attempt])
                con.execute("UPDATE job_attempts SET pid = ? WHERE job_id = ? AND attempt = ?",
                            [pid, job_id, attempt])
            if submission is not None:
                con.execute("UPDATE jobs SET submission = ? WHERE id = ? AND attempts = ?",
                            [submission, job_id, attempt])

    def finish(self, job_id: str, attempt: int, outcome: Outcome, exit_code: int | None,
               error: str | None = None) -> str:
        """Close attempt ``attempt`` of a running job, once (a second report of the same end is ignored):
        ``done``; ``interrupted`` (queued again, not counted as a failure); ``failed`` or ``lost`` (queued
        again while failures < max_attempts, else failed for good, and everything that needs it too)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown attempt outcome {outcome!r}; one of {OUTCOMES}")
        with self.store.write() as con:
            row = con.execute("SELECT state, attempts, max_attempts, cancel_requested, counted_from FROM jobs "
                              "WHERE id = ?", [job_id]).fetchone()
            if row is None or row[0] != "running" or row[1] != attempt:
                return "gone" if row is None else str(row[0])
            _, _, most, cancelled, counted_from = row
            con.execute("UPDATE job_attempts SET finished_at = current_timestamp, exit_code = ?, outcome = ? "
                        "WHERE job_id = ? AND attempt = ?", [exit_code, outcome, job_id, attempt])
            counted = con.execute("SELECT count(*) FROM job_attempts WHERE job_id = ? AND attempt > ? AND outcome "
                                  "IN ('failed', 'lost')", [job_id, counted_from]).fetchone()
            failures = int(counted[0]) if counted else 0
            if cancelled and outcome != "done":
                state = "cancelled"
            elif outcome == "done":
                state = "done"
            elif outcome == "interrupted":
                state = "queued"
            else:
                state = "queued" if failures < most else "failed"
            con.execute("UPDATE jobs SET state = ?, exit_code = ?, error = ?, pid = NULL, finished_at = "
                        "current_timestamp, updated_at = current_timestamp WHERE id = ?",
                        [state, exit_code, error, job_id])
            if state == "failed":
                self._fail_dependants(con, job_id)
            return state

    @staticmethod
    def _move_dependants(con: Any, job_id: str, source: str, target: str, failed: bool) -> None:
        """Move every job in state ``source`` that (transitively) needs ``job_id`` to ``target``."""
        frontier = [job_id]
        while frontier:
            current = frontier.pop()
            for (child,) in con.execute("SELECT id FROM jobs WHERE state = ? AND list_contains("
                                        "CAST(depends AS VARCHAR[]), ?)", [source, current]).fetchall():
                con.execute("UPDATE jobs SET state = ?, error = ?, updated_at = current_timestamp WHERE id = ?",
                            [target, f"needs {current}, which failed" if failed else None, child])
                frontier.append(child)

    def _fail_dependants(self, con: Any, job_id: str) -> None:
        """Every job that (transitively) needs a failed one can never run: DependencyFailed."""
        self._move_dependants(con, job_id, "queued", "dependency_failed", failed=True)

    def dependency_failed(self, job_id: str, reason: str) -> None:
        """A queued job whose dependency can never be done (failed, cancelled) cannot run either."""
        with self.store.write() as con:
            con.execute("UPDATE jobs SET state = 'dependency_failed', error = ?, updated_at = current_timestamp "
                        "WHERE id = ? AND state = 'queued'", [reason, job_id])
            self._fail_dependants(con, job_id)

    def progress(self, job_id: str, fraction: float) -> None:
        with self.store.write(timeout=2.0) as con:
            con.execute("UPDATE jobs SET progress = ?, updated_at = current_timestamp WHERE id = ?",
                        [fraction, job_id])

    def cancel(self, job_id: str) -> str:
        """Ask a job to stop: a queued one is cancelled at once, a running one by its worker; a job that has
        ended is left as it is. Returns the job's state after the call."""
        with self.store.write() as con:
            con.execute("UPDATE jobs SET cancel_requested = TRUE, updated_at = current_timestamp WHERE id = ? AND "
                        "state IN ('queued', 'running')", [job_id])
            con.execute("UPDATE jobs SET state = 'cancelled' WHERE id = ? AND state = 'queued'", [job_id])
            row = con.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()
        return str(row[0]) if row else "gone"

    def retry(self, job_id: str, rerun_done: bool = False) -> str:
        """Queue a job that ended without success again with fresh attempts (and its dependants that could
        not run); a ``done`` one only with ``rerun_done``. Returns the state it had: queued or running
        jobs, and done ones without ``rerun_done``, are left as they are."""
        retryable = ("failed", "cancelled", "dependency_failed", "done") if rerun_done else \
            ("failed", "cancelled", "dependency_failed")
        with self.store.write() as con:
            row = con.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()
            before = str(row[0]) if row else "gone"
            if before not in retryable:
                return before
            # fresh attempts: earlier failures stay on record as they were, and no longer count
            con.execute("UPDATE jobs SET state = 'queued', cancel_requested = FALSE, error = NULL, "
                        "counted_from = attempts, updated_at = current_timestamp WHERE id = ?", [job_id])
            self._move_dependants(con, job_id, "dependency_failed", "queued", failed=False)
        return before

    def stage_seconds(self, group: str) -> list[tuple[str, str, float]]:
        """(kind, name, seconds over all its attempts) of each finished job of a group, in the order they ran."""
        rows = self.store.query(
            "SELECT j.kind, j.name, min(a.started_at) AS first, sum(epoch(a.finished_at) - epoch(a.started_at)) "
            "AS seconds FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.grp = ? AND a.finished_at IS NOT "
            "NULL GROUP BY 1, 2 ORDER BY first", [group]).records()
        return [(r["kind"], r["name"], float(r["seconds"])) for r in rows]

    def set_paused(self, group: str, paused: bool) -> None:
        with self.store.write() as con:
            con.execute("INSERT INTO job_groups (name, paused) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                        "paused = excluded.paused", [group, paused])

    # ------------------------------------------------------------------ workers

    def worker_beat(self, worker: str, host: str, pid: int, pid_start: float, gpus: list[str], slots: int,
                    state: str, now: float) -> None:
        with self.store.write(timeout=5.0) as con:
            con.execute("INSERT INTO workers (id, host, pid, pid_start, gpus, slots, heartbeat, state) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat, "
                        "state = excluded.state",
                        [worker, host, pid, pid_start, json.dumps(gpus), slots, now, state])

    def workers(self) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM workers ORDER BY started_at DESC").records()
