"""Capture storage, fidelity and speed, against a bare forward pass and the study's dense approach.

    python benchmarks/capture_bench.py [--teacher store/models/SmolLM2-135M-Instruct] [--n 32]

Prints one table: bytes/token for top-k k=16/32/64/128 and dense; top-k mass and KL at
T=1 and T=5.94; capture throughput vs a bare forward of the same model (target:
overhead <= 15%); peak RSS and bytes on disk vs the study's way (dense logits kept
in RAM, one file at the end); and the format's cost at Llama 3's 128,256-token
vocabulary on a synthetic logit tensor (target: <= 4.25 bytes per stored (id, value)
plus <= 24 bytes per token).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from kdtui.captures.format import CapturedExample, compress_topk, encode_shard
from kdtui.captures.inspect import fidelity
from kdtui.config.capture import CaptureConfig
from kdtui.data.gsm8k import load_problems
from kdtui.data.strategies import get_strategy
from kdtui.models.teachers import load_teacher
from kdtui.recipes.capture import build_example, run_capture
from kdtui.store import Store

DEFAULT_TEACHER = Path("store/models/SmolLM2-135M-Instruct")
T_STUDY = 5.942267335064758


def bare_forward_seconds(teacher_path: str, n: int, batch_size: int) -> float:
    """The same forward passes a capture makes, and nothing else."""
    teacher = load_teacher("hf", teacher_path)
    strategy = get_strategy("teacher")
    examples = [build_example(teacher, strategy, p, "prompt", i) for i, p in enumerate(load_problems("synthetic", n))]
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        batch = examples[i:i + batch_size]
        logits = teacher.forward([e.context for e in batch], [(e.target_start - 1, len(e.context) - 1) for e in batch])
        for row in logits:
            row.float().sum().item()  # make sure the work happened
    return time.perf_counter() - start


STUDY_SCRIPT = """
import sys, time, torch
from safetensors.torch import save_file
from kdtui.recipes.capture import build_example
from kdtui.data.gsm8k import load_problems
from kdtui.data.strategies import get_strategy
from kdtui.models.teachers import load_teacher
teacher = load_teacher("hf", sys.argv[1]); strategy = get_strategy("teacher")
problems = load_problems("synthetic", int(sys.argv[2]))
kept = {}
for i, p in enumerate(problems):  # the notebooks: one question at a time, every logit kept in RAM
    e = build_example(teacher, strategy, p, "prompt", i)
    kept[f"logits_{i}"] = teacher.forward([e.context], [(0, len(e.context))])[0].to(torch.float16).contiguous()
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
save_file(kept, sys.argv[3])
print(rss)
"""

KDTUI_SCRIPT = """
import sys
from kdtui.config.capture import CaptureConfig
from kdtui.recipes.capture import run_capture
from kdtui.store import Store
cfg = CaptureConfig(name="rss", teacher=sys.argv[1], strategy="teacher", data="synthetic", limit=int(sys.argv[2]),
                    k=64, examples_per_shard=16)
