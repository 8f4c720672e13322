"""``kdtui reextract`` and ``kdtui import``: extraction again without regenerating, and outside predictions."""

from __future__ import annotations

import argparse
from typing import Any

from kdtui.cli.common import Parents, add_command, logs, open_store
from kdtui.config.imports import ImportConfig
from kdtui.extract import PROTOCOLS


def cmd_reextract(args: argparse.Namespace) -> int:
    from kdtui.cli.console import out
    from kdtui.recipes.reextract import run_reextract

    result = run_reextract(open_store(args), args.run, args.protocol)
    before, after = result.before, result.after
    out.print(f"run {result.run!r}: {result.n} responses re-extracted with {result.protocol}; {result.changed} "
              f"automatic values changed", markup=False)
    out.print(f"accuracy {before.accuracy:.1%} -> {after.accuracy:.1%} ({after.accuracy - before.accuracy:+.1%}); "
              f"pending reviews {before.pending} -> {after.pending}; triage decisions kept", markup=False)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from kdtui.cli.console import out
    from kdtui.recipes.import_run import run_import

    cfg = ImportConfig.from_sources(vars(args))
    done = run_import(cfg, open_store(args, create=True), logs(args))
    out.print(f"imported {done.count} predictions as run {cfg.run!r} ({cfg.protocol} extraction): accuracy "
              f"{done.accuracy:.1%} before triage{done.repairs.note()}; `kdtui` to review and compare", markup=False)
    return 0


def register(sub: Any, parents: Parents) -> None:
    again = add_command(sub, "reextract", cmd_reextract, parents)
    again.add_argument("run", help="run name")
    again.add_argument("--protocol", choices=list(PROTOCOLS), default="default",
                       help="default, study-rules (alias seed), or study: the study's code exactly, over the run "
                            "in the data's order (default: default)")
    imp = add_command(sub, "import", cmd_import, parents)
    imp.add_argument("file", help="the file to import")
    ImportConfig.add_flags(imp)
