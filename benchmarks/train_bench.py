"""Training-step throughput: a LoRA KD step per teacher form vs a plain CE step, on SmolLM2-135M-Instruct.

    python benchmarks/train_bench.py [--student store/models/SmolLM2-135M-Instruct] [--steps 12] [--batch-size 4]

Baseline: the plain cross-entropy step every trainer runs — ``model(input_ids, labels=...)`` (full
[tokens, V] logits), backward, SGD — on the same sequences, the same LoRA (r4/alpha8 on q,k,v,o)
and the same target tokens. Each KD row is kdtui's aligned step (``kdtui.kd.step.aligned_loss``:
the backbone, then the fused chunked loss at the capture's targets) with the study's settings
(reverse KL, alpha 0.609, T 5.94) against a capture of the same model (teacher = student, so only
the cost is measured). Prints tokens/s and the KD overhead (target: <= 20% for topk).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from kdtui.config.capture import CaptureConfig
from kdtui.data.strategies import Strategy
from kdtui.kd.examples import TrainItem, aligned_items, captured_examples
from kdtui.kd.losses import KDConfig
from kdtui.kd.step import TargetHidden, aligned_loss, load_head
from kdtui.recipes.capture import run_capture
from kdtui.store import Store

DEFAULT_STUDENT = Path("store/models/SmolLM2-135M-Instruct")


def lora_model(path: str) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                            task_type="CAUSAL_LM"))


def ce_step(model: Any, items: list[TrainItem], optimizer: torch.optim.Optimizer) -> int:
    """The baseline: transformers' own shifted CE over full logits, labels -100 outside the targets."""
    length = max(len(i.input_ids) for i in items)
    ids = torch.zeros((len(items), length), dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for b, item in enumerate(items):
        ids[b, :len(item.input_ids)] = torch.tensor(item.input_ids)
        mask[b, :len(item.input_ids)] = 1
        # labels[p] is the token at p: the target predicted at position target_pos + j sits at +1
        labels[b, item.target_pos + 1:item.target_pos + 1 + item.n_targets - 1] = torch.tensor(item.labels[:-1])
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return sum(i.n_targets - 1 for i in items)  # the last target lies past the inputs here


def kd_step(model: Any, forward: TargetHidden, items: list[TrainItem], optimizer: torch.optim.Optimizer,
            head: Any) -> int:
    loss, _, n = aligned_loss(forward, model, items, KDConfig(divergence="reverse_kl"), head)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return n


def time_steps(step: Any, batches: list[list[TrainItem]], warmup: int = 2) -> float:
    """Median tokens/s over the batches after ``warmup`` untimed steps."""
    for batch in batches[:warmup]:
        step(batch)
    rates = []
    for batch in batches[warmup:]:
        start = time.perf_counter()
        tokens = step(batch)
        rates.append(tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default=str(DEFAULT_STUDENT))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--forms", default="topk,hidden,dense")
    args = parser.parse_args()
    if not (Path(args.student) / "config.json").is_file():
        from kdtui.models.smollm import ensure_smollm2

        args.student = str(ensure_smollm2(Path("store")))
    torch.set_num_threads(2)
    n = (args.steps + 2) * args.batch_size
    print(f"student {args.student}; {args.steps} timed steps of {args.batch_size} GSM8K-style sequences each")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        results: dict[str, float] = {}
        for form in ["ce", *args.forms.split(",")]:
            name = "topk" if form == "ce" else form
            cfg = CaptureConfig.model_validate({"name": name, "teacher": args.student, "data": "synthetic",
                                                "limit": n, "mode": "answer", "format": name, "device": "cpu",
                                                "k": 64})
            if store.root.joinpath("captures", name).is_dir() is False:
                run_capture(cfg, store, logs=Path(tmp) / "logs")
            manifest, examples = captured_examples(store.root, name)
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(args.student)
            items = aligned_items(manifest, examples, tokenizer, 5.942267335064758, 1024,
                                  Strategy.model_validate(manifest["strategy"]))
            batches = [items[i:i + args.batch_size] for i in range(0, len(items), args.batch_size)]
            model = lora_model(args.student)
            model.train()
            optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=5e-6, momentum=0.9)
            if form == "ce":
                results[form] = time_steps(lambda b, m=model, o=optimizer: ce_step(m, b, o), batches)
            else:
                head = load_head(store.root, manifest) if form == "hidden" else None
                forward = TargetHidden(model)
                results[form] = time_steps(lambda b, m=model, f=forward, o=optimizer, h=head: kd_step(m, f, b, o, h),
                                           batches)
        base = results["ce"]
        print(f"{'step':28s} {'tokens/s':>9s} {'vs CE':>7s} {'KD overhead':>12s}")
        for form, rate in results.items():
            label = "plain CE (baseline)" if form == "ce" else f"LoRA KD, {form} teacher"
            overhead = "" if form == "ce" else f"{base / rate - 1:+.0%}"
            print(f"{label:28s} {rate:9.0f} {rate / base:7.2f} {overhead:>12s}")


if __name__ == "__main__":
    main()
