"""KD loss cost: kdtui's chunked fused loss vs the study's dense loss, forward + backward, on this CPU.

    python benchmarks/kd_loss_bench.py [--sizes 32000x1024,32000x2048,128256x1024,128256x2048] [--d 2048]

Baseline: the study's dense loss — full teacher logits in memory, the student's full [N, V]
logits and softmax, reverse KL + CE at T = 5.94 (as its notebooks computed it). Each case runs
in a fresh process; "peak" is its peak resident memory during the loss's forward and backward
above the memory held just before (inputs excluded; Linux's peak mark is reset first);
ratios are ours / dense. Forms: ``topk`` (k = 64 + exact tail bucket),
``hidden`` (teacher head input d = --d and head recomputed per chunk), ``dense-chunked`` (the
same fused loss fed full teacher logits), and ``torchtune`` — torchtune's chunked-output approach as
a second reference: the model emits its logits as 8 chunks ([N/8, V] each, kept for backward by
autograd) and the loss runs chunk by chunk (its ReverseKLWithChunkedOutputLoss, written here from
the approach, with CE). Note that torchtune's "ForwardKL" loss is a cross-entropy against the
teacher (no teacher-entropy term), so it cannot report a KL; ours reports the full KL or, for top-k,
the bucketed lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CASE = r"""
import json, sys, time
import torch
import torch.nn.functional as F
from kdtui.kd.losses import DenseTeacher, HiddenTeacher, KDConfig, TopKTeacher, fused_kd_loss

form, vocab, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
torch.set_num_threads(2)
hidden = torch.randn(n, d, requires_grad=True)
weight = torch.randn(vocab, d) / d ** 0.5          # frozen head (LoRA)
labels = torch.randint(0, vocab, (n,))
cfg = KDConfig(divergence="reverse_kl", chunk=256)
if form in ("dense", "dense-chunked", "torchtune"):
    teacher_logits = torch.randn(n, vocab)
elif form == "topk":
    # built without any [N, V] tensor, so the peak below is the loss's own (ru_maxrss is a high-water mark)
    ids = torch.stack([torch.randperm(vocab)[:64] for _ in range(n)])
    values = torch.log_softmax(torch.randn(n, 65), -1)
    topk = TopKTeacher(ids, values[:, :64], values[:, 64])
elif form == "hidden":
    teacher = HiddenTeacher(torch.randn(n, d).half(), (torch.randn(vocab, d) / d ** 0.5).half())
# warm up kernels and thread pools on tiny inputs, so the peak below is the loss's own memory
_h = torch.randn(8, d, requires_grad=True)
_l, _ = fused_kd_loss(_h, torch.randn(64, d), torch.randint(0, 64, (8,)), DenseTeacher(torch.randn(8, 64)), cfg)
_l.backward()
_w = torch.randn(64, d)
(F.log_softmax(_h @ _w.T, -1).sum() + F.cross_entropy(_h @ _w.T, torch.zeros(8, dtype=torch.long))).backward()
def status_kb(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))

# Reset the peak-RSS mark to now (Linux: "5" to clear_refs), so setup's temporaries do not count.
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
start_rss = status_kb("VmRSS")
t0 = time.perf_counter()
if form == "dense":
    # the study's way: every [N, V] tensor at once
    logits = hidden @ weight.T
    s = F.log_softmax(logits / cfg.temperature, -1)
    t = F.log_softmax(teacher_logits / cfg.temperature, -1)
    kl = F.kl_div(t, s, log_target=True, reduction="batchmean")  # KL(s || t): the study's "reverse" call
    loss = cfg.alpha * F.cross_entropy(logits, labels) + (1 - cfg.alpha) * kl * cfg.temperature ** 2
elif form == "torchtune":
    # output chunks first (as its TransformerDecoder with num_output_chunks=8 returns them), then the loss per chunk
    chunks = [h @ weight.T for h in hidden.chunk(8)]
    loss = torch.zeros(())
    for s_chunk, t_chunk, y in zip(chunks, teacher_logits.chunk(8), labels.chunk(8)):
        s = F.log_softmax(s_chunk.float() / cfg.temperature, -1)
        t = F.log_softmax(t_chunk.float() / cfg.temperature, -1)
        reverse = (s.exp() * (s - t)).sum(-1).sum()
        ce = F.cross_entropy(s_chunk.float(), y, reduction="sum")
        loss = loss + (cfg.alpha * ce + (1 - cfg.alpha) * reverse * cfg.temperature ** 2) / n
else:
    teacher_obj = {"dense-chunked": lambda: DenseTeacher(teacher_logits), "topk": lambda: topk,
                   "hidden": lambda: teacher}[form]()
    loss, _ = fused_kd_loss(hidden, weight, labels, teacher_obj, cfg)
loss.backward()
seconds = time.perf_counter() - t0
peak = status_kb("VmHWM") - start_rss
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))
"""


def _case(form: str, vocab: int, n: int, d: int, env: dict[str, str]) -> dict[str, float] | None:
    proc = subprocess.run([sys.executable, "-c", CASE, form, str(vocab), str(n), str(d)], capture_output=True,
                          text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        return None  # out of memory or killed: reported as such
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run(form: str, vocab: int, n: int, d: int, repeats: int) -> dict[str, float] | None:
    """Time with the default allocator, ``repeats`` fresh processes (median and spread: a shared CPU makes one
    run +-30%); peak memory in a further process with a fixed mmap threshold, where every large block is
    mapped on allocation and unmapped on free, so resident memory follows live memory (with glibc's default,
    chunks reuse freed heap and the peak is undercounted; the page faults of a fixed threshold would in turn
    slow the many-chunk losses, so time is not taken from that run). Memory is deterministic: one run."""
    times = []
    for _ in range(repeats):
        timed = _case(form, vocab, n, d, dict(os.environ))
        if timed is None:
            return None
        times.append(timed["seconds"])
    sized = _case(form, vocab, n, d, dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072"))
    if sized is None:
        return None
    return {"seconds": statistics.median(times), "spread": (max(times) - min(times)) / statistics.median(times),
            "peak_mb": sized["peak_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32000x1024,32000x2048,128256x1024,128256x2048")
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--forms", default="dense-chunked,topk,hidden,torchtune")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median and spread shown)")
    args = parser.parse_args()
    print(f"{'V':>7s} {'N':>5s} {'form':14s} {'median s':>9s} {'spread':>7s} {'peak MB':>9s} {'mem vs dense':>12s} "
          f"{'time vs dense':>13s}   ({args.repeats} timed runs per cell; spread = (max - min) / median)")
    for size in args.sizes.split(","):
        vocab, n = (int(x) for x in size.split("x"))
        dense = run("dense", vocab, n, args.d, args.repeats)
        for form in ("dense", *args.forms.split(",")):
            got = dense if form == "dense" else run(form, vocab, n, args.d, args.repeats)
            if got is None:
                print(f"{vocab:7d} {n:5d} {form:14s} {'did not fit / failed':>53s}")
                continue
            mem = f"{got['peak_mb'] / dense['peak_mb']:.2f}" if dense else ""
            tim = f"{got['seconds'] / dense['seconds']:.2f}" if dense else ""
            print(f"{vocab:7d} {n:5d} {form:14s} {got['seconds']:9.2f} {got['spread']:6.0%} {got['peak_mb']:9.0f} "
                  f"{mem:>12s} {tim:>13s}", flush=True)


if __name__ == "__main__":
    main()
