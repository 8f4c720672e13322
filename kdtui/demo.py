"""``kdtui demo``: the whole pipeline on a small real model, ending in the TUI."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kdtui.backend.config import EvalConfig
from kdtui.backend.data import SYNTHETIC, hub_reachable
from kdtui.backend.evaluate import run_eval
from kdtui.backend.smollm import MODEL_DIR_NAME, ensure_smollm2
from kdtui.backend.store import Store
from kdtui.console import console, eval_progress, print_leaderboard
from kdtui.settings import logs_dir, store_dir

DEMO_PROMPTS = ("answer-only", "plain")


def _pick_data(requested: str | None) -> str:
    if requested:
        return requested
    if os.environ.get("HF_DATASETS_OFFLINE") != "1" and hub_reachable():
        return "openai/gsm8k"
    console.print("[yellow]the Hugging Face hub is not reachable: using synthetic GSM8K-style problems "
                  "(pass --data FILE.jsonl for real ones)[/]")
    return SYNTHETIC


def run_demo(args: argparse.Namespace) -> int:
    root = store_dir(args.store)
    store = Store(root)
    console.rule("[bold]kdtui demo")
    model = Path(args.model) if args.model else ensure_smollm2(root, say=console.print)
    model_name = MODEL_DIR_NAME if not args.model else model.name
    data = _pick_data(args.data)
    console.print(f"model: {model}\ndata:  {data} (first {args.limit} questions)")
    for prompt in DEMO_PROMPTS:
        cfg = EvalConfig(model=str(model), data=data, limit=args.limit, prompt=prompt, batch_size=16,
                         run=f"demo/{model_name}/{prompt}",
                         max_new_tokens=None if prompt == "answer-only" else 128)
        with eval_progress(f"{prompt:>11s}") as update:
            run_eval(cfg, store, logs_dir(args.logs), progress=update)
    print_leaderboard(store.leaderboard())
    console.print(f"store: {store.path}  — try: kdtui sql \"SELECT rule, count(*) FROM predictions GROUP BY 1\"")
    if args.no_tui:
        return 0
    from kdtui.app import run_app

    return run_app(root)
