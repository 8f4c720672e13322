"""``kdtui distill``: train a student from a teacher capture (or the fine-tune control)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kdtui.cli.common import Parents, add_command, logs, open_recipe_store
from kdtui.config.distill import DistillConfig
from kdtui.render import duration


def cmd_distill(args: argparse.Namespace) -> int:
    from kdtui.cli.console import console
    from kdtui.recipes.distill import run_distill

    cfg = DistillConfig.from_sources(vars(args), args.config)
    store = open_recipe_store(args)
    if cfg.launcher != "none" and "LOCAL_RANK" not in os.environ:
        from kdtui.recipes.launch import run_launched

        return run_launched(cfg, store.root, logs(args))

    def show(row: dict[str, Any]) -> None:
        kl = f", KL {row['kl_full']:.4f}" if row.get("kl_full") == row.get("kl_full") and row.get("kl_full") \
            is not None else ""
        print(f"distill {cfg.run}: step {row['step']}/{row['total_steps']}, loss {row['loss']:.4f} "
              f"(CE {row['ce']:.4f}{kl}), lr {row['lr']:.2e}, {row['tokens_per_s'] or 0:.0f} tok/s, "
              f"ETA {duration(row['eta_s']) or '?'}", file=sys.stderr, flush=True)

    result = run_distill(cfg, store, logs(args), progress=show)
    where = f"; adapter in {result.adapter}" if result.adapter else f"; resume with --resume ({result.folder})"
    eval_part = f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else ""
    console.print(f"run {result.run!r}: {result.steps} steps, last loss {result.final_loss:.4f}{eval_part}{where}",
                  markup=False)
    if result.metrics_pending:
        console.print("warning: the store stayed busy; the curves wait in the run's metrics.jsonl and are ingested "
                      "on the next --resume", markup=False, style="yellow")
    return 0


def register(sub: Any, parents: Parents) -> None:
    parser = add_command(sub, "distill", cmd_distill, parents)
    parser.add_argument("--config", default=None, help="TOML file with a [distill] table (flags override it, and it "
                        "overrides the preset)")
    DistillConfig.add_flags(parser)
