"""``kdtui capture``: capture teacher distributions, or ``kdtui capture inspect NAME``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kdtui.cli.common import Parents, add_command, logs, open_recipe_store, open_store
from kdtui.config.capture import CaptureConfig
from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError


def cmd_capture(args: argparse.Namespace) -> int:
    if args.action:
        if args.action[0] == "merge" and len(args.action) == 2:
            return _merge(args, args.action[1])
        if args.action[0] != "inspect" or len(args.action) != 2:
            raise KdtuiError("usage: kdtui capture inspect NAME [--against TEACHER] | kdtui capture merge NAME "
                             "--replicas N  (or kdtui capture --teacher ...)")
        return _inspect(args, args.action[1])
    from kdtui.cli.console import console
    from kdtui.recipes.capture import run_capture

    cfg = CaptureConfig.from_sources(vars(args), args.config)

    def show(state: dict[str, Any]) -> None:
        rest = state["total"] - state["done"]
        eta = f"{rest / state['examples_per_s']:.0f}s" if state["examples_per_s"] else "?"
        print(f"capture {cfg.name}: {state['done']}/{state['total']} examples, {state['examples_per_s']:.2f} ex/s, "
              f"{state['tokens_per_s']:.0f} tok/s, ETA {eta}", file=sys.stderr, flush=True)

    manifest = run_capture(cfg, open_recipe_store(args), progress=show, logs=logs(args))
    size = sum(s["bytes"] for s in manifest["shards"])
    console.print(f"capture {cfg.name!r}: {manifest['n_examples']} examples, {manifest['n_tokens']} tokens, "
                  f"{size / 1e6:.2f} MB ({size / max(manifest['n_tokens'], 1):.1f} bytes/token)", markup=False)
    _warn_if_lossy(manifest)
    return 0


def _warn_if_lossy(manifest: dict[str, Any]) -> None:
    """Say at capture time what distill will refuse: a top-k that keeps under the floor at a stored T."""
    from kdtui.cli.console import console
    from kdtui.config.distill import KEPT_MASS_FLOOR
    from kdtui.store.captures import manifest_kept_mass

    kept = manifest_kept_mass(manifest)
    if manifest["format"] != "topk" or kept is None:
        return
    low = [f"T={float(t):g}" for t, m in zip(manifest["temperatures"], kept, strict=True) if m < KEPT_MASS_FLOOR]
    if low:
        console.print(f"note: top-{manifest['k']} keeps " + kept_mass_text(manifest["temperatures"], kept) +
                      f"; distill at {', '.join(low)} is refused (use --format hidden for exact targets at any T)",
                      markup=False)


def _merge(args: argparse.Namespace, name: str) -> int:
    from kdtui.captures.replicas import merge
    from kdtui.cli.console import console

    replicas = getattr(args, "replicas", None)
    if not replicas or replicas < 2:
        raise KdtuiError("kdtui capture merge NAME needs --replicas N (the N the replicas were captured with)")
    store = open_store(args, create=True)
    manifest = merge(store.root, name, replicas)
    store.captures.register(name, manifest, StoreLayout(store.root).capture(name))
    console.print(f"capture {name!r}: {replicas} replicas joined, {manifest['n_examples']} examples in "
                  f"{len(manifest['shards'])} shards", markup=False)
    return 0


def _inspect(args: argparse.Namespace, name: str) -> int:
    from kdtui.captures.inspect import fidelity, summary
    from kdtui.cli.console import print_table
    from kdtui.store.reads import captures

    store = open_store(args)
    root = store.root
    info = summary(root, name, verify=args.verify)
    manifest = info["manifest"]
    # the store's state (the manifest and the capture's process together: a killed capture is "lost"); a folder
    # the store never registered has only its manifest's word
    state = next((c.state for c in captures(store) if c.name == name), f"{manifest['status']} (not in the store)")
    rows = [(key, manifest[key]) for key in ("teacher", "backend", "mode", "format", "k", "temperatures",
                                             "value_dtype", "n_examples", "n_tokens")]
    rows.append(("state", state))
    rows += [("strategy", manifest["strategy"]["name"]), ("tokenizer", manifest["tokenizer"]),
             ("shards", len(manifest["shards"])), ("bytes", info["bytes"]),
             ("bytes/token", f"{info['bytes_per_token']:.2f}"),
             ("shards checked", f"{info['verified']}: " + ("ok" if not info["problems"] else "DAMAGED"))]
    if info["kept_mass"] is not None:
        rows.append(("teacher mass kept", kept_mass_text(manifest["temperatures"], info["kept_mass"])))
    check = manifest.get("head_check")
    if check is not None:
        rows.append(("head check", f"{'passed' if check['passed'] else 'FAILED'}: max |Δlogit| "
                                   f"{check['max_abs_dlogit']:.2e}, KL " + ", ".join(
                                       f"{v:.1e} at T={float(t):g}" for t, v in check["kl"].items())))
    print_table(["field", "value"], rows)
    if info["problems"]:
        raise KdtuiError(f"capture {name!r} is damaged: {'; '.join(info['problems'][:3])}; delete its folder and "
                         "rerun the capture")
    if args.against:
        backend = getattr(args, "backend", None) or manifest["backend"]
        table = fidelity(root, name, args.against, backend, args.sample)
        if manifest["format"] == "hidden":
            print_table(["T", "max |Δlogit| (live vs h·Wᵀ)", "mean KL(full‖reconstructed)"],
                        [(f"{r['temperature']:g}", f"{r['max_abs_dlogit']:.2e}", f"{r['kl']:.2e}") for r in table])
            return 0
        print_table(["T", "mean top-k mass", "KL(full‖top-k+tail bucket) (a lower bound)",
                     "KL(full‖top-k+uniform tail)"],
                    [(f"{r['temperature']:g}", f"{r['topk_mass']:.4f}", f"{r['kl_bucket']:.2e}",
                      f"{r['kl_uniform_tail']:.4f}") for r in table])
    return 0


def kept_mass_text(temperatures: list[float], kept: list[float]) -> str:
    """"99.2% at T=1 · 0.8% at T=5.94 (under the 90% floor)": what a top-k capture keeps of its teacher."""
    from kdtui.config.distill import KEPT_MASS_FLOOR

    return " · ".join(f"{m:.1%} at T={float(t):g}" + (f" (under the {KEPT_MASS_FLOOR:.0%} floor)"
                                                      if m < KEPT_MASS_FLOOR else "")
                      for t, m in zip(temperatures, kept, strict=True))


def register(sub: Any, parents: Parents) -> None:
    cap = add_command(sub, "capture", cmd_capture, parents)
    cap.add_argument("action", nargs="*", help="inspect NAME: show a capture (and its fidelity with --against); "
                     "merge NAME --replicas N: join a data-parallel capture's replicas")
    cap.add_argument("--config", default=None, help="TOML file with a [capture] table (flags override it)")
    CaptureConfig.add_flags(cap)
    cap.add_argument("--against", help="inspect: teacher to measure fidelity against")
    cap.add_argument("--sample", type=int, default=8, help="inspect: examples to measure (default: 8)")
    cap.add_argument("--verify", action="store_true", help="inspect: also check every shard's sha256 (sizes are "
                     "always checked)")
