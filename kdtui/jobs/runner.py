"""One job, in its own process: ``kdtui job exec JOB --attempt N`` runs the job's recipe and records how
the attempt ended. The recipes resume by themselves (capture shards, distill checkpoints, eval
predictions), so a retried job continues where the last attempt stopped.

Exit codes: 0 done; 3 interrupted (SIGTERM: it stopped at its next step and is queued again); 2 failed.
What each kind runs is in :mod:`kdtui.jobs.kinds`.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from kdtui.errors import KdtuiError, first_line
from kdtui.jobs.kinds import job_kind
from kdtui.store import StoreAccess

EXIT_DONE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 3
PROGRESS_EVERY_S = 2.0


def _progress(store: StoreAccess, job_id: str) -> Any:
    last = [0.0]

    def report(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and fraction < 1:
            return
        last[0] = now
        with contextlib.suppress(Exception):  # progress is decoration: a busy store never stops the job
            store.jobs.progress(job_id, fraction)

    return report


def run_job(store: StoreAccess, job_id: str, attempt: int, logs: Path) -> int:
    """Run a claimed job's recipe; returns the process exit code after recording the attempt's end."""
    job = store.jobs.get(job_id)
    if job is None:
        raise KdtuiError(f"no job {job_id!r} in the store; `kdtui jobs` lists them")
    report = _progress(store, job_id)
    from kdtui.store.liveness import process_start

    # where this attempt really runs (on Ray, not the process the worker started): for liveness and kills
    store.jobs.started(job_id, attempt, os.getpid(), process_start(os.getpid()))
    print(f"job {job.id} ({job.kind} {job.name}), attempt {attempt}, pid {os.getpid()}, store {store.path} "
          f"(opened on {store.opened_on})", flush=True)
    try:
        result = job_kind(job.kind).run(store, job.config, logs, report)
    except KeyboardInterrupt:
        store.jobs.finish(job_id, attempt, "interrupted", EXIT_INTERRUPTED, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # every failure is recorded; the worker decides on a retry
        message = first_line(exc)[:500]
        print(f"job failed: {message}", flush=True)
        store.jobs.finish(job_id, attempt, "failed", EXIT_FAILED, message)
        return EXIT_FAILED
    if result.state == "stopped":
        print(f"job stopped: {result.reason}", flush=True)
        store.jobs.finish(job_id, attempt, "interrupted", EXIT_INTERRUPTED, result.reason or "stopped on request")
        return EXIT_INTERRUPTED
    store.jobs.finish(job_id, attempt, "done", EXIT_DONE)
    print("job done", flush=True)
    return EXIT_DONE
