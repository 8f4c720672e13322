"""A whole experiment as one TOML file: teacher, students, strategies, captures, a distillation grid,
controls and evaluation; validated here and expanded into jobs by :mod:`kdtui.jobs.graph`.

    [experiment]
    name = "study"

    [teacher]
    backend = "exllamav2"
    model = "/models/Llama-3.1-405B-Instruct-exl2-6.0bpw"
    gpus = 4

    [[student]]
    name = "llama8b"
    model = "/models/Llama-3.1-8B-Instruct"
    gpus = 1

    strategies = ["base", "teacher", "ai-to-ai", "confidence"]
    controls = ["fine-tune", "no-distil"]

    [capture]          # any `kdtui capture` field but name/teacher/backend/strategy
    [distill]          # any `kdtui distill` field but run/student/capture
    [grid]             # distill fields with lists: one run per combination
    [eval]             # any `kdtui eval` field but model/adapter/run
    [executor]         # kind = "local" | "ray", address = "http://head:8265", store = "actor" | "shared"

    [[job]]            # any registered job kind (kdtui.jobs.kinds), after the study's own jobs
    kind = "capture"
    name = "study-extra"
    config = { teacher = "/models/...", strategy = "base", name = "study-extra" }
    depends = []       # names of this experiment's jobs (a capture's name, a run's name) it waits for

An experiment needs a teacher, students and strategies for distillation; controls need students only, and
an experiment of ``[[job]]`` tables alone needs neither.

Every table is checked against the recipe's own config, so a typo names the file, the table and the
key; an unknown strategy names the ones there are.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdtui.config.base import load_toml_table
from kdtui.config.capture import CaptureConfig
from kdtui.config.distill import DistillConfig
from kdtui.config.eval import EvalConfig
from kdtui.config.names import check_capture_name, check_run_name
from kdtui.errors import KdtuiError

CONTROLS = ("fine-tune", "no-distil")


class TeacherSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Teacher model folder (transformers or EXL2).")
    backend: Literal["hf", "exllamav2"] = Field("hf", description="Teacher backend.")
    gpus: int = Field(0, ge=0, description="GPUs a capture job asks for (0: CPU).")


class StudentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Short name used in run names.")
    model: str = Field(description="Student model folder.")
    gpus: int = Field(0, ge=0, description="GPUs a distill or eval job of this student asks for.")

    @field_validator("name")
    @classmethod
    def _plain(cls, value: str) -> str:
        return check_capture_name(value)


class ExecutorSpec(BaseModel):
    """Where the jobs run (``kdtui run --executor`` overrides it)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "ray"] = Field("local", description="local: this machine's worker; ray: a Ray cluster.")
    address: str | None = Field(None, description="Ray dashboard address, e.g. http://head:8265 (default: "
                                "$RAY_ADDRESS or http://127.0.0.1:8265).")
    store: Literal["actor", "shared"] = Field("actor", description="How Ray jobs reach the store: through a Ray "
                                              "actor on the worker's node, or over shared storage.")
    cpus_per_job: int = Field(1, ge=1, description="CPUs Ray reserves for each job, and the threads it may use.")


class JobEntrySpec(BaseModel):
    """One ``[[job]]`` table: a job of any registered kind, with its config table."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="A registered job kind (capture, distill, eval, merge, or a plugin's).")
    name: str = Field(description="The run (or capture) it produces; names the job.")
    config: dict[str, Any] = Field(default_factory=dict, description="The kind's config, as its recipe reads it.")
    gpus: int = Field(0, ge=0, description="GPUs the job asks for (0: CPU).")
    depends: list[str] = Field(default_factory=list, description="Names of this experiment's jobs it waits for.")

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: str) -> str:
        return check_run_name(value)


class ExperimentSpec(BaseModel):
    """The whole study: what runs, with which settings."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Experiment name: prefixes every capture and run, groups its jobs.")
    teacher: TeacherSpec | None = None
    students: list[StudentSpec] = Field(default_factory=list, alias="student")
    strategies: list[str] = Field(default_factory=list, description="Prompting strategies, one capture each.")
    controls: list[Literal["fine-tune", "no-distil"]] = Field(default_factory=list)
    capture: dict[str, Any] = Field(default_factory=dict)
    distill: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int = Field(3, ge=1, description="Attempts per job before it fails for good.")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    jobs: list[JobEntrySpec] = Field(default_factory=list, alias="job")

    @model_validator(mode="after")
    def _something_to_run(self) -> ExperimentSpec:
        if self.strategies and self.teacher is None:
            raise ValueError("strategies need a [teacher] table to capture them (add it)")
        if (self.strategies or self.controls) and not self.students:
            raise ValueError("strategies and controls need at least one [[student]] (add it)")
        if not (self.strategies or self.controls or self.jobs):
            raise ValueError("nothing to run: add strategies (with a teacher and students), controls or [[job]] "
                             "tables")
        return self

    @field_validator("name")
    @classmethod
    def _plain(cls, value: str) -> str:
        return check_capture_name(value)

    def cells(self) -> list[dict[str, Any]]:
        """The distillation settings of every grid cell (one cell without a grid)."""
        keys = sorted(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(self.grid[k] for k in keys))]


