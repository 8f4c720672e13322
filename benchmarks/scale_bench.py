"""Scale-out on a real local Ray head: capture throughput with 1 vs 2 teacher replicas, and the per-job
overhead of the Ray executor against the local worker. Needs the `ray` extra.

    python benchmarks/scale_bench.py [--examples 1000] [--layers 8] [--hidden 512] [--jobs 3]

1. Capture: a randomly initialised Llama teacher (--layers, --hidden; tokenizer trained here) captures
   --examples synthetic answers (top-k) through the queue on Ray (`kdtui worker --executor ray`): as 1
   capture job, and as 2 replica jobs plus their merge, each job reserving 1 CPU and running 1 thread
   (as a replica has its own GPUs: replicas add resources); then as 1 job given both CPUs, for context.
   Printed: wall time from enqueue to the merged manifest, examples/s, the 2-vs-1 replica ratio (target
   >= 1.6x). The manifests must hold the same shards, byte for byte.
2. Overhead: --jobs tiny evaluations (1 question, 1 new token) one after another on each executor;
   printed per executor: median seconds from enqueue to the job's first log line (the runner's, printed
   once its process is up and has registered itself in the store) and to its end, and the Ray/local
   ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kdtui.config.eval import EvalConfig  # noqa: E402
from kdtui.jobs.daemon import holder  # noqa: E402
from kdtui.jobs.experiment import load_experiment  # noqa: E402
from kdtui.jobs.graph import JobSpec, expand  # noqa: E402
from kdtui.jobs.ray_executor import RayExecutor  # noqa: E402
from kdtui.store import Store  # noqa: E402

ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(REPO))


def wait(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kdtui(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "kdtui.cli", *args], env=ENV, capture_output=True, text=True,
                          cwd=REPO)
    if done.returncode:
        raise SystemExit(f"kdtui {' '.join(args)} failed: {done.stderr.strip()}")


def start_worker(store: Path, executor: str, address: str, cpus: int = 1) -> None:
    extra = ["--executor", "ray", "--ray-address", address, "--ray-cpus-per-job", str(cpus)] \
        if executor == "ray" else ["--cpu"]
    kdtui("worker", "start", *extra, "--cpu-slots", "2", "--slots", "2", "--store", str(store), "--logs",
          str(store / "logs"))


def stop_worker(store: Path) -> None:
    pid = holder(store)
    if pid:
        os.kill(pid, signal.SIGTERM)
        wait(lambda: holder(store) is None, 120, "the worker to stop", 0.2)


def build_teacher(folder: Path, layers: int, hidden: int) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                         num_hidden_layers=layers, num_attention_heads=max(hidden // 64, 1),
                         num_key_value_heads=max(hidden // 128, 1), max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def capture_run(tmp: Path, teacher: Path, examples: int, replicas: int, address: str,
                cpus: int) -> tuple[float, Path]:
    """Enqueue the capture (and merge) jobs of an experiment; seconds from enqueue to every job done."""
    spec_path = tmp / f"capture-{replicas}.toml"
    spec_path.write_text(f"""