run_capture(cfg, Store(sys.argv[3]))
print([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
"""


def rss_mb(script: str, *args: str) -> float:
    """Resident memory at the end of the work (before the study's final save), in MB."""
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def synthetic_128k(n_tokens: int = 2048, k: int = 64) -> tuple[float, float]:
    """Bytes per (id, value) and per-token overhead of a top-k shard at vocab 128,256."""
    torch.manual_seed(0)
    vocab = 128_256
    logits = torch.randn(n_tokens, vocab) * 2
    logits[torch.arange(n_tokens), torch.randint(0, vocab, (n_tokens,))] += 12  # a confident teacher
    packed = compress_topk(logits, k, [1.0, T_STUDY])
    examples, per = [], 64
    for i in range(0, n_tokens, per):
        examples.append(CapturedExample(
            index=i // per, context=torch.randint(0, vocab, (per + 40,)).tolist(), target_start=40,
            targets=torch.randint(0, vocab, (per,)).tolist(), ids=packed["ids"][i:i + per].numpy(),
            logprobs=packed["logprobs"][i:i + per], lognorm=packed["lognorm"][i:i + per].numpy(),
            log_tail=packed["log_tail"][i:i + per].numpy(),
            entropy=packed["entropy"][i:i + per].numpy()))
    tensors, _ = encode_shard(examples, "topk", vocab, "float16", {})
    entry_bytes = sum(t.numel() * t.element_size() for name, t in tensors.items()
                      if name.startswith("topk_ids") or name == "topk_logprobs")
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    return entry_bytes / (n_tokens * k), (total - entry_bytes) / n_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=str(DEFAULT_TEACHER))
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rss-n", type=int, default=128, help="questions for the peak-RSS comparison")
    args = parser.parse_args()
    teacher = args.teacher
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if not Path(teacher, "config.json").is_file():
            from tests.tiny import build_tiny_llama

            print(f"(no model at {teacher}: using a tiny random Llama instead)")
            teacher = str(build_tiny_llama(Path(tmp) / "tiny"))
        store = Store(Path(tmp) / "store")
        timings = {}
        for fmt, k in (("topk", 16), ("topk", 32), ("topk", 64), ("topk", 128), ("dense", 0)):
            name = f"{fmt}{k or ''}"
            cfg = CaptureConfig(name=name, teacher=teacher, strategy="teacher", data="synthetic", limit=args.n,
                                format=fmt, k=k or 64, batch_size=args.batch_size, examples_per_shard=args.n)
            start = time.perf_counter()
            manifest = run_capture(cfg, store)
            timings[name] = time.perf_counter() - start
            size = sum(s["bytes"] for s in manifest["shards"])
            rows.append((f"bytes/token, {name}", f"{size / manifest['n_tokens']:.1f}"))
            if fmt == "topk":
                for row in fidelity(store.root, name, teacher, sample=args.n):
                    t = "5.94" if row["temperature"] != 1.0 else "1"
                    rows.append((f"  {name} T={t}: top-k mass / KL bucket / KL uniform tail",
                                 f"{row['topk_mass']:.3f} / {row['kl_bucket']:.1e} / {row['kl_uniform_tail']:.3f}"))
        # throughput: a fresh capture (model load excluded) vs the same bare forward passes
        bare = bare_forward_seconds(teacher, args.n, args.batch_size)
        store2 = Store(Path(tmp) / "store2")
        cfg = CaptureConfig(name="speed", teacher=teacher, strategy="teacher", data="synthetic", limit=args.n,
                            k=64, batch_size=args.batch_size, examples_per_shard=args.n)
        seconds: dict[str, float] = {}
        run_capture(cfg, store2, progress=lambda s: seconds.__setitem__("loop", s["elapsed"]))
        rows.append(("bare forward passes (baseline), s", f"{bare:.2f}"))
        rows.append(("kdtui capture top-64 loop (forward+top-k+write), s", f"{seconds['loop']:.2f}"))
        rows.append(("  capture overhead vs bare forward (target <= 15%)", f"{seconds['loop'] / bare - 1:+.1%}"))
        study_file = Path(tmp) / "study.safetensors"
        study_rss = rss_mb(STUDY_SCRIPT, teacher, str(args.rss_n), str(study_file))
        kdtui_rss = rss_mb(KDTUI_SCRIPT, teacher, str(args.rss_n), str(Path(tmp) / "store3"))
        manifest = json.loads((Path(tmp) / "store3" / "captures" / "rss" / "manifest.json").read_text())
        kdtui_bytes = sum(s["bytes"] for s in manifest["shards"])
        rows.append((f"RSS MB after {args.rss_n} questions: study (dense in RAM) / kdtui top-64",
                     f"{study_rss:.0f} / {kdtui_rss:.0f}"))
        rows.append(("bytes on disk: study / kdtui top-64 (ratio)",
                     f"{study_file.stat().st_size:,} / {kdtui_bytes:,} "
                     f"({study_file.stat().st_size / kdtui_bytes:.0f}x smaller)"))
    per_entry, per_token = synthetic_128k()
    rows.append(("vocab 128,256: bytes per (id, value) (target <= 4.25)", f"{per_entry:.3f}"))
    rows.append(("vocab 128,256: overhead bytes per token (target <= 24)", f"{per_token:.1f}"))
    width = max(len(r[0]) for r in rows)
    print(f"teacher: {teacher}, {args.n} synthetic questions, strategy 'teacher', prompt mode")
    for label, value in rows:
        print(f"{label:{width}s}  {value}")


if __name__ == "__main__":
    main()
