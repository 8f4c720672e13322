"""The job queue under load: 1000 queued jobs in a real store.

    python benchmarks/queue_bench.py [--jobs 1000] [--claims 100]

Prints the time to enqueue them (one transaction), a claim's latency (target <= 50 ms per claim; a
claim is a conditional update plus its attempt row in one locked write session), a re-enqueue of
the same jobs (all known: nothing added), and the scheduler's overhead: one pass of the worker's
loop over the whole queue (read every job, check dependencies and slots), per job.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kdtui.jobs.daemon import Worker
from kdtui.jobs.graph import JobSpec
from kdtui.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        store.migrate()
        # a chain every 10 jobs, so the scheduler checks real dependencies
        jobs = [JobSpec(f"job-{i:05d}", f"run/{i}", "eval", {"i": i}, 0, "bench",
                        [f"job-{i - 1:05d}"] if i % 10 else []) for i in range(args.jobs)]
        start = time.perf_counter()
        store.jobs.enqueue(jobs)
        enqueue = time.perf_counter() - start
        start = time.perf_counter()
        again = store.jobs.enqueue(jobs)
        re_enqueue = time.perf_counter() - start
        assert again == []
        latencies = []
        for job in jobs[:args.claims * 10:10][:args.claims]:
            start = time.perf_counter()
            assert store.jobs.claim(job.id, "bench", "host", [], "log") is not None
            latencies.append(time.perf_counter() - start)
        class Planning(Worker):
            def start(self, job: object, cards: object) -> None:  # decide only: nothing is spawned
                return None

        worker = Planning(store, Path(tmp) / "logs", None, True, slots=10**9, devices=list)
        passes = []
        for _ in range(5):
            start = time.perf_counter()
            worker.step()
            passes.append(time.perf_counter() - start)
    claim = statistics.median(latencies)
    scheduling = statistics.median(passes)
    print(f"{args.jobs} queued jobs, {args.claims} claims")
    print(f"{'measure':44s} {'value':>10s} {'target':>8s}")
    print(f"{'enqueue all (one transaction)':44s} {enqueue * 1000:8.0f}ms")
    print(f"{'enqueue again (all known, nothing added)':44s} {re_enqueue * 1000:8.0f}ms")
    print(f"{'claim latency, median':44s} {claim * 1000:8.1f}ms {'50ms':>8s}   ratio {claim / 0.05:.2f}")
    print(f"{'claim latency, p95':44s} {sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000:8.1f}ms")
    print(f"{'scheduler pass over the queue, median':44s} {scheduling * 1000:8.1f}ms")
    print(f"{'  per job':44s} {scheduling / args.jobs * 1e6:8.1f}us")


if __name__ == "__main__":
    main()