[experiment]
name = "scale"
strategies = ["base"]
[teacher]
model = "{teacher}"
[[student]]
name = "s"
model = "{teacher}"
[capture]
data = "synthetic"
limit = {examples}
mode = "answer"
device = "cpu"
replicas = {replicas}
examples_per_shard = {max(examples // 4, 1)}
""")
    store_dir = tmp / f"store-{replicas}x{cpus}"
    store = Store(store_dir)
    jobs = [j for j in expand(load_experiment(spec_path), store_dir) if j.kind in ("capture", "merge")]
    start_worker(store_dir, "ray", address, cpus)
    try:
        start = time.monotonic()
        store.jobs.enqueue(jobs)
        # polled once a second: each look opens the store, which costs CPU the jobs measured here need
        wait(lambda: all(j.state == "done" for j in store.jobs.all()), 1800, f"{replicas}-replica capture", 1.0)
        seconds = time.monotonic() - start
        failed = [j for j in store.jobs.all() if j.state != "done"]
        if failed:
            raise SystemExit(f"{failed[0].id} ended {failed[0].state}; see {store_dir}/logs")
    finally:
        stop_worker(store_dir)
    first = min(a["started_at"] for j in jobs for a in store.jobs.attempts(j.id))
    spans = [f"{j.kind} {(a['started_at'] - first).total_seconds():.1f}-"
             f"{(a['finished_at'] - first).total_seconds():.1f}s" for j in jobs for a in store.jobs.attempts(j.id)]
    print(f"  {replicas} replica(s) x {cpus} CPU: {', '.join(spans)} (claim to recorded end)", flush=True)
    return seconds, store_dir / "captures" / "scale-base"


def shard_digests(folder: Path) -> list[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [hashlib.sha256((folder / s["file"]).read_bytes()).hexdigest() for s in manifest["shards"]]


def overhead(tmp: Path, model: Path, executor: str, address: str, jobs: int) -> tuple[list[float], list[float]]:
    """Seconds from enqueue to the job's process reporting itself, and to its end, for tiny jobs in a row."""
    store_dir = tmp / f"overhead-{executor}"
    store = Store(store_dir)
    store.migrate()
    start_worker(store_dir, executor, address)
    client = RayExecutor(address) if executor == "ray" else None
    to_start, to_end = [], []
    try:
        for i in range(jobs):
            cfg = EvalConfig(model=str(model), data="synthetic", limit=1, max_new_tokens=1, device="cpu",
                             run=f"overhead/{i}")
            job = JobSpec(f"ovh-{i}", cfg.run or "", "eval", cfg.model_dump(), 0, "overhead")
            start = time.monotonic()
            store.jobs.enqueue([job])
            job_id = job.id

            def state(job_id: str = job_id) -> str:
                row = store.jobs.get(job_id)
                return "" if row is None else row.state

            def first_line(job_id: str = job_id) -> bool:
                """The runner's first line in the job's own log (Ray's log of the submission, read directly:
                the worker's copy lags by its copy interval)."""
                if client is None:
                    path = store_dir / "logs" / "jobs" / f"{job_id}.log"
                    return path.is_file() and ", attempt 1, pid" in path.read_text()
                row = store.jobs.get(job_id)
                return row is not None and row.submission is not None and \
                    ", attempt 1, pid" in client.logs(row.submission)

            wait(first_line, 300, "the job's first log line")
            to_start.append(time.monotonic() - start)
            wait(lambda: state() == "done", 300, "the job to end")
            to_end.append(time.monotonic() - start)
    finally:
        stop_worker(store_dir)
    return to_start, to_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="at most 1000 (the synthetic set's size)")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.examples <= 1000:
        raise SystemExit("--examples: 1 to 1000 (the synthetic set has 1000 problems)")
    try:
        import ray
    except ImportError:
        raise SystemExit("scale_bench needs the ray extra: pip install -e '.[ray]'") from None
    ray_bin = Path(sys.executable).with_name("ray")
    dashboard = free_port()
    subprocess.run([str(ray_bin), "start", "--head", f"--port={free_port()}", f"--num-cpus={os.cpu_count()}",
                    f"--dashboard-port={dashboard}", "--include-dashboard=true", "--disable-usage-stats"],
                   check=True, capture_output=True, env=ENV)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            teacher = build_teacher(tmp / "teacher", args.layers, args.hidden)
            print(f"Ray {ray.__version__} local head, {os.cpu_count()} CPUs; teacher: random Llama, {args.layers} "
                  f"layers, d={args.hidden}; {args.examples} synthetic examples, top-k capture")
            one, folder_one = capture_run(tmp, teacher, args.examples, 1, address, cpus=1)
            two, folder_two = capture_run(tmp, teacher, args.examples, 2, address, cpus=1)
            whole, folder_whole = capture_run(tmp, teacher, args.examples, 1, address, cpus=2)
            same = shard_digests(folder_one) == shard_digests(folder_two) == shard_digests(folder_whole)
            print(f"capture, 1 replica  x 1 CPU : {one:7.1f} s  {args.examples / one:6.2f} examples/s  (baseline)")
            print(f"capture, 2 replicas x 1 CPU : {two:7.1f} s  {args.examples / two:6.2f} examples/s  "
                  f"ratio {one / two:.2f}x (target >= 1.6x)")
            print(f"capture, 1 replica  x 2 CPUs: {whole:7.1f} s  {args.examples / whole:6.2f} examples/s  "
                  f"(one replica given both cores: 2 replicas x 1 CPU are {whole / two:.2f}x it)")
            print(f"shards identical across the three: {same}")
            local_start, local_end = overhead(tmp, teacher, "local", address, args.jobs)
            ray_start, ray_end = overhead(tmp, teacher, "ray", address, args.jobs)
            for label, start, end in (("local", local_start, local_end), ("ray", ray_start, ray_end)):
                print(f"per-job overhead, {label:5s}: enqueue -> first log line {statistics.median(start):5.2f} s, "
                      f"-> done {statistics.median(end):5.2f} s (median of {args.jobs})")
            to_line = statistics.median(ray_start) / statistics.median(local_start)
            print(f"ray / local: to first log line {to_line:.2f}x, "
                  f"to done {statistics.median(ray_end) / statistics.median(local_end):.2f}x")
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=ENV)


if __name__ == "__main__":
    main()
