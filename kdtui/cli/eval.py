"""``kdtui eval``: evaluate a model on GSM8K into the store."""

from __future__ import annotations

import argparse
from typing import Any

from kdtui.cli.common import Parents, add_command, logs, open_recipe_store
from kdtui.config.eval import EvalConfig


def cmd_eval(args: argparse.Namespace) -> int:
    from kdtui.cli.console import console, eval_progress
    from kdtui.recipes.evaluate import run_eval

    cfg = EvalConfig.from_sources(vars(args), args.config)
    store = open_recipe_store(args)
    with eval_progress(cfg.run or cfg.prompt) as update:
        result = run_eval(cfg, store, logs(args), progress=update)
    console.print(f"run {result.run!r}: {result.generated} new of {result.n} items, "
                  f"{result.new_tokens} tokens in {result.seconds:.1f}s", markup=False)
    if result.warnings.get("inputs_truncated"):
        console.print(f"warning: {result.warnings['inputs_truncated']} prompts were longer than the model's context "
                      "and lost their beginning (--overlong refuse stops instead)", markup=False, style="yellow")
    if args.show_leaderboard:
        from kdtui.cli.results import cmd_leaderboard

        cmd_leaderboard(args)
    return 0


def register(sub: Any, parents: Parents) -> None:
    ev = add_command(sub, "eval", cmd_eval, parents)
    ev.add_argument("--config", default=None, help="TOML file with an [eval] table (flags override it)")
    EvalConfig.add_flags(ev)
    ev.add_argument("--leaderboard", dest="show_leaderboard", action="store_true",
                    help="print the leaderboard afterwards")
