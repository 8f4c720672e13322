#!/usr/bin/env bash
# GPU check for distillation at the study's real shapes (one H200-class GPU, this repo, no network,
# nothing downloaded).
#
# 1. builds a randomly initialised Llama-3.1-8B-shaped student (bf16, on the device) with LoRA r4/alpha8
#    on q,k,v,o, and a Llama-3.1-405B-head-shaped teacher head (d = 16,384, V = 128,256, bf16);
# 2. makes synthetic teacher data for B x L tokens in each form: topk (k = 64 + exact tail), hidden
#    (h per token + the head) and dense (full bf16 logits);
# 3. prints peak GPU memory and tokens/s of one LoRA KD step (kdtui's aligned step: backbone, then the
#    fused chunked loss) per teacher form, next to a plain CE step (transformers' own loss), all bf16.
#
# Usage: bash benchmarks/gpu/distill_check.sh [BATCH] [SEQ] [TARGETS]   (default 4 1024 512)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$PY - "${1:-4}" "${2:-1024}" "${3:-512}" <<'PY'
import sys, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, get_peft_model
from kdtui.kd.examples import TeacherRows, TrainItem
from kdtui.kd.losses import KDConfig
from kdtui.kd.step import HeadWeights, TargetHidden, aligned_loss

B, L, TGT = (int(x) for x in sys.argv[1:4])
V, D_TEACHER = 128256, 16384
dev = torch.device("cuda")
torch.manual_seed(0)
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}; batch {B} x {L} tokens, {TGT} targets each")

config = LlamaConfig(vocab_size=V, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                     rope_theta=500000.0, tie_word_embeddings=False)
torch.set_default_dtype(torch.bfloat16)
with dev:
    model = LlamaForCausalLM(config)
torch.set_default_dtype(torch.float32)
model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1,
                                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                         task_type="CAUSAL_LM"))
model.gradient_checkpointing_enable()
model.enable_input_require_grads()
model.train()
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=5e-6, momentum=0.9)
print(f"student: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
      f"{sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.2f} M trained")

n = TGT
ids = torch.randint(0, V, (B, L))
# logits at positions L-TGT-1 .. L-2 predict the last TGT tokens
items_plain = [TrainItem(b, ids[b].tolist(), L - TGT - 1, ids[b, L - TGT:].tolist()) for b in range(B)]
head = HeadWeights((torch.randn(V, D_TEACHER, device=dev) / D_TEACHER ** 0.5).to(torch.bfloat16))

def rows(form):
    if form == "topk":
        values = torch.log_softmax(torch.randn(n, 65, device=dev), -1)
        return TeacherRows(topk_ids=torch.randint(0, V, (n, 64), device=dev), topk_logprobs=values[:, :64],
                           log_tail=values[:, 64])
    if form == "hidden":
        return TeacherRows(hidden=torch.randn(n, D_TEACHER, device=dev, dtype=torch.bfloat16))
    return TeacherRows(logits=torch.randn(n, V, device=dev, dtype=torch.bfloat16))

def ce_step():
    labels = torch.full((B, L), -100, dtype=torch.long)
    labels[:, L - TGT:] = ids[:, L - TGT:]
    loss = model(input_ids=ids.to(dev), labels=labels.to(dev)).loss
    loss.backward(); optimizer.step(); optimizer.zero_grad(set_to_none=True)

forward = TargetHidden(model)
def kd_step(items, use_head):
    loss, _, _ = aligned_loss(forward, model, items, KDConfig(divergence="reverse_kl", chunk=1024),
                              head if use_head else None)
    loss.backward(); optimizer.step(); optimizer.zero_grad(set_to_none=True)

def measure(label, step, repeats=5):
    step()  # warm-up (kernels, allocator)
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    peak = torch.cuda.max_memory_allocated() / 2**30
    return label, B * TGT / seconds, peak

results = [measure("plain CE (transformers loss)", ce_step)]
for form in ("topk", "hidden", "dense"):
    teacher_rows = rows(form)
    items = [TrainItem(i.index, i.input_ids, i.target_pos, i.labels, teacher_rows) for i in items_plain]
    # every item carries the same rows object: the batch concatenates B copies, as B real examples would
    results.append(measure(f"LoRA KD, {form} teacher", lambda items=items, form=form: kd_step(items, form == "hidden")))
    del teacher_rows, items
    torch.cuda.empty_cache()
base = results[0][1]
print(f"{'step':30s} {'target tok/s':>12s} {'vs CE':>6s} {'peak GiB':>9s}")
for label, rate, peak in results:
    print(f"{label:30s} {rate:12.0f} {rate / base:6.2f} {peak:9.1f}")
PY
