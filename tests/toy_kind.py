"""A job kind defined outside kdtui, as a plugin would: one module, registered through $KDTUI_JOB_KINDS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kdtui.jobs.kinds import JobKind, JobResult, Report, register
from kdtui.store import StoreAccess

# An experiment of two toy jobs, the second after the first (it copies the first one's file).
TOY_EXPERIMENT = """
[experiment]
name = "toy"

[[job]]
kind = "toy"
name = "toy/first"
config = { name = "toy/first", message = "hello" }

[[job]]
kind = "toy"
name = "toy/second"
config = { name = "toy/second", message = "again", repeat = 2, after = "toy/first" }
depends = ["toy/first"]
"""


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="What the job writes.")
    repeat: int = Field(1, ge=1, description="How many times.")
    after: str | None = Field(None, description="Another toy job's name whose file this one copies first.")


class NamedToyConfig(ToyConfig):
    name: str = Field(description="The job's name (its file).")


def _file(root: Path, name: str) -> Path:
    return root / "toy" / f"{name.replace('/', '_')}.txt"


def _run(store: StoreAccess, config: dict[str, Any], _logs: Path, report: Report) -> JobResult:
    toy = NamedToyConfig.model_validate(config)
    before = _file(store.root, toy.after).read_text() if toy.after else ""
    report(0.5)
    target = _file(store.root, toy.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(before + toy.message * toy.repeat + "\n")
    report(1.0)
    return JobResult.done()


TOY = register(JobKind("toy", "write a message to a file under the store", _run, lambda: NamedToyConfig,
                       outputs=lambda config, root: [_file(root, config["name"])]))
