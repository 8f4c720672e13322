"""A distillation under several processes: the same recipe re-run by ``accelerate launch`` (GPUs, with a
shipped preset from ``kdtui/presets/accelerate/``) or ``torchrun`` (CPU/gloo), one process per rank.

Used by ``kdtui distill --launcher ...`` and by a distill job of the queue that asks for several GPUs.
The resolved settings travel in a TOML file, so every rank reads the same config (flags included) and a
launcher's own parser never sees kdtui's flags (it takes abbreviations such as ``--run`` for its own).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

from kdtui.config.distill import DistillConfig

LAUNCH_ONLY = ("launcher", "num_processes", "launcher_config")


def rank_config(cfg: DistillConfig) -> str:
    """The resolved config as a [distill] table, without the launch settings (a rank runs the recipe)."""
    lines = ["[distill]"]
    for key, value in cfg.model_dump().items():
        if value is None or key in LAUNCH_ONLY:
            continue
        lines.append(f"{key} = {json.dumps(value)}")  # JSON scalars and lists are valid TOML values
    return "\n".join(lines) + "\n"


def launch_command(cfg: DistillConfig, logs_dir: Path) -> list[str]:
    logs_dir.mkdir(parents=True, exist_ok=True)
    config = logs_dir / f"distill-{cfg.run.replace('/', '__').replace(':', '_')}.toml"
    config.write_text(rank_config(cfg))
    recipe = ["-m", "kdtui.cli", "distill", "--config", str(config)]
    if cfg.launcher == "accelerate":
        preset = resources.files("kdtui").joinpath(f"presets/accelerate/{cfg.launcher_config}.yaml")
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(preset),
                "--num_processes", str(cfg.num_processes), *recipe]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(cfg.num_processes), *recipe]


def run_launched(cfg: DistillConfig, store: Path, logs_dir: Path) -> int:
    """Run the launcher to its end; SIGTERM to this process reaches every rank (each stops at its next step
    and saves a checkpoint). Returns the launcher's exit code."""
    print(f"distill {cfg.run}: {cfg.launcher} with {cfg.num_processes} processes", file=sys.stderr, flush=True)
    env = dict(os.environ, KDTUI_STORE=str(store), KDTUI_LOGS=str(logs_dir))
    process = subprocess.Popen(launch_command(cfg, logs_dir), env=env)
    previous = signal.getsignal(signal.SIGTERM)

    def forward(signum: int, _frame: object) -> None:
        process.send_signal(signum)  # the launchers pass it on to their ranks

    signal.signal(signal.SIGTERM, forward)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
