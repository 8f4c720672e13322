"""The head's store, reached from Ray jobs through one Ray actor: results stream back, DuckDB stays local.

A job on another node must not open the DuckDB file over shared storage (file locks over NFS are not
to be trusted, and DuckDB wants a local file). With the Ray executor the worker starts one detached
actor, :class:`StoreService`, pinned to its own node (the one whose disk holds the store); a job gets
its name in ``$KDTUI_STORE_ACTOR`` and talks to a :class:`RemoteStore` whose repositories forward every
call (``store.predictions.add(...)``, ``store.jobs.finish(...)``) to the actor. Reads, writes,
resumption and the writer's keep-and-retry behave as with a local store: the actor opens the same short
locked sessions any kdtui process opens.

Files (capture shards, adapters, per-run metrics files, job logs) are still written under the store
folder, so that folder must be on storage every node sees, at the same path.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError, first_line
from kdtui.store.access import StoreAccess
from kdtui.store.captures import CapturesRepo
from kdtui.store.jobs import JobsRepo
from kdtui.store.metrics import TrainMetricsRepo
from kdtui.store.predictions import PredictionsRepo
from kdtui.store.runs import RunsRepo
from kdtui.store.triage import TriageRepo

NAMESPACE = "kdtui"
ENV = "KDTUI_STORE_ACTOR"
# The repositories a job reaches through the actor: every one StoreAccess names.
REPOS = ("runs", "predictions", "triage", "captures", "train_metrics", "jobs")


def actor_name(root: Path) -> str:
    """One actor per store folder (and per cluster): named by the folder's absolute path."""
    return "kdtui-store-" + hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]


class StoreService:
    """Runs inside the actor: a plain :class:`~kdtui.store.Store` on the head's disk."""

    def __init__(self, root: str) -> None:
        from kdtui.store import Store

        self.store = Store(root)
        self.root = root

    def call(self, repo: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if repo not in REPOS:
            raise KdtuiError(f"the store actor serves {', '.join(REPOS)}, not {repo!r}")
        return getattr(getattr(self.store, repo), method)(*args, **kwargs)

    def ping(self) -> str:
        return self.root


class _Forwarded:
    """Mixed in before a repository class: every public method of the repository runs in the store's actor.

    ``RemoteRuns(actor, "runs")`` is a :class:`RunsRepo` (typed and ``isinstance`` as one) whose methods go
    through the actor; its own ``__init__`` never opens a local session, so no method can reach DuckDB here.
    """

    def __init__(self, actor: Any, repo: str) -> None:
        self._actor, self._repo = actor, repo

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        if not callable(getattr(type(self), name, None)):
            raise AttributeError(f"{type(self).__name__} forwards the repository's methods, not {name!r}")
        return self._forward(name)

    def _forward(self, method: str) -> Any:
        actor, repo = self._actor, self._repo

        def forward(*args: Any, **kwargs: Any) -> Any:
            import ray

            try:
                return ray.get(actor.call.remote(repo, method, args, kwargs))
            except ray.exceptions.RayTaskError as exc:
                # the store's own error (busy, refused identity, ...) with its one line, not Ray's traceback
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, Exception) else KdtuiError(first_line(exc))) from None
            except ray.exceptions.RayError as exc:  # the actor or its node is gone
                raise KdtuiError(f"the store actor is unreachable ({first_line(exc)[:200]})") from None

        return forward


class RemoteRuns(_Forwarded, RunsRepo):
    pass


class RemotePredictions(_Forwarded, PredictionsRepo):
    pass


class RemoteTriage(_Forwarded, TriageRepo):
    pass


class RemoteCaptures(_Forwarded, CapturesRepo):
    pass


class RemoteTrainMetrics(_Forwarded, TrainMetricsRepo):
    pass


class RemoteJobs(_Forwarded, JobsRepo):
    pass


class RemoteStore:
    """What a recipe sees of the store inside a Ray job (a :class:`StoreAccess`): the repositories, forwarded
    to the actor; the folder, shared."""

    def __init__(self, root: Path, actor: Any) -> None:
        self.root = Path(root)
        self.path = StoreLayout(self.root).db
        self.opened_on = "the worker's node, through its Ray actor"
        self.runs = RemoteRuns(actor, "runs")
        self.predictions = RemotePredictions(actor, "predictions")
        self.triage = RemoteTriage(actor, "triage")
        self.captures = RemoteCaptures(actor, "captures")
        self.train_metrics = RemoteTrainMetrics(actor, "train_metrics")
        self.jobs = RemoteJobs(actor, "jobs")


def _connect() -> Any:
    try:
        import ray
    except ImportError:
        raise KdtuiError("results through Ray need Ray: pip install -e '.[ray]'") from None
    if not ray.is_initialized():
        env = dict(os.environ)
        if env.get("RAY_ADDRESS", "").startswith("http"):
            env.pop("RAY_ADDRESS")  # a dashboard address (for job submission) is not a cluster address
        address = env.get("RAY_ADDRESS", "auto")
        token = os.environ.get("KDTUI_RAY_TOKEN")
        if token and not os.environ.get("RAY_AUTH_TOKEN"):
            os.environ["RAY_AUTH_TOKEN"] = token  # Ray's own drivers read this
        try:
            ray.init(address=address, namespace=NAMESPACE, logging_level=logging.ERROR, log_to_driver=False,
                     configure_logging=False)
        except Exception as exc:
            raise KdtuiError(f"cannot join the Ray cluster from this machine ({first_line(exc)[:200]}); run the "
                             "worker on a node of the cluster, or pass --ray-store shared") from None
    return ray


def start_service(root: Path) -> str:
    """Start (or find) the store's actor on this node; returns its name. Detached: it outlives the worker."""
    ray = _connect()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    name = actor_name(root)
    here = ray.get_runtime_context().get_node_id()
    service = ray.remote(StoreService).options(
        name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0, max_concurrency=8,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "KDTUI_BUSY_TIMEOUT")}},
    ).remote(str(root.resolve()))
    served = ray.get(service.ping.remote(), timeout=120)
    if served != str(root.resolve()):  # an actor of that name serving another folder: never mix stores
        raise KdtuiError(f"Ray actor {name} serves {served}, not {root}; `ray stop` the stale cluster")
    return name


def remote_store(root: Path) -> StoreAccess | None:
    """The store as a Ray job should see it: through the actor named in $KDTUI_STORE_ACTOR (None: not set)."""
    name = os.environ.get(ENV)
    if not name:
        return None
    ray = _connect()
    try:
        actor = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        raise KdtuiError(f"no Ray actor {name!r}: the worker that serves the store is gone; restart it with "
                         "`kdtui worker start --executor ray`") from None
    return RemoteStore(root, actor)
