"""The evaluation recipe's config (``kdtui eval`` flags, the ``[eval]`` TOML table, the run's identity)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from kdtui.config.base import RecipeConfig
from kdtui.config.names import check_run_name

ID: dict[str, Any] = {"identity": True}


class EvalConfig(RecipeConfig):
    """One evaluation run: a model answers a GSM8K slice with one prompt."""

    TOML_TABLE: ClassVar[str] = "eval"

    model: str = Field(description="Local transformers model folder, or a hub id when online.", json_schema_extra=ID)
    adapter: str | None = Field(None, description="Optional PEFT adapter folder applied to the model.",
                                json_schema_extra=ID)
    run: str | None = Field(None, description="Run name in the store (default MODEL/PROMPT); the same name resumes.")
    data: str = Field("openai/gsm8k", description="Hub id, local .json/.jsonl (GSM8K format), or 'synthetic[:SEED]'.",
                      json_schema_extra=ID)
    data_config: str = Field("main", description="Hub dataset config name.", json_schema_extra=ID)
    split: str = Field("test", description="Hub dataset split.", json_schema_extra=ID)
    limit: int | None = Field(None, ge=1, description="Evaluate at most this many problems.")
    offset: int = Field(0, ge=0, description="Skip this many problems first.")
    prompt: str = Field("plain", description="Prompt template name: plain, answer-only, chat, or one from "
                        "--prompts-file.", json_schema_extra=ID)
    prompts_file: str | None = Field(None, description="TOML file with extra [[prompt]] templates (its content "
                                     "is part of the run's identity).", json_schema_extra={"identity": "file"})
    strategy: str | None = Field(None, description="Teacher strategy the student was distilled with, if any.")
    max_new_tokens: int | None = Field(None, ge=1, description="Generation budget; default: the prompt's.",
                                       json_schema_extra=ID)
    batch_size: int = Field(8, ge=1, description="Questions generated together (left-padded); with --engine vllm, "
                            "questions handed to vLLM per store write (vLLM batches them itself: use 256 or more).")
    engine: Literal["transformers", "vllm"] = Field(
        "transformers", description="Generation engine: transformers (any device), or vllm (kdtui[vllm], CUDA: the "
        "base model with the adapter as a LoRA, paged attention, continuous batching).",
        json_schema_extra={"identity": "unless_default"})
    tensor_parallel: int = Field(1, ge=1, description="With --engine vllm: GPUs the model is split over.")
    gpu_memory: float = Field(0.9, gt=0, le=1, description="With --engine vllm: the share of each GPU's memory "
                              "vLLM may take (weights and KV cache).")
    do_sample: bool = Field(False, description="Sample instead of greedy decoding.",
                            json_schema_extra={"identity": True, "flag": "sample"})
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (with --sample).", json_schema_extra=ID)
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass (with --sample).", json_schema_extra=ID)
    seed: int = Field(0, description="Random seed for sampling.", json_schema_extra=ID)
    protocol: Literal["default", "study-rules", "seed"] = Field(
        "default", description="Answer extraction: default (kdtui's), study-rules (alias seed: the study's four "
        "rules as described). For the study's exact code use `kdtui reextract RUN --protocol study`.",
        json_schema_extra=ID)
    overlong: Literal["truncate", "refuse"] = Field(
        "truncate", description="A prompt longer than the model's context (less the generation budget): 'truncate' "
        "cuts it from the left and counts it in the run's warnings; 'refuse' stops the run.", json_schema_extra=ID)
    device: str = Field("auto", description="'auto' (cuda if present, else cpu), 'cpu', 'cuda', 'cuda:1', ...")
    dtype: str = Field("auto", description="'auto' (bf16 on GPU, fp32 on CPU), 'float32', 'bfloat16', 'float16'.",
                       json_schema_extra=ID)

    @field_validator("run")
    @classmethod
    def _run_name(cls, value: str | None) -> str | None:
        return None if value is None else check_run_name(value)