def cell_suffix(cell: dict[str, Any], many: bool) -> str:
    """A grid cell's part of its run name, in run-name characters: ``/alpha-0.5+lr-0.001``."""
    if not many:
        return ""
    text = "+".join(f"{k}-{v}" for k, v in sorted(cell.items()))
    return "/" + re.sub(r"[^A-Za-z0-9._+-]+", "_", text)


FIXED = {"capture": ("name", "teacher", "backend", "strategy"), "distill": ("run", "student", "capture"),
         "eval": ("model", "adapter", "run")}
MODELS: dict[str, type[Any]] = {"capture": CaptureConfig, "distill": DistillConfig, "eval": EvalConfig}


def load_experiment(path: Path | str) -> ExperimentSpec:
    """Read and check an experiment file; every problem is one line naming the file, the key and the fix."""
    path = Path(path)
    if not path.is_file():
        raise KdtuiError(f"no experiment file {path}; see experiments/demo.toml for the format")
    raw = load_toml_table(path, None)
    data = dict(raw.pop("experiment", {})) | raw
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        hint = " (add it)" if first["type"] == "missing" else ""
        raise KdtuiError(f"{path}: {where}: {first['msg']}{hint}") from None
    _check_tables(path, spec)
    return spec


def _check_tables(path: Path, spec: ExperimentSpec) -> None:
    from kdtui.data.strategies import load_strategies

    known = load_strategies()
    unknown = [s for s in spec.strategies if s not in known]
    if unknown:
        raise KdtuiError(f"{path}: strategies: unknown strategy {unknown[0]!r}; choose from: {', '.join(known)}")
    for table, fixed in FIXED.items():
        values = getattr(spec, table)
        for key in values:
            if key in fixed:
                raise KdtuiError(f"{path}: [{table}] {key}: set by the experiment itself; remove it")
            if key not in MODELS[table].model_fields:
                raise KdtuiError(f"{path}: [{table}] {key}: not a `kdtui {table}` setting; see `kdtui {table} "
                                 "--help`")
    for key in spec.grid:
        if key in FIXED["distill"] or key not in DistillConfig.model_fields:
            raise KdtuiError(f"{path}: [grid] {key}: not a `kdtui distill` setting one can vary")
    names = [s.name for s in spec.students]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise KdtuiError(f"{path}: student: two [[student]] entries are named {twice!r}; give each its own name "
                         "(it names their runs)")
    cells = spec.cells()
    suffixes = [cell_suffix(cell, len(cells) > 1) for cell in cells]
    if len(set(suffixes)) != len(suffixes):
        raise KdtuiError(f"{path}: [grid]: two cells would share the run name {suffixes[0]!r}; use values that "
                         "differ in letters, digits, '.', '_' or '-'")
    # Validate one resolved config of each kind now, so a bad value fails at `kdtui run`, not in a job.
    try:
        if spec.strategies and spec.teacher is not None:
            CaptureConfig.model_validate(spec.capture | {"name": "check", "teacher": spec.teacher.model,
                                                         "backend": spec.teacher.backend,
                                                         "strategy": spec.strategies[0]})
        if spec.students:
            for cell in spec.cells():
                DistillConfig.from_sources(spec.distill | cell | {"run": "check", "student": spec.students[0].model,
                                                                  "capture": "check"})
            EvalConfig.model_validate(spec.eval | {"model": spec.students[0].model})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise KdtuiError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    except KdtuiError as exc:
        raise KdtuiError(f"{path}: {exc}") from None
    from kdtui.jobs.kinds import job_kind

    for entry in spec.jobs:
        try:
            job_kind(entry.kind).validate(entry.config)
        except KdtuiError as exc:
            raise KdtuiError(f"{path}: [[job]] {entry.name}: {exc}") from None
