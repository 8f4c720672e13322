"""``kdtui demo``: the study in miniature on SmolLM2-135M-Instruct, through the job queue, ending in the TUI.

It is ``kdtui run experiments/demo.toml`` with the demo's model folder filled in: the model as its
own teacher captured under two strategies, a short LoRA distillation from each, the fine-tune and
no-distil controls, and an evaluation of all four, as jobs for the detached worker. With the TUI,
the curves grow on the Training screen (F7) while the header and F8 show the jobs; with
``--no-tui`` it waits, prints the leaderboard and each stage's time, and stops the worker it started.
A second `kdtui demo` enqueues nothing new and reuses what the first one finished.

The data are the synthetic generator's one-step problems (``synthetic:SEED:1``): a 135M model
gets almost nothing of real GSM8K right, so differences between runs would be noise there.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from kdtui.cli.common import Parents, add_command, logs, open_store
from kdtui.errors import KdtuiError

TEST_DATA = "synthetic:0:1"


def demo_spec(model: Path, args: argparse.Namespace) -> Any:
    """experiments/demo.toml (shipped as a preset) with this machine's model and the command's sizes."""
    from importlib import resources

    from kdtui.jobs.experiment import ExperimentSpec

    data = tomllib.loads(resources.files("kdtui").joinpath("presets/demo.toml").read_text("utf-8"))
    data = dict(data.pop("experiment")) | data
    data["teacher"]["model"] = str(model)
    data["student"][0]["model"] = str(model)
    data["capture"]["limit"] = args.train
    data["distill"] |= {"max_steps": args.steps, "eval_size": min(8, args.train // 4)}
    data["eval"] |= {"limit": args.limit, "data": args.data}
    return ExperimentSpec.model_validate(data)


# Jobs at once: the two captures (then the distillations) of the demo's graph side by side, each on a share of
# the cores (the worker divides them), rather than one job at a time on all of them.
DEMO_SLOTS = 2


def cmd_demo(args: argparse.Namespace) -> int:
    from kdtui.cli.console import console, out, print_comparison, print_leaderboard
    from kdtui.jobs.daemon import worker_options
    from kdtui.jobs.submit import submit
    from kdtui.models.loading import check_model_path
    from kdtui.models.smollm import ensure_smollm2
    from kdtui.store.jobs import FINAL
    from kdtui.store.reads import leaderboard

    if args.model:
        check_model_path(args.model)  # bad input fails before anything is printed or created
    for flag, value in (("--limit", args.limit), ("--train", args.train), ("--steps", args.steps)):
        if value < 1:
            raise KdtuiError(f"{flag} {value}: give at least 1")
    store = open_store(args, create=True)
    console.rule("[bold]kdtui demo: the study in miniature")
    started = time.monotonic()
    model = Path(args.model).resolve() if args.model else ensure_smollm2(store.root, say=console.print)
    model_seconds = time.monotonic() - started
    spec = demo_spec(model, args)
    submitted = submit(spec, store, logs(args), worker_options(slots=DEMO_SLOTS, cpu=True))
    assert submitted.worker is not None
    console.print(f"model: {model}\n{len(submitted.jobs)} jobs ({len(submitted.added)} new): capture "
                  f"{', '.join(spec.strategies)} -> distil -> fine-tune and no-distil controls -> evaluate "
                  f"{args.limit} problems of {args.data}", markup=False)
    ours, pid = submitted.worker.started, submitted.worker.pid
    console.print(f"worker pid {pid} runs them (kdtui jobs, kdtui logs JOB -f)", markup=False)
    if not args.no_tui:
        from kdtui.tui.app import run_app

        return run_app(store.root, first_screen="training")
    last = ""
    try:
        while True:
            states = [j.state for j in store.jobs.all(spec.name)]
            line = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
            if line != last:
                console.print(f"[dim]{spec.name}: {line}[/]")
                last = line
            if all(s in FINAL for s in states):
                break
            time.sleep(1.0)
    finally:
        if ours:
            os.kill(pid, signal.SIGTERM)  # the worker this demo started leaves with it
    rows = leaderboard(store)
    # KD does not have to win; the distilled students are shown against the control that saw the same
    # solutions without a teacher, paired by question.
    control = next((r for r in rows if r.name.endswith("/fine-tune") or r.name.endswith("/fine-tune:eval")
                    or "fine-tune" in r.name.split("/")), None)
    print_leaderboard(rows)
    if control is not None:
        print_comparison(leaderboard(store, baseline=control.run_id), control.name)
    print_kd_terms(store, spec.name)
    timings = [("model", model_seconds), *((f"{kind} {name.removeprefix(spec.name + '/')}", seconds)
                                           for kind, name, seconds in store.jobs.stage_seconds(spec.name))]
    out.print("stage timings: " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in timings)
              + f"; wall {time.monotonic() - started:.0f}s", markup=False)
    out.print(f"store: {store.path} — kdtui tui: F7 training curves, F1 leaderboard, F8 jobs", markup=False)
    failed = [j for j in store.jobs.all(spec.name) if j.state != "done"]
    if failed:
        print(f"kdtui: error: {len(failed)} demo jobs did not finish ({failed[0].name}: {failed[0].state}); "
              f"see kdtui logs {failed[0].id}", file=sys.stderr)
        return 1
    return 0


def register(sub: Any, parents: Parents) -> None:
    demo = add_command(sub, "demo", cmd_demo, parents)
    demo.add_argument("--model", help="use this local model folder instead of SmolLM2-135M-Instruct")
    demo.add_argument("--data", default=TEST_DATA, help="test problems: FILE.jsonl, hub id or "
                      f"synthetic[:SEED[:STEPS]] (default: {TEST_DATA}, one-step problems a 135M model can solve)")
    demo.add_argument("--limit", type=int, default=32, help="test questions per run (default: 32)")
    demo.add_argument("--train", type=int, default=64, help="training problems per capture (default: 64, one "
                      "pass at the demo's 16 steps of 4)")
    demo.add_argument("--steps", type=int, default=16, help="optimiser steps per distillation (default: 16)")
    demo.add_argument("--no-tui", dest="no_tui", action="store_true", help="wait for the jobs, print the "
                      "leaderboard and timings, stop the worker; do not open the TUI")


def print_kd_terms(store: Any, experiment: str) -> None:
    """Each distil run's last-step loss split into its two terms, so the teacher's share is visible: alpha * CE
    and (1 - alpha) * D * T^2 (the fine-tune control has no KD term)."""
    from kdtui.cli.console import print_table

    rows = []
    for run in store.runs.all():
        if run.kind != "distill" or not run.name.startswith(experiment + "/"):
            continue
        curve = store.train_metrics.curve(run.id)
        if not curve:
            continue
        last, cfg = curve[-1], run.config
        alpha, temperature = float(cfg.get("alpha", 1.0)), float(cfg.get("temperature", 1.0))
        ce, divergence = last.get("ce"), last.get("divergence")
        if ce is None:
            continue
        kd = (1 - alpha) * (divergence or 0.0) * temperature ** 2
        share = kd / (alpha * ce + kd) if alpha * ce + kd > 0 else 0.0
        rows.append((run.name, str(last["step"]), f"{alpha * ce:.4f}", f"{kd:.4f}", f"{share:.0%}",
                     "" if last.get("kl_full") is None else f"{last['kl_full']:.4f}"))
    if rows:
        print_table(["run (last step)", "step", "α·CE", "(1-α)·D·T²", "KD share", "KL(t‖s) full"], rows)
