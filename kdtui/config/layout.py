"""Every path under a store, from one place.

::

    store/
      kdtui.duckdb                 the database (+ .lock, .gate beside it)
      worker.lock                  held by the running worker daemon
      captures/<capture>/          teacher captures: manifest.json, shards, head.safetensors
      distill/<run folder>/        one distillation run: kdtui.json, checkpoints/, adapter/ or model/, merged/
      models/<name>/               models kdtui converted (the demo's SmolLM2)
      downloads/                   files fetched to build them
      exports/                     SQL exports and reports written from the TUI
      screenshots/                 TUI screenshots
      sql_history.jsonl            the SQL screen's history

A run name may hold ``/`` and ``:`` (``demo/SmolLM2/plain``); its folder is the name with ``%``, ``/`` and ``:``
percent-encoded (``demo%2FSmolLM2%2Fplain``), so two run names never share a folder and a folder name reads back
to its run (:meth:`StoreLayout.run_of`). Stores from before this layout named folders with ``/`` as ``__`` and ``:``
as ``_``; such a folder is still found, when its ``kdtui.json`` names the run asking for it.

No heavy imports: planning a job (``kdtui run --dry-run``, the TUI's enqueue) asks for paths without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from kdtui.config.names import inside

DB_NAME = "kdtui.duckdb"
RUN_INFO = "kdtui.json"  # in a distill run folder and in its adapter: the run, its strategy and config


def output_name(lora: bool) -> str:
    """The folder a finished distill run leaves in its run folder: its PEFT adapter, or the whole model."""
    return "adapter" if lora else "model"


@dataclass(frozen=True)
class StoreLayout:
    """The paths of one store; nothing here touches the disk except the legacy run-folder lookup."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    @property
    def worker_lock(self) -> Path:
        return self.root / "worker.lock"

    @property
    def captures(self) -> Path:
        return self.root / "captures"

    def capture(self, name: str) -> Path:
        """``captures/<name>``, refused if the name would lead out of the store."""
        return inside(self.root, self.captures / name)

    @property
    def distill_runs(self) -> Path:
        return self.root / "distill"

    def run_folder(self, run: str) -> Path:
        """``distill/<run, percent-encoded>``; a pre-layout folder (``a__b``) when that one is this run's."""
        folder = self.distill_runs / run_folder_name(run)
        if folder.exists():
            return folder
        legacy = self.distill_runs / run.replace("/", "__").replace(":", "_")
        return legacy if legacy != folder and run_info_owner(legacy) == run else folder

    def trained_output(self, run: str, lora: bool) -> Path:
        """What a finished distill run leaves to evaluate: ``adapter/`` (LoRA) or ``model/``."""
        return self.run_folder(run) / output_name(lora)

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def screenshots(self) -> Path:
        return self.root / "screenshots"

    @property
    def sql_history(self) -> Path:
        return self.root / "sql_history.jsonl"

    @staticmethod
    def run_of(folder_name: str) -> str:
        """The run name a ``distill/`` folder (in this layout) belongs to: the inverse of the folder mapping."""
        return unquote(folder_name)


def run_folder_name(run: str) -> str:
    """One path component per run name, one-to-one: ``/`` and ``:`` percent-encoded (a run name holds no
    ``%``), every other run-name character kept, so a name without them is its own folder."""
    return quote(run, safe="+")


def run_info_owner(folder: Path) -> str | None:
    """The run a run folder's ``kdtui.json`` names, or None (no folder, no file, unreadable)."""
    try:
        owner = json.loads((folder / RUN_INFO).read_text()).get("run")
    except (OSError, ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None
