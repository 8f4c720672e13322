"""``kdtui capture``: capture teacher distributions, or inspect a capture."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from kdtui.errors import KdtuiError
from kdtui.settings import store_dir


def cmd_capture(args: argparse.Namespace) -> int:
    if args.action:
        if args.action[0] != "inspect" or len(args.action) != 2:
            raise KdtuiError("usage: kdtui capture inspect NAME [--against TEACHER]  (or kdtui capture --teacher ...)")
        return _inspect(args, args.action[1])
    from kdtui.backend.capture import CaptureConfig, run_capture
    from kdtui.backend.store import Store
    from kdtui.console import console

    fields = {k: v for k, v in vars(args).items() if k in CaptureConfig.model_fields and v is not None}
    if "temperatures" in fields:
        try:
            fields["temperatures"] = [float(t) for t in str(fields["temperatures"]).split(",") if t.strip()]
        except ValueError:
            raise KdtuiError(f"--temperatures takes numbers separated by commas, got {args.temperatures!r}") from None
    if "teacher" not in fields or "name" not in fields:
        raise KdtuiError("kdtui capture needs --teacher PATH and --name NAME")
    try:
        cfg = CaptureConfig.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise KdtuiError(f"--{'-'.join(str(p) for p in first['loc'])}: {first['msg']}") from None

    def show(state: dict[str, Any]) -> None:
        rest = state["total"] - state["done"]
        eta = rest / state["examples_per_s"] if state["examples_per_s"] else float("nan")
        print(f"capture {cfg.name}: {state['done']}/{state['total']} examples, {state['examples_per_s']:.2f} ex/s, "
              f"{state['tokens_per_s']:.0f} tok/s, ETA {eta:.0f}s", file=sys.stderr, flush=True)

    manifest = run_capture(cfg, Store(store_dir(args.store)), progress=show)
    size = sum(s["bytes"] for s in manifest["shards"])
    console.print(f"capture {cfg.name!r}: {manifest['n_examples']} examples, {manifest['n_tokens']} tokens, "
                  f"{size / 1e6:.2f} MB ({size / max(manifest['n_tokens'], 1):.1f} bytes/token)")
    return 0


def _inspect(args: argparse.Namespace, name: str) -> int:
    from kdtui.backend.capture_inspect import fidelity, summary
    from kdtui.console import print_table

    root = store_dir(args.store)
    info = summary(root, name)
    manifest = info["manifest"]
    rows = [(key, manifest[key]) for key in ("teacher", "backend", "mode", "format", "k", "temperatures",
                                             "value_dtype", "n_examples", "n_tokens", "status")]
    rows += [("strategy", manifest["strategy"]["name"]), ("tokenizer", manifest["tokenizer"]),
             ("shards", len(manifest["shards"])), ("bytes", info["bytes"]),
             ("bytes/token", f"{info['bytes_per_token']:.2f}")]
    print_table(["field", "value"], rows)
    if args.against:
        table = fidelity(root, name, args.against, args.backend or manifest["backend"], args.sample)
        print_table(["T", "mean top-k mass", "KL(full‖top-k+tail bucket)", "KL(full‖top-k+uniform tail)"],
                    [(f"{r['temperature']:g}", f"{r['topk_mass']:.4f}", f"{r['kl_bucket']:.2e}",
                      f"{r['kl_uniform_tail']:.4f}") for r in table])
    return 0


def register(sub: argparse._SubParsersAction, add_store_flags: Callable[[argparse.ArgumentParser], None],
             ) -> None:
    cap = sub.add_parser("capture", help="capture teacher distributions (or: capture inspect NAME)")
    add_store_flags(cap)
    cap.add_argument("action", nargs="*", help="inspect NAME")
    cap.add_argument("--teacher", help="teacher model folder")
    cap.add_argument("--backend", choices=["hf", "exllamav2"])
    cap.add_argument("--name", help="capture name (store/captures/NAME); rerun to resume")
    cap.add_argument("--strategy", help="base, teacher, ai-to-ai, confidence, or from --strategies-file")
    cap.add_argument("--strategies-file", dest="strategies_file")
    cap.add_argument("--mode", choices=["prompt", "answer", "generate"])
    cap.add_argument("--data", help="hub id, GSM8K .jsonl, or synthetic")
    cap.add_argument("--split")
    cap.add_argument("--limit", type=int)
    cap.add_argument("--offset", type=int)
    cap.add_argument("--format", choices=["topk", "dense"])
    cap.add_argument("--k", type=int)
    cap.add_argument("--temperatures", help="comma-separated, e.g. 1,5.94")
    cap.add_argument("--value-dtype", dest="value_dtype", choices=["float16", "bfloat16"])
    cap.add_argument("--examples-per-shard", dest="examples_per_shard", type=int)
    cap.add_argument("--batch-size", dest="batch_size", type=int)
    cap.add_argument("--max-new-tokens", dest="max_new_tokens", type=int)
    cap.add_argument("--cache-type", dest="cache_type", choices=["FP16", "Q8", "Q6", "Q4"])
    cap.add_argument("--device")
    cap.add_argument("--against", help="inspect: teacher to measure fidelity against")
    cap.add_argument("--sample", type=int, default=8, help="inspect: examples to measure")
    cap.set_defaults(handler=cmd_capture)

