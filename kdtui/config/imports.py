"""The import recipe's config (``kdtui import`` flags, the ``[import]`` TOML table, the run's identity)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from kdtui.config.base import RecipeConfig
from kdtui.config.names import check_run_name

ID: dict[str, Any] = {"identity": True}


class ImportConfig(RecipeConfig):
    """Outside predictions loaded as a run, to triage and compare beside kdtui's own."""

    TOML_TABLE: ClassVar[str] = "import"

    file: str = Field(description="The file to import (its content is part of the run's identity).",
                      json_schema_extra={"identity": "file", "cli": False})
    run: str = Field(description="Run name for the imported predictions.")
    format: Literal["auto", "jsonl", "csv", "lm-eval", "study"] = Field(
        "auto", description="jsonl/csv: question, response and gold fields; lm-eval: lm-evaluation-harness "
        "samples_*.jsonl; study: the study's assessment CSV; auto: guess from the file.", json_schema_extra=ID)
    protocol: Literal["default", "study-rules", "seed", "study"] = Field(
        "default", description="Answer extraction for the imported responses (study: the study's code, in file "
        "order).", json_schema_extra=ID)
    field: str = Field("response", description="jsonl/csv: the field holding the response text.",
                       json_schema_extra=ID)

    @field_validator("run")
    @classmethod
    def _run_name(cls, value: str) -> str:
        return check_run_name(value)
