"""Capture storage, fidelity and speed, against a bare forward pass and the study's dense approach.

    python benchmarks/capture_bench.py [--teacher store/models/SmolLM2-135M-Instruct] [--n 32]

Prints one table: bytes/token for top-k k=16/32/64/128 and dense; top-k mass and KL at
T=1 and T=5.94; capture throughput vs a bare forward of the same model (target:
overhead <= 15%); peak RSS and bytes on disk vs the study's way (dense logits kept
in RAM, one file at the end); and the format's cost at Llama 3's 128,256-token
vocabulary on a synthetic logit tensor (target: <= 4.25 bytes per stored (id, value)
plus <= 24 bytes per token). It also compares the three stored forms: bytes/token of ``hidden``
(fp16 and int8) vs ``dense`` vs ``topk`` here and at Llama 3.1 405B's shapes (d = 16,384,
V = 128,256); the KL each form implies against the live teacher at T = 1 and 5.94 (top-k: the
bucketed KL, a lower bound, and the KL of a student that spreads the tail uniformly; hidden and
dense: KL(full || stored), which only rounding makes non-zero); and the tail mass's relative error
derived as 1 - sum of fp16 values (format 1) vs the fp32 log tail stored since format 2.
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

from kdtui.captures.format import CapturedExample, compress_topk, encode_shard, read_shard, tail_mass
from kdtui.captures.inspect import fidelity, hidden_fidelity
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


def dense_fidelity(root: Path, name: str, teacher_path: str, n: int) -> list[tuple[float, float]]:
    """KL(full || stored) of a dense capture: the live teacher's logits vs the stored fp16 ones."""
    teacher = load_teacher("hf", teacher_path, "cpu")
    manifest = json.loads((root / "captures" / name / "manifest.json").read_text())
    entry = manifest["shards"][0]
    out = []
    for t in manifest["temperatures"]:
        total, count = 0.0, 0
        for example in read_shard(root / "captures" / name / entry["file"], entry).examples()[:n]:
            span = (example.target_start - 1, example.target_start - 1 + len(example.targets))
            live = teacher.forward([example.context], [span])[0].float()
            full = torch.log_softmax(live / t, -1)
            stored = torch.log_softmax(example.logits.float() / t, -1)  # type: ignore[union-attr]
            total += float((full.exp() * (full - stored)).sum(-1).clamp(min=0).sum())
            count += live.shape[0]
        out.append((t, total / max(count, 1)))
    return out


def llama405b_bytes(n_tokens: int = 64) -> list[tuple[str, str]]:
    """Bytes per token of each form at Llama 3.1 405B's shapes, from real encoded shards."""
    vocab, d = 128_256, 16_384
    torch.manual_seed(0)
    logits = torch.randn(n_tokens, vocab) * 2
    hidden = torch.randn(n_tokens, d)
    context = torch.randint(0, vocab, (n_tokens + 40,)).tolist()
    out = []
    for fmt, dtype in (("dense", "float16"), ("hidden", "float16"), ("hidden", "int8"), ("topk", "float16")):
        example = CapturedExample(index=0, context=context, target_start=40, targets=context[40:40 + n_tokens],
                                  entropy=torch.zeros(n_tokens).numpy())
        if fmt == "dense":
            example.logits = logits
        elif fmt == "hidden":
            example.hidden = hidden
        else:
            packed = compress_topk(logits, 64, [1.0, T_STUDY])
            example.ids, example.logprobs = packed["ids"].numpy(), packed["logprobs"]
            example.lognorm, example.log_tail = packed["lognorm"].numpy(), packed["log_tail"].numpy()
        tensors, _ = encode_shard([example], fmt, vocab, dtype, {})
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        out.append((f"405B shapes: bytes/token, {fmt} {dtype}", f"{size / n_tokens:,.0f}"))
    out.append(("405B shapes: hidden head once (fp16 W, MB)", f"{vocab * d * 2 / 1e6:,.0f}"))
    return out


def tail_errors(n_tokens: int = 1024) -> list[tuple[str, str]]:
    """Relative error of the top-64 tail mass: 1 - sum of fp16 values (format 1) vs the fp32 log tail."""
    torch.manual_seed(1)
    vocab = 128_256
    logits = torch.randn(n_tokens, vocab) * 2
    logits[torch.arange(n_tokens), torch.randint(0, vocab, (n_tokens,))] += 20  # peaked: tail ~ 1e-4
    packed = compress_topk(logits, 64, [1.0, T_STUDY])
    top = torch.topk(logits, 64, -1).indices
    out = []
    for t_index, t in enumerate((1.0, T_STUDY)):
        exact = torch.logsumexp((logits / t).scatter(-1, top, float("-inf")), -1) - torch.logsumexp(logits / t, -1)
        derived = tail_mass(packed["logprobs"].half(), packed["lognorm"], t_index, t)
        stored = packed["log_tail"][:, t_index].exp()
        rel_derived = ((derived - exact.exp()).abs() / exact.exp()).mean()
        rel_stored = ((stored - exact.exp()).abs() / exact.exp()).mean()
        zeros = int((derived == 0).sum())
        out.append((f"tail mass rel. error at T={t:.3g}: 1 - sum fp16 (format 1) / fp32 log tail",
                    f"{rel_derived:.1e} ({zeros} of {n_tokens} rounded to 0) / {rel_stored:.1e}"))
    return out


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
        forms = (("topk", 16, "float16"), ("topk", 32, "float16"), ("topk", 64, "float16"), ("topk", 128, "float16"),
                 ("dense", 0, "float16"), ("hidden", 0, "float16"), ("hidden", 0, "int8"))
        for fmt, k, dtype in forms:
            name = f"{fmt}{k or ''}" + ("-int8" if dtype == "int8" else "")
            cfg = CaptureConfig(name=name, teacher=teacher, strategy="teacher", data="synthetic", limit=args.n,
                                format=fmt, k=k or 64, batch_size=args.batch_size, examples_per_shard=args.n,
                                value_dtype=dtype)
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
            elif fmt == "hidden":
                for row in hidden_fidelity(store.root, name, teacher, sample=args.n):
                    t = "5.94" if row["temperature"] != 1.0 else "1"
                    rows.append((f"  {name} T={t}: max |dlogit| / KL(full || h W^T)",
                                 f"{row['max_abs_dlogit']:.1e} / {row['kl']:.1e}"))
            else:
                for t, kl in dense_fidelity(store.root, name, teacher, args.n):
                    rows.append((f"  {name} T={t:.3g}: KL(full || stored fp16 logits)", f"{kl:.1e}"))
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
    for label, value in llama405b_bytes():
        rows.append((label, value))
    for label, value in tail_errors():
        rows.append((label, value))
    width = max(len(r[0]) for r in rows)
    print(f"teacher: {teacher}, {args.n} synthetic questions, strategy 'teacher', prompt mode")
    for label, value in rows:
        print(f"{label:{width}s}  {value}")


if __name__ == "__main__":
    main()
