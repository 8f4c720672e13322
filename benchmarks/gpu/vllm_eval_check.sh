#!/usr/bin/env bash
# GPU check for `kdtui eval --engine vllm` (one CUDA GPU, this repo, `pip install -e '.[vllm]'`, no network,
# nothing downloaded).
#
# 1. builds a randomly initialised small Llama (4 layers, d = 512, head_dim 128) with a tokenizer trained here,
#    and a random LoRA adapter on it (r4/alpha8 on q,k,v,o, B not zero, so the adapter changes the outputs);
# 2. evaluates the same synthetic questions with the transformers engine and with vLLM, base model and
#    base + adapter (vLLM: enable_lora, the adapter as a LoRARequest), greedy, in float32 where vLLM
#    supports it (else both in bfloat16, which the output says);
# 3. checks that the greedy responses are identical item by item (prints the first differing item if not)
#    and prints new tokens/s of each engine and the ratio.
#
# Usage: bash benchmarks/gpu/vllm_eval_check.sh [QUESTIONS] [MAX_NEW_TOKENS]   (default 256 64)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD:${PYTHONPATH:-} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$PY - "${1:-256}" "${2:-64}" <<'PY'
import gc, sys, tempfile
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from kdtui.config.eval import EvalConfig
from kdtui.errors import KdtuiError
from kdtui.recipes.evaluate import run_eval
from kdtui.store import Store
from tests.tiny import build_tiny_llama

N, NEW = int(sys.argv[1]), int(sys.argv[2])
work = Path(tempfile.mkdtemp(prefix="kdtui-vllm-check-"))
model = build_tiny_llama(work / "model", layers=4, hidden=512)
torch.manual_seed(1)
peft = get_peft_model(AutoModelForCausalLM.from_pretrained(model),
                      LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                 init_lora_weights=False, task_type="CAUSAL_LM"))
peft.save_pretrained(work / "adapter")
store = Store(work / "store")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}; {N} questions, {NEW} new tokens, greedy")


rates: dict[str, float] = {}


def evaluate(engine: str, adapter: str | None, dtype: str) -> tuple[str, float]:
    run = f"{engine}-{'lora' if adapter else 'base'}-{dtype}"
    if run not in rates:
        # gpu_memory 0.25: each vLLM instance of this process keeps its share until the process ends
        cfg = EvalConfig(model=str(model), adapter=adapter, data="synthetic:3", limit=N, max_new_tokens=NEW,
                         prompt="plain", engine=engine, dtype=dtype, device="cuda", run=run, gpu_memory=0.25,
                         batch_size=64 if engine == "transformers" else N)
        result = run_eval(cfg, store, work / "logs")
        rates[run] = result.new_tokens / result.seconds  # seconds include loading: both engines alike
        gc.collect()
        torch.cuda.empty_cache()
    return run, rates[run]


def responses(run: str) -> dict[str, str]:
    return {r["item_id"]: r["response"] for r in store.query(
        "SELECT p.item_id, p.response FROM predictions p JOIN runs r ON r.id = p.run_id WHERE r.name = ?",
        [run]).records()}


dtype = "float32"
try:
    evaluate("vllm", None, dtype)
except KdtuiError as exc:
    print(f"vLLM in float32: {exc}; comparing both engines in bfloat16 instead (kernels may then differ)")
    dtype = "bfloat16"
failed = False
for adapter in (None, str(work / "adapter")):
    hf_run, hf_rate = evaluate("transformers", adapter, dtype)
    vllm_run, vllm_rate = evaluate("vllm", adapter, dtype)  # the float32 probe may have done it already
    ours, theirs = responses(vllm_run), responses(hf_run)
    same = sum(ours[k] == theirs[k] for k in theirs)
    label = "base + LoRA" if adapter else "base"
    print(f"{label:12s} {dtype}: identical greedy responses {same}/{len(theirs)}; transformers {hf_rate:,.0f} "
          f"new tok/s, vLLM {vllm_rate:,.0f} new tok/s ({vllm_rate / hf_rate:.1f}x)")
    if same != len(theirs):
        failed = True
        first = next(k for k in sorted(theirs) if ours[k] != theirs[k])
        print(f"  first difference, {first}:\n  transformers: {theirs[first]!r}\n  vLLM:         {ours[first]!r}")
if failed:
    sys.exit("FAIL: vLLM's greedy responses differ from transformers'")
print("OK: vLLM and transformers give identical greedy responses")
PY
