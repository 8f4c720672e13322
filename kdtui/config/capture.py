"""The capture recipe's config (``kdtui capture`` flags, the ``[capture]`` TOML table, the capture's identity)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from kdtui.config.base import RecipeConfig
from kdtui.config.names import check_capture_name
from kdtui.config.study import STUDY_TEMPERATURE

ID: dict[str, Any] = {"identity": True}


class CaptureConfig(RecipeConfig):
    """One capture: which teacher, which questions, which strategy, what to keep."""

    TOML_TABLE: ClassVar[str] = "capture"

    name: str = Field(description="Capture name: the folder store/captures/NAME.")
    teacher: str = Field(description="Teacher model folder (transformers or EXL2).", json_schema_extra=ID)
    backend: Literal["hf", "exllamav2"] = Field("hf", description="Teacher backend.", json_schema_extra=ID)
    strategy: str = Field("base", description="Prompting strategy name.", json_schema_extra=ID)
    strategies_file: str | None = Field(None, description="TOML with extra [[strategy]] entries.",
                                        json_schema_extra={"identity": "file"})
    mode: Literal["prompt", "answer", "generate"] = Field(
        "prompt", description="prompt: question tokens; answer: reference solution tokens; generate: own solution.",
        json_schema_extra=ID)
    data: str = Field("openai/gsm8k", description="Hub id, local GSM8K .jsonl, or 'synthetic'.", json_schema_extra=ID)
    split: str = Field("train", description="Hub split (the study captured on train).", json_schema_extra=ID)
    limit: int | None = Field(None, ge=1, description="At most this many examples.")
    offset: int = Field(0, ge=0, description="Skip this many examples first.", json_schema_extra=ID)
    format: Literal["topk", "dense", "hidden"] = Field(
        "topk", description="topk: k ids + log-probs (exact at the stored temperatures); dense: full logits; "
        "hidden: the teacher's head input per token plus its head once (exact logits at any T).",
        json_schema_extra=ID)
    span: Literal["targets", "all"] = Field(
        "targets", description="targets: positions that predict the targets; all: every context position from 0 "
        "(the study's alignment, for --preset study-literal).", json_schema_extra=ID)
    eos: bool = Field(True, description="Answer mode: end the reference solution with the teacher's EOS token, so "
                      "a student learns where an answer stops, as the fine-tune control does.",
                      json_schema_extra={"identity": True, "before": False})
    bos: bool = Field(True, description="Begin the teacher's context with its BOS token (the study's teacher pass "
                      "had none).", json_schema_extra=ID)
    k: int = Field(64, ge=1, le=4096, description="Token ids kept per position (topk).", json_schema_extra=ID)
    temperatures: list[float] = Field([1.0, STUDY_TEMPERATURE],
                                      description="Temperatures whose exact log-normaliser is stored; 1.0 first.",
                                      json_schema_extra=ID)
    value_dtype: Literal["float16", "bfloat16", "int8"] = Field(
        "float16", description="Stored value precision (int8: hidden only, with a per-token scale).",
        json_schema_extra=ID)
    examples_per_shard: int = Field(256, ge=1, description="Examples per shard file (the resume granularity).",
                                    json_schema_extra=ID)
    batch_size: int = Field(8, ge=1, description="Sequences per teacher forward pass.")
    replicas: int = Field(1, ge=1, description="Split the capture into this many example ranges (whole shards), one "
                          "teacher replica each; `kdtui capture merge NAME --replicas N` joins them.")
    replica: int | None = Field(None, ge=0, description="With --replicas: capture only this range (0-based), as "
                                "capture NAME.rI-of-N.")
    max_new_tokens: int = Field(256, ge=1, description="Generation budget (generate mode).", json_schema_extra=ID)
    sample_temperature: float | None = Field(None, gt=0, description="Sample at this temperature (default: greedy).",
                                             json_schema_extra=ID)
    seed: int = Field(0, description="Sampling seed.", json_schema_extra=ID)
    device: str = Field("auto", description="hf backend device.")
    dtype: str = Field("auto", description="hf backend dtype.", json_schema_extra=ID)
    cache_type: Literal["FP16", "Q8", "Q6", "Q4"] = Field("Q4", description="exllamav2 KV cache type.",
                                                          json_schema_extra=ID)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return check_capture_name(value)

    @property
    def eos_applies(self) -> bool:
        """Whether ``eos`` means anything here: only an answer-mode capture of the targets ends with EOS."""
        return self.mode == "answer" and self.span == "targets"

    def identity(self) -> dict[str, Any]:
        out = super().identity()
        if not self.eos_applies:
            out.pop("eos")  # prompt- and generate-mode identities (and job ids) stay as they were
        return out

    @model_validator(mode="after")
    def _int8_hidden_only(self) -> CaptureConfig:
        if self.value_dtype == "int8" and self.format != "hidden":
            raise ValueError("--value-dtype int8 is for --format hidden only")
        if self.span == "all" and self.mode == "generate":
            raise ValueError("--span all stores the teacher's prompt positions: use --mode prompt or answer")
        return self

    @model_validator(mode="after")
    def _replica_in_range(self) -> CaptureConfig:
        if self.replica is not None and self.replica >= self.replicas:
            raise ValueError(f"--replica {self.replica} needs --replicas above it (ranges are 0..replicas-1)")
        return self

    @field_validator("temperatures")
    @classmethod
    def _one_first(cls, value: list[float]) -> list[float]:
        rest = [t for t in value if t != 1.0]
        if any(t <= 0 for t in rest):
            raise ValueError("temperatures must be positive")
        return [1.0, *rest]  # T=1 anchors the stored log-probabilities
