"""``kdtui run`` an experiment through the job queue; ``jobs``, ``cancel``, ``retry``, ``logs``, ``pause``,
``resume``; ``worker start|stop|status|run``; and ``job exec`` (what the worker runs for one job)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from kdtui.cli.common import Parents, add_command, logs, open_recipe_store, open_store
from kdtui.errors import KdtuiError


def _worker_args(args: argparse.Namespace) -> list[str]:
    from types import SimpleNamespace

    from kdtui.jobs.daemon import worker_options

    executor = SimpleNamespace(kind=args.executor, store=args.ray_store, cpus_per_job=args.ray_cpus_per_job,
                               address=args.ray_address)
    return worker_options(executor, args.slots, args.cpu_slots, args.cpu, args.gpus)


def _say_ignored(note: str | None) -> None:
    """Options a running worker does not have are said, never silently dropped."""
    if note:
        print(f"note: {note}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from kdtui.cli.console import print_table
    from kdtui.jobs.experiment import load_experiment
    from kdtui.jobs.submit import plan, submit

    spec = load_experiment(args.experiment)
    # the experiment's [executor] table, unless the command line says otherwise
    args.executor = args.executor or spec.executor.kind
    args.ray_address = args.ray_address or spec.executor.address
    args.ray_store = args.ray_store or spec.executor.store
    args.ray_cpus_per_job = args.ray_cpus_per_job or spec.executor.cpus_per_job
    store = open_store(args, create=True)
    if args.dry_run:
        jobs = plan(spec, store)
        known = {j.id for j in store.jobs.all()} if store.path.exists() else set()
        print_table(["job", "kind", "name", "after", "gpus", ""],
                    [(j.id, j.kind, j.name, ",".join(j.depends), j.gpus, "known" if j.id in known else "new")
                     for j in jobs])
        print(f"{len(jobs)} jobs, {sum(j.id not in known for j in jobs)} new (dry run: nothing enqueued)")
        return 0
    submitted = submit(spec, store, logs(args), None if args.no_worker else _worker_args(args),
                       restart=args.restart_worker)
    print(f"experiment {spec.name!r}: {len(submitted.jobs)} jobs, {len(submitted.added)} new in the queue",
          file=sys.stderr)
    if submitted.worker is not None:
        print(f"worker pid {submitted.worker.pid} (detached; `kdtui worker status`, `kdtui jobs`, "
              "`kdtui logs JOB -f`)", file=sys.stderr)
        _say_ignored(submitted.ignored_note() or submitted.replaced_note())
    if args.wait:
        return _wait(store, spec.name)
    return 0


def _wait(store: Any, group: str) -> int:
    """Print progress until every job of the group has ended; exit 1 if any did not end done."""
    from kdtui.store.jobs import FINAL

    last = ""
    while True:
        jobs = store.jobs.all(group)
        counts: dict[str, int] = {}
        for job in jobs:
            counts[job.state] = counts.get(job.state, 0) + 1
        line = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        if line != last:
            print(f"{group}: {line}", file=sys.stderr, flush=True)
            last = line
        if all(job.state in FINAL for job in jobs):
            return 0 if all(job.state == "done" for job in jobs) else 1
        time.sleep(1.0)


def cmd_jobs(args: argparse.Namespace) -> int:
    from kdtui.cli.console import print_table

    store = open_store(args)
    jobs = store.jobs.all(args.group)
    if args.json:
        print(json.dumps([{k: v for k, v in vars(j).items() if k != "config"} for j in jobs], indent=1, default=str))
        return 0
    print_table(["job", "group", "kind", "name", "state", "attempts", "progress", "error"],
                [(j.id, j.grp, j.kind, j.name, j.state, f"{j.attempts}/{j.max_attempts}",
                  "" if j.progress is None else f"{j.progress:.0%}", (j.error or "")[:60]) for j in jobs])
    return 0


def _job(store: Any, ref: str) -> Any:
    job = store.jobs.get(ref)
    if job is None:
        raise KdtuiError(f"no job {ref!r}; `kdtui jobs` lists them (by id or run name)")
    return job


def cmd_cancel(args: argparse.Namespace) -> int:
    store = open_store(args)
    job = _job(store, args.job)
    before = job.state
    state = store.jobs.cancel(job.id)
    if before not in ("queued", "running"):
        print(f"job {job.id} ({job.name}) already ended ({before}); nothing to cancel")
    elif state == "cancelled":
        print(f"job {job.id} ({job.name}): cancelled")
    else:
        print(f"job {job.id} ({job.name}): asked to stop at its next step")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    store = open_store(args)
    job = _job(store, args.job)
    before = store.jobs.retry(job.id, rerun_done=args.rerun)
    if before == "done" and not args.rerun:
        raise KdtuiError(f"job {job.id} ({job.name}) is done; add --rerun to run it again")
    if before in ("queued", "running"):
        print(f"job {job.id} ({job.name}) is {before} already; nothing to retry")
    else:
        print(f"job {job.id} ({job.name}) queued again (it was {before})")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from kdtui.store.jobs import FINAL

    store = open_store(args)
    job = _job(store, args.job)
    path = Path(job.log_path) if job.log_path else logs(args) / "jobs" / f"{job.id}.log"
    if not path.is_file():
        raise KdtuiError(f"job {job.id} has no log yet (it is {job.state})")
    with path.open("rb") as fh:
        while True:
            chunk = fh.read()
            if chunk:
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
            elif not args.follow or _job(store, job.id).state in FINAL:
                return 0
            else:
                time.sleep(0.5)


def cmd_pause(args: argparse.Namespace) -> int:
    paused = args.command == "pause"
    open_store(args).jobs.set_paused(args.group, paused)
    print(f"group {args.group!r} " + ("paused: running jobs finish, no new ones start" if paused else "resumed"))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from kdtui.jobs.daemon import Worker, holder, start_detached, stop_worker

    if args.action == "run":
        gpus = None if args.gpus in (None, "all") else [int(g) for g in args.gpus.split(",") if g.strip()]
        from kdtui.jobs.ray_executor import make_executor

        store = open_store(args, create=True)
        # a missing Ray or cluster: one line, here
        executor = make_executor(args.executor or "local", args.ray_address, store.root, logs(args),
                                 args.ray_store or "actor", args.ray_cpus_per_job or 1)
        Worker(store, logs(args), gpus, args.cpu, args.slots, cpu_slots=args.cpu_slots,
               executor=executor).run()
        return 0
    store = open_store(args, create=args.action == "start")
    if args.action == "start":
        start = start_detached(store.root, logs(args), _worker_args(args), restart=args.restart)
        how = "started" if start.started else "already running, with the options it was started with"
        print(f"worker running, pid {start.pid} ({how}; log: {logs(args) / 'worker.log'})")
        _say_ignored(start.ignored_note() or start.replaced_note())
        return 0
    if args.action == "stop":
        stopped = stop_worker(store.root)
        print("no worker runs for this store" if stopped is None else
              f"worker {stopped} asked to stop: its jobs stop at their next step and are queued again")
        return 0
    pid = holder(store.root)
    running = [j for j in store.jobs.all() if j.state == "running"] if store.path.exists() else []
    print(f"worker: {'pid ' + str(pid) if pid else 'not running'}; {len(running)} jobs running"
          + "".join(f"\n  {j.id} {j.kind} {j.name} pid {j.pid} gpus {j.gpu_ids}" for j in running))
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    from kdtui.jobs.runner import run_job

    if args.action != "exec":
        raise KdtuiError("usage: kdtui job exec JOB --attempt N (the worker runs this)")
    # inside a Ray job the store is the worker's, through its actor; else the folder's DuckDB file
    return run_job(open_recipe_store(args), args.job, args.attempt, logs(args))


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be 1 or more")
    return value


def _worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpus", default=None, help="GPUs to use: 0,1,2,3 or all (default: all)")
    parser.add_argument("--cpu", action="store_true", help="CPU only: jobs asking for GPUs wait")
    parser.add_argument("--slots", type=int, default=1, help="jobs on GPUs at once (with --cpu: jobs at once; "
                        "default: 1)")
    parser.add_argument("--cpu-slots", type=int, default=None, help="jobs needing no GPU at once, beside the GPU "
                        "jobs (default: as --slots)")
    parser.add_argument("--executor", choices=["local", "ray"], default=None,
                        help="local: processes on this machine; ray: jobs on a Ray cluster (kdtui[ray]); default: "
                        "the experiment's [executor] kind, else local")
    parser.add_argument("--ray-store", choices=["actor", "shared"], default=None,
                        help="how Ray jobs reach the store: actor (default: through a Ray actor on this node, the "
                        "DuckDB file never leaves it) or shared (each job opens it over shared storage)")
    parser.add_argument("--ray-cpus-per-job", type=_at_least_one, default=None,
                        help="CPUs Ray reserves for each job, and the threads it may use (default: 1)")
    parser.add_argument("--ray-address", default=None, help="Ray dashboard address, e.g. http://head:8265 "
                        "(default: $RAY_ADDRESS or http://127.0.0.1:8265)")


def register(sub: Any, parents: Parents) -> None:
    run = add_command(sub, "run", cmd_run, parents)
    run.add_argument("experiment", help="experiment TOML (see experiments/)")
    run.add_argument("--dry-run", action="store_true", help="print the job plan, enqueue nothing")
    run.add_argument("--no-worker", action="store_true", help="only enqueue; do not start a worker")
    run.add_argument("--wait", action="store_true", help="wait until every job of the experiment has ended")
    run.add_argument("--restart-worker", action="store_true", help="if a worker runs without these options, "
                     "restart it with them (its running jobs stop at their next step and resume); without this "
                     "flag it is kept and the options it lacks are named")
    _worker_flags(run)
    jobs = add_command(sub, "jobs", cmd_jobs, parents)
    jobs.add_argument("--json", action="store_true", help="JSON instead of a table")
    jobs.add_argument("--group", default=None, help="one experiment only")
    for name, handler in (("cancel", cmd_cancel), ("retry", cmd_retry)):
        command = add_command(sub, name, handler, parents)
        command.add_argument("job", help="job id or run name")
        if name == "retry":
            command.add_argument("--rerun", action="store_true", help="also run a job that is done again")
    logs_cmd = add_command(sub, "logs", cmd_logs, parents)
    logs_cmd.add_argument("job", help="job id or run name")
    logs_cmd.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    for name in ("pause", "resume"):
        command = add_command(sub, name, cmd_pause, parents)
        command.add_argument("group", help="experiment name")
    worker = add_command(sub, "worker", cmd_worker, parents)
    worker.add_argument("action", choices=["start", "stop", "status", "run"])
    worker.add_argument("--restart", action="store_true", help="start: if a worker runs without these options, "
                        "restart it with them (its running jobs stop at their next step and resume)")
    _worker_flags(worker)
    job = add_command(sub, "job", cmd_job, parents)
    job.add_argument("action", choices=["exec"])
    job.add_argument("job")
    job.add_argument("--attempt", type=int, required=True)
