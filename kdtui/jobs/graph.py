"""An experiment expanded into jobs with dependencies: a capture per strategy, a distillation per grid cell
and student, the controls, and an evaluation of every student and control.

A job's id is a hash of its kind, its run name and its config's identity (the same fields that decide
whether a rerun resumes), so enqueuing the same experiment again adds nothing, and an edited grid
adds exactly its new cells.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdtui.config.capture import CaptureConfig
from kdtui.config.distill import DistillConfig
from kdtui.config.eval import EvalConfig
from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError
from kdtui.jobs.experiment import ExperimentSpec, cell_suffix


@dataclass
class JobSpec:
    """One unit of work for a worker."""

    id: str
    name: str           # the run (or capture) it produces
    kind: str           # a registered job kind (kdtui.jobs.kinds): capture, merge, distill, eval, ...
    config: dict[str, Any]
    gpus: int
    group: str          # the experiment: paused and resumed together
    depends: list[str] = field(default_factory=list)
    max_attempts: int = 3


def job_id(kind: str, name: str, identity: dict[str, Any]) -> str:
    blob = json.dumps({"kind": kind, "name": name, "identity": identity}, sort_keys=True, default=str)
    return f"{kind[:3]}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _local(path: str) -> str:
    """A model folder that exists here, made absolute: jobs run elsewhere (another cwd, a Ray node); hub ids stay."""
    candidate = Path(path).expanduser()
    return str(candidate.resolve()) if candidate.exists() else path


def expand(spec: ExperimentSpec, store_root: Path) -> list[JobSpec]:
    """Every job of the experiment, dependencies first."""
    store_root = store_root.resolve()
    teacher = None if spec.teacher is None else spec.teacher.model_copy(update={"model": _local(spec.teacher.model)})
    students = [s.model_copy(update={"model": _local(s.model)}) for s in spec.students]
    spec = spec.model_copy(update={"students": students})

    jobs: list[JobSpec] = []
    captures: dict[str, JobSpec] = {}
    for strategy in spec.strategies:
        assert teacher is not None  # the spec's validator: strategies need a teacher
        name = f"{spec.name}-{strategy}"
        capture = CaptureConfig.model_validate(spec.capture | {"name": name, "teacher": teacher.model,
                                                           "backend": teacher.backend, "strategy": strategy})
        if capture.replicas == 1:
            job = JobSpec(job_id("capture", name, capture.identity()), name, "capture", capture.model_dump(),
                          teacher.gpus, spec.name, max_attempts=spec.max_attempts)
        else:  # one job per range, each with its own teacher replica, then one that joins them
            from kdtui.captures.replicas import replica_name

            parts = []
            for replica in range(capture.replicas):
                part = capture.model_copy(update={"replica": replica})
                part_name = replica_name(name, replica, capture.replicas)
                parts.append(JobSpec(job_id("capture", part_name, part.identity() | {"replica": replica}), part_name,
                                     "capture", part.model_dump(), teacher.gpus, spec.name,
                                     max_attempts=spec.max_attempts))
            jobs.extend(parts)
            job = JobSpec(job_id("merge", name, capture.identity()), name, "merge",
                          {"name": name, "replicas": capture.replicas}, 0, spec.name, [p.id for p in parts],
                          spec.max_attempts)
        captures[strategy] = job
        jobs.append(job)
    cells = spec.cells()
    for student in spec.students:
        trained: list[tuple[str, str, JobSpec | None]] = []  # (label, run, its distill job)
        for strategy in spec.strategies:
            for cell in cells:
                run = f"{spec.name}/{student.name}/{strategy}{cell_suffix(cell, len(cells) > 1)}"
                cfg = DistillConfig.from_sources(spec.distill | cell | {
                    "run": run, "student": student.model, "capture": captures[strategy].name, "resume": True}
                    | _ranks(student.gpus, spec.distill))
                job = JobSpec(job_id("distill", run, cfg.identity()), run, "distill", cfg.model_dump(), student.gpus,
                              spec.name, [captures[strategy].id], spec.max_attempts)
                jobs.append(job)
                trained.append((run.removeprefix(f"{spec.name}/{student.name}/"), run, job))
        if "fine-tune" in spec.controls:
            run = f"{spec.name}/{student.name}/fine-tune"
            data = spec.distill.get("data") or spec.capture.get("data", "openai/gsm8k")
            control = {k: v for k, v in spec.distill.items() if k not in ("preset", "capture")}
            cfg = DistillConfig.from_sources(control | {"run": run, "student": student.model, "preset": "fine-tune",
                                                        "data": data, "resume": True,
                                                        "limit": spec.capture.get("limit")}
                                             | _ranks(student.gpus, spec.distill))
            job = JobSpec(job_id("distill", run, cfg.identity()), run, "distill", cfg.model_dump(), student.gpus,
                          spec.name, max_attempts=spec.max_attempts)
            jobs.append(job)
            trained.append(("fine-tune", run, job))
        if "no-distil" in spec.controls:
            trained.append(("no-distil", "", None))
        for label, run, parent in trained:
            eval_run = f"{spec.name}/eval/{student.name}/{label}"
            lora = parent is not None and bool(parent.config.get("lora", True))
            output = None if parent is None else str(StoreLayout(store_root).trained_output(run, lora))
            evaluation = EvalConfig.model_validate(spec.eval | {
                "model": output if output is not None and not lora else student.model,
                "adapter": output if lora else None, "run": eval_run,
                "strategy": label if parent is None else None})
            # vLLM splits the model over its tensor-parallel GPUs: the job asks for all of them
            gpus = max(student.gpus, evaluation.tensor_parallel) if evaluation.engine == "vllm" else student.gpus
            jobs.append(JobSpec(job_id("eval", eval_run, evaluation.identity()), eval_run, "eval",
                                evaluation.model_dump(), gpus, spec.name,
                                [] if parent is None else [parent.id], spec.max_attempts))
    return jobs + _entries(spec, jobs)


def _entries(spec: ExperimentSpec, planned: list[JobSpec]) -> list[JobSpec]:
    """The experiment's ``[[job]]`` tables, each checked by its kind; ``depends`` names jobs planned before it."""
    from kdtui.jobs.kinds import job_kind

    ids = {job.name: job.id for job in planned}
    out: list[JobSpec] = []
    for entry in spec.jobs:
        missing = [name for name in entry.depends if name not in ids]
        if missing:
            raise KdtuiError(f"[[job]] {entry.name}: depends on {missing[0]!r}, which is not a job of this "
                             f"experiment before it; its jobs: {', '.join(ids) or 'none'}")
        config = job_kind(entry.kind).validate(entry.config)
        job = JobSpec(job_id(entry.kind, entry.name, config), entry.name, entry.kind, config, entry.gpus, spec.name,
                      [ids[name] for name in entry.depends], spec.max_attempts)
        if job.name in ids:
            raise KdtuiError(f"[[job]] {entry.name}: another job of this experiment has that name; rename one")
        ids[job.name] = job.id
        out.append(job)
    return out


def _ranks(gpus: int, distill: dict[str, Any]) -> dict[str, Any]:
    """A student on several GPUs trains data-parallel, one rank per card, under accelerate (DDP) unless the
    experiment chose a launcher itself."""
    if gpus > 1 and distill.get("launcher", "none") == "none":
        return {"launcher": "accelerate", "num_processes": gpus}
    return {}
