"""One way work enters the queue, for `kdtui run`, `kdtui demo` and the TUI's enqueue alike: an experiment
expanded into jobs, the new ones enqueued, and the store's worker started with the options asked for (a worker
already running without them is reported, never silently reused as if it had them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kdtui.jobs.experiment import ExperimentSpec
from kdtui.jobs.graph import JobSpec, expand

if TYPE_CHECKING:  # the worker's module loads where one is started, not for a --dry-run plan
    from kdtui.jobs.daemon import WorkerStart
    from kdtui.store import Store


@dataclass(frozen=True)
class Submitted:
    """What a submission did: the experiment's jobs, which of them were new, and the worker that runs them."""

    jobs: list[JobSpec]
    added: list[str]
    worker: WorkerStart | None  # None: asked not to start one

    def summary(self, name: str) -> str:
        text = f"experiment {name!r}: {len(self.jobs)} jobs, {len(self.added)} new in the queue"
        if self.worker is not None:
            text += f"; worker pid {self.worker.pid}" + ("" if self.worker.started else " (already running)")
        return text

    def ignored_note(self) -> str | None:
        return None if self.worker is None else self.worker.ignored_note()

    def replaced_note(self) -> str | None:
        return None if self.worker is None else self.worker.replaced_note()


def plan(spec: ExperimentSpec, store: Store) -> list[JobSpec]:
    """The experiment's jobs, dependencies first (nothing enqueued)."""
    return expand(spec, store.root)


def submit(spec: ExperimentSpec, store: Store, logs: Path, worker: list[str] | None,
           restart: bool = False) -> Submitted:
    """Enqueue the experiment's new jobs; start the store's worker with ``worker`` options (None: start none).
    A worker already running without them is kept and reported, or with ``restart`` replaced by one with them."""
    from kdtui.jobs.daemon import start_detached

    jobs = plan(spec, store)
    added = store.jobs.enqueue(jobs)
    started = None if worker is None else start_detached(store.root, logs, worker, restart)
    return Submitted(jobs, added, started)
