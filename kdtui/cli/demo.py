"""``kdtui demo``: the whole pipeline on a small real model, ending in the TUI."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from kdtui.cli.common import Parents, add_command, logs, open_store
from kdtui.errors import KdtuiError

DEMO_PROMPTS = ("answer-only", "plain")


def _pick_data(requested: str | None) -> str:
    from kdtui.cli.console import console
    from kdtui.data.gsm8k import SYNTHETIC, hub_reachable

    if requested:
        return requested
    if os.environ.get("HF_DATASETS_OFFLINE") != "1" and hub_reachable():
        return "openai/gsm8k"
    console.print("[yellow]the Hugging Face hub is not reachable: using synthetic GSM8K-style problems "
                  "(pass --data FILE.jsonl for real ones)[/]")
    return SYNTHETIC


def cmd_demo(args: argparse.Namespace) -> int:
    from kdtui.cli.console import console, eval_progress, print_leaderboard
    from kdtui.config.eval import EvalConfig
    from kdtui.models.loading import check_model_path
    from kdtui.models.smollm import MODEL_DIR_NAME, ensure_smollm2
    from kdtui.recipes.evaluate import run_eval
    from kdtui.store.reads import leaderboard

    if args.model:
        check_model_path(args.model)  # bad input fails before anything is printed or created
    if args.limit < 1:
        raise KdtuiError(f"--limit {args.limit}: give at least 1 question per prompt")
    store = open_store(args, create=True)
    root = store.root
    console.rule("[bold]kdtui demo")
    model = Path(args.model) if args.model else ensure_smollm2(root, say=console.print)
    model_name = MODEL_DIR_NAME if not args.model else model.name
    data = _pick_data(args.data)
    console.print(f"model: {model}\ndata:  {data} (first {args.limit} questions)", markup=False)
    for prompt in DEMO_PROMPTS:
        cfg = EvalConfig(model=str(model), data=data, limit=args.limit, prompt=prompt, batch_size=16,
                         run=f"demo/{model_name}/{prompt}",
                         max_new_tokens=None if prompt == "answer-only" else 128)
        with eval_progress(f"{prompt:>11s}") as update:
            run_eval(cfg, store, logs(args), progress=update)
    print_leaderboard(leaderboard(store))
    console.print(f"store: {store.path}  — try: kdtui sql \"SELECT rule, count(*) FROM predictions GROUP BY 1\"",
                  markup=False)
    if args.no_tui:
        return 0
    from kdtui.tui.app import run_app

    return run_app(root)


def register(sub: Any, parents: Parents) -> None:
    demo = add_command(sub, "demo", "the whole pipeline on SmolLM2-135M-Instruct, then the TUI", cmd_demo, parents)
    demo.add_argument("--model", help="use this local model folder instead of SmolLM2-135M-Instruct")
    demo.add_argument("--data", help="FILE.jsonl or hub id (default: the hub if reachable, else synthetic)")
    demo.add_argument("--limit", type=int, default=16, help="questions per prompt (default: 16)")
    demo.add_argument("--no-tui", dest="no_tui", action="store_true", help="do not open the TUI at the end")
