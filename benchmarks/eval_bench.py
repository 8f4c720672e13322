"""Generated tokens/s: ``kdtui eval`` at batch 8 vs the study's one-question-at-a-time loop.

    python benchmarks/eval_bench.py [--model store/models/SmolLM2-135M-Instruct] [--n 32] [--max-new-tokens 96]

Both sides use the same model, the same questions, greedy decoding and the same
token budget; tokens are the new tokens up to and including EOS.  Target: >= 3x.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kdtui.config.eval import EvalConfig
from kdtui.data.gsm8k import load_problems
from kdtui.models.loading import load_model
from kdtui.recipes.evaluate import run_eval
from kdtui.store import Store

DEFAULT_MODEL = Path("store/models/SmolLM2-135M-Instruct")


def baseline(model_dir: str, questions: list[str], max_new_tokens: int) -> tuple[int, float]:
    """The notebook way: one question, one generate call."""
    import torch

    loaded = load_model(model_dir)
    tok, model = loaded.tokenizer, loaded.model
    eos = tok.eos_token_id
    tokens = 0
    start = time.perf_counter()
    for question in questions:
        enc = tok(question, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=eos)
        new = out[0, enc["input_ids"].shape[1]:].tolist()
        tokens += new.index(eos) + 1 if eos in new else len(new)
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    if not Path(args.model, "config.json").is_file():
        raise SystemExit(f"no model at {args.model}; run `kdtui demo --no-tui` once, or pass --model")
    problems = load_problems(args.data, args.n)
    base_tokens, base_seconds = baseline(args.model, [p.question for p in problems], args.max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = EvalConfig(model=args.model, data=args.data, limit=args.n, batch_size=args.batch_size,
                         max_new_tokens=args.max_new_tokens, run="bench")
        result = run_eval(cfg, Store(Path(tmp) / "store"), Path(tmp) / "logs")
    base_rate = base_tokens / base_seconds
    rate = result.new_tokens / result.seconds
    print(f"{args.n} questions, {Path(args.model).name}, greedy, max {args.max_new_tokens} new tokens")
    print(f"{'method':34s} {'tokens':>7s} {'seconds':>8s} {'tokens/s':>9s} {'ratio':>6s}")
    print(f"{'one question at a time (baseline)':34s} {base_tokens:7d} {base_seconds:8.1f} {base_rate:9.1f} "
          f"{1.0:6.2f}")
    print(f"{f'kdtui eval, batch {args.batch_size}':34s} {result.new_tokens:7d} {result.seconds:8.1f} "
          f"{rate:9.1f} {rate / base_rate:6.2f}")


if __name__ == "__main__":
    main()
