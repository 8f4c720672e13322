"""What a recipe or a job needs of a store: its folder, where its DuckDB file is opened, and its repositories.

A local :class:`~kdtui.store.Store` is one; so is a Ray job's ``RemoteStore`` (``kdtui.jobs.ray_store``), whose
repositories are the same classes with every public method run in the store's actor on the head. Recipes and
job kinds take a ``StoreAccess``: they never open a session themselves, so they run unchanged on either. Front
ends that read (leaderboard, SQL, the TUI) take the local ``Store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kdtui.store.captures import CapturesRepo
    from kdtui.store.jobs import JobsRepo
    from kdtui.store.metrics import TrainMetricsRepo
    from kdtui.store.predictions import PredictionsRepo
    from kdtui.store.runs import RunsRepo
    from kdtui.store.triage import TriageRepo


class StoreAccess(Protocol):
    """A store as recipes and jobs use it (read-only attributes, so a property or a plain attribute does)."""

    @property
    def root(self) -> Path:
        """The store folder: captures, adapters, logs and spills are written under it."""

    @property
    def path(self) -> Path:
        """The DuckDB file."""

    @property
    def opened_on(self) -> str:
        """Where the DuckDB file is opened, in words (this machine, or the worker's node through Ray)."""

    @property
    def runs(self) -> RunsRepo: ...

    @property
    def predictions(self) -> PredictionsRepo: ...

    @property
    def triage(self) -> TriageRepo: ...

    @property
    def captures(self) -> CapturesRepo: ...

    @property
    def train_metrics(self) -> TrainMetricsRepo: ...

    @property
    def jobs(self) -> JobsRepo: ...
