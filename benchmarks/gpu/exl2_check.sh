#!/usr/bin/env bash
# GPU check for the exllamav2 teacher (needs an NVIDIA GPU, this repo, no network).
#
# 1. converts SmolLM2-135M-Instruct (the demo's model folder) to EXL2 at 6 bpw with
#    exllamav2's own converter (convert.py of the installed package);
# 2. captures the same 32 synthetic examples with the hf (bf16) and exllamav2 backends;
# 3. prints top-1 agreement, top-k overlap, KL between them, and tokens/s of each.
#
# Usage: bash benchmarks/gpu/exl2_check.sh [MODEL_DIR]   (default store/models/SmolLM2-135M-Instruct)
# Wheels for exllamav2 (and flash-attn, optional) may be carried in .whl/ (see the device notes).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-store/models/SmolLM2-135M-Instruct}
WORK=${WORK:-/tmp/kdtui-exl2}
PY=${PYTHON:-python3}
mkdir -p "$WORK"
if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$PY -c "import exllamav2, torch; print('exllamav2', exllamav2.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 1. EXL2 6.0 bpw with the package's converter (measurement pass + quantisation)
CONVERT=$($PY -c "import exllamav2, os; print(os.path.join(os.path.dirname(os.path.dirname(exllamav2.__file__)), 'convert.py'))")
if [ ! -f "$CONVERT" ]; then CONVERT=$($PY -c "import exllamav2.conversion.convert_exl2 as c; print(c.__file__)"); fi
if [ ! -f "$WORK/exl2/config.json" ]; then
    rm -rf "$WORK/job" "$WORK/exl2"; mkdir -p "$WORK/job" "$WORK/exl2"
    $PY "$CONVERT" -i "$MODEL" -o "$WORK/job" -cf "$WORK/exl2" -b 6.0
fi

# 2 + 3. the same 32 examples through both backends, compared position by position
$PY - "$MODEL" "$WORK/exl2" <<'PY'
import sys, time, torch
from kdtui.recipes.capture import build_example
from kdtui.captures.format import compress_topk
from kdtui.data.gsm8k import load_problems
from kdtui.data.strategies import get_strategy
from kdtui.models.teachers import load_teacher, vocab_identity

hf = load_teacher("hf", sys.argv[1], device="cuda", dtype="bfloat16")
ex = load_teacher("exllamav2", sys.argv[2], cache_type="FP16")
assert vocab_identity(hf)["vocab_size"] == ex.vocab_size, (vocab_identity(hf), ex.vocab_size)
strategy, problems = get_strategy("teacher"), load_problems("synthetic", 32)
examples = [build_example(hf, strategy, p, "prompt", i) for i, p in enumerate(problems)]
ex_examples = [build_example(ex, strategy, p, "prompt", i) for i, p in enumerate(problems)]
same = sum(a.context == b.context for a, b in zip(examples, ex_examples))
print(f"token ids identical for {same}/32 examples")
results = {}
for name, teacher, exs in (("hf bf16", hf, examples), ("exllamav2 6bpw", ex, ex_examples)):
    torch.cuda.synchronize(); start = time.perf_counter(); rows = []; tokens = 0
    for e in exs:
        logits = teacher.forward([e.context], [(e.target_start - 1, len(e.context) - 1)])[0]
        rows.append(compress_topk(logits, 64, [1.0])); tokens += logits.shape[0]
        rows[-1]["full"] = torch.log_softmax(logits.float(), -1).cpu()
    torch.cuda.synchronize(); results[name] = (rows, tokens / (time.perf_counter() - start))
(a_rows, a_rate), (b_rows, b_rate) = results["hf bf16"], results["exllamav2 6bpw"]
top1 = overlap = kl = n = 0.0
for a, b in zip(a_rows, b_rows):
    m = min(a["ids"].shape[0], b["ids"].shape[0])
    top1 += (a["ids"][:m, 0] == b["ids"][:m, 0]).float().sum().item()
    for i in range(m):
        overlap += len(set(a["ids"][i].tolist()) & set(b["ids"][i].tolist())) / 64
    kl += (a["full"][:m].exp() * (a["full"][:m] - b["full"][:m])).sum(-1).sum().item()
    n += m
print(f"positions compared: {int(n)}")
print(f"top-1 agreement: {top1 / n:.4f}   top-64 overlap: {overlap / n:.4f}   KL(hf||exl2): {kl / n:.5f}")
print(f"tokens/s  hf bf16: {a_rate:.0f}   exllamav2 6bpw: {b_rate:.0f}")

# 4. the hidden capture's head check on both backends: logits rebuilt from the head input and the stored head
#    (dequantised for EXL2, with the family's transform) against each backend's own logits
from kdtui.config.capture import CaptureConfig
from kdtui.recipes.capture import check_teacher_head

for name, teacher in (("hf bf16", hf), ("exllamav2 6bpw", ex)):
    cfg = CaptureConfig(name="head-check", teacher="x", format="hidden", mode="prompt")
    agreement = check_teacher_head(teacher, teacher.head(), strategy, problems[:2], cfg)
    print(f"head check {name} ({teacher.model_type}): passed {agreement.passed}, max |dlogit| "
          f"{agreement.max_abs_dlogit:.3g}, KL {agreement.kl} (tolerance {agreement.tolerance:g})")
PY
