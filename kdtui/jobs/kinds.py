"""The job kinds, in one registry: what each kind validates, leaves under the store, needs, and how it runs.

The CLI (``kdtui run``), the planner (``graph.expand``), the runner (``kdtui job exec``) and the worker daemon
ask this registry, so a new kind is one :class:`JobKind` plus its config. The built-in kinds are below; others
register from a module named in ``$KDTUI_JOB_KINDS`` (comma-separated import paths), which every kdtui
process imports before it looks a kind up, so the worker and its job processes know them too. An experiment
file runs any kind with a ``[[job]]`` table.

A kind's ``run`` returns a :class:`JobResult` (done, or stopped early with its reason); an exception is a
failure. The runner turns it into the attempt's recorded outcome and exit code.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError

if TYPE_CHECKING:
    from kdtui.store import StoreAccess

PLUGINS_ENV = "KDTUI_JOB_KINDS"
Report = Callable[[float], None]  # the fraction done, 0..1


@dataclass(frozen=True)
class JobResult:
    """How a job's run ended without an exception: done, or stopped early (and why; it is queued again)."""

    state: Literal["done", "stopped"]
    reason: str = ""

    @classmethod
    def done(cls) -> JobResult:
        return cls("done")

    @classmethod
    def stopped(cls, reason: str) -> JobResult:
        return cls("stopped", reason)


@dataclass(frozen=True)
class JobKind:
    """One kind of job."""

    name: str
    description: str
    run: Callable[[StoreAccess, dict[str, Any], Path, Report], JobResult]
    # the config's pydantic class, imported when first needed (None: the config is a plain table)
    config: Callable[[], type[BaseModel]] | None = None
    # quick bookkeeping the worker runs itself, in its own process and without a slot (merging capture parts)
    inline: bool = False
    # what a finished job leaves under the store
    outputs: Callable[[dict[str, Any], Path], list[Path]] = field(default=lambda _config, _root: [])

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config, checked by the kind's class (its cross-field validators included) and dumped back."""
        if self.config is None:
            return dict(config)
        try:
            return self.config().model_validate(config).model_dump()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise KdtuiError(f"{self.name} job: {where}: {first['msg']}") from None


KINDS: dict[str, JobKind] = {}
_loaded: set[str] = set()


def register(kind: JobKind) -> JobKind:
    """Add a kind (a plugin's module calls this at import); a name registered twice must be the same kind."""
    known = KINDS.get(kind.name)
    if known is not None and known is not kind:
        raise KdtuiError(f"job kind {kind.name!r} is registered twice; give the new one its own name")
    KINDS[kind.name] = kind
    return kind


def load_plugins() -> None:
    """Import the modules named in $KDTUI_JOB_KINDS (once each), so their kinds are registered."""
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        if module in _loaded:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise KdtuiError(f"${PLUGINS_ENV}: cannot import {module!r} ({exc}); fix the module path") from None
        _loaded.add(module)


def job_kind(name: str) -> JobKind:
    """The kind called ``name``, or one line naming the kinds there are."""
    load_plugins()
    kind = KINDS.get(name)
    if kind is None:
        raise KdtuiError(f"unknown job kind {name!r}; kinds: {', '.join(sorted(KINDS))} (others register "
                         f"through ${PLUGINS_ENV})")
    return kind


def runs_inline(name: str) -> bool:
    """Whether the worker runs this kind itself; an unknown kind runs as a process, which fails it in one line
    (recorded like any failure) rather than stopping the worker's scheduling."""
    try:
        return job_kind(name).inline
    except KdtuiError:
        return False


# ------------------------------------------------------------------ the built-in kinds


def _capture_config() -> type[BaseModel]:
    from kdtui.config.capture import CaptureConfig

    return CaptureConfig


def _distill_config() -> type[BaseModel]:
    from kdtui.config.distill import DistillConfig

    return DistillConfig


def _eval_config() -> type[BaseModel]:
    from kdtui.config.eval import EvalConfig

    return EvalConfig


def _run_capture(store: StoreAccess, config: dict[str, Any], logs: Path, report: Report) -> JobResult:
    from kdtui.config.capture import CaptureConfig
    from kdtui.recipes.capture import run_capture

    capture = CaptureConfig.model_validate(config)
    manifest = run_capture(capture, store, progress=lambda s: report(s["done"] / max(s["total"], 1)), logs=logs)
    status = manifest.get("status")
    return JobResult.done() if status == "done" else JobResult.stopped(f"the capture is {status}")


def _run_distill(store: StoreAccess, config: dict[str, Any], logs: Path, report: Report) -> JobResult:
    from kdtui.config.distill import DistillConfig
    from kdtui.recipes.distill import run_distill

    distill = DistillConfig.model_validate(config)
    if distill.launcher != "none":  # several ranks (a job holding several GPUs): the launcher runs them
        from kdtui.recipes.launch import run_launched

        code = run_launched(distill, store.root, logs)
        if code != 0:
            raise KdtuiError(f"the {distill.launcher} ranks ended with exit {code}; see the job log")
        if not StoreLayout(store.root).trained_output(distill.run, distill.lora).is_dir():
            return JobResult.stopped("the ranks stopped before the end of training")
        return JobResult.done()
    result = run_distill(distill, store, logs, progress=lambda r: report(r["step"] / max(r["total_steps"], 1)))
    return JobResult.stopped("stopped at a checkpoint") if result.adapter is None else JobResult.done()


def _run_eval(store: StoreAccess, config: dict[str, Any], logs: Path, report: Report) -> JobResult:
    from kdtui.config.eval import EvalConfig
    from kdtui.recipes.evaluate import run_eval

    evaluation = EvalConfig.model_validate(config)
    run_eval(evaluation, store, logs, progress=lambda p: report(p.done / max(p.total, 1)))
    record = store.runs.get(evaluation.run or "")
    if record is not None and record.status == "interrupted":
        return JobResult.stopped("the evaluation was interrupted")
    return JobResult.done()


def _run_merge(store: StoreAccess, config: dict[str, Any], _logs: Path, report: Report) -> JobResult:
    from kdtui.captures.replicas import merge

    manifest = merge(store.root, config["name"], int(config["replicas"]))
    store.captures.register(config["name"], manifest, StoreLayout(store.root).capture(config["name"]))
    report(1.0)
    return JobResult.done()


def _trained(config: dict[str, Any], root: Path) -> list[Path]:
    return [StoreLayout(root).trained_output(config["run"], bool(config.get("lora", True)))]


CAPTURE = register(JobKind("capture", "run the teacher over the data and store its distributions", _run_capture,
                           _capture_config, outputs=lambda c, root: [StoreLayout(root).capture(c["name"])]))
MERGE = register(JobKind("merge", "join the parts of a capture that several teacher replicas wrote", _run_merge,
                         inline=True, outputs=lambda c, root: [StoreLayout(root).capture(c["name"])]))
DISTILL = register(JobKind("distill", "train a student on a capture (or fine-tune it)", _run_distill,
                           _distill_config, outputs=_trained))
EVAL = register(JobKind("eval", "answer the GSM8K test set and record the predictions", _run_eval, _eval_config))
