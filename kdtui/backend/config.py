"""Experiment configs: pydantic models with defaults; TOML files validate against them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kdtui.errors import KdtuiError

T = TypeVar("T", bound=BaseModel)


class EvalConfig(BaseModel):
    """One evaluation run: a model answers a GSM8K slice with one prompt."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="Local transformers model folder, or a hub id when online.")
    adapter: str | None = Field(None, description="Optional PEFT adapter folder applied to the model.")
    run: str | None = Field(None, description="Run name in the store; rerunning a name resumes it.")
    data: str = Field("openai/gsm8k", description="Hub id, local .json/.jsonl (GSM8K format), or 'synthetic'.")
    data_config: str = Field("main", description="Hub dataset config name.")
    split: str = Field("test", description="Hub dataset split.")
    limit: int | None = Field(None, ge=1, description="Evaluate at most this many problems.")
    offset: int = Field(0, ge=0, description="Skip this many problems first.")
    prompt: str = Field("plain", description="Prompt template name (built-in or from prompts_file).")
    prompts_file: str | None = Field(None, description="TOML file with extra [[prompt]] templates.")
    strategy: str | None = Field(None, description="Teacher strategy the student was distilled with, if any.")
    max_new_tokens: int | None = Field(None, ge=1, description="Generation budget; default: the prompt's.")
    batch_size: int = Field(8, ge=1, description="Questions generated together (left-padded).")
    do_sample: bool = Field(False, description="Sample instead of greedy decoding.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (with do_sample).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass (with do_sample).")
    seed: int = Field(0, description="Random seed for sampling.")
    protocol: Literal["default", "seed"] = Field("default", description="Answer-extraction protocol.")
    device: str = Field("auto", description="'auto' (cuda if present, else cpu), 'cpu', 'cuda', 'cuda:1', ...")
    dtype: str = Field("auto", description="'auto' (bf16 on GPU, fp32 on CPU), 'float32', 'bfloat16', 'float16'.")


def load_named_presets(preset: str, table: str, model: type[T], extra: Path | None) -> dict[str, T]:
    """``[[table]]`` entries of a built-in preset file, extended and overridden by ``extra``.

    Every entry validates against ``model`` and is keyed by its ``name``.
    """
    from importlib import resources

    sources = [(f"built-in {table}s", resources.files("kdtui").joinpath(f"presets/{preset}").read_text("utf-8"))]
    if extra is not None:
        if not extra.is_file():
            raise KdtuiError(f"no such {table}s file: {extra}")
        sources.append((str(extra), extra.read_text(encoding="utf-8")))
    entries: dict[str, T] = {}
    for source, text in sources:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise KdtuiError(f"{source}: not valid TOML ({exc})") from None
        for index, raw in enumerate(data.get(table, [])):
            try:
                entry = model.model_validate(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise KdtuiError(f"{source}: {table} #{index + 1}: {where}: {first['msg']}") from None
            entries[str(getattr(entry, "name"))] = entry  # noqa: B009 - every preset model has a name
    return entries


def load_toml_config(path: Path, model: type[T], table: str | None = None) -> T:
    """Read ``path`` (optionally one table of it) and validate it against ``model``."""
    if not path.is_file():
        raise KdtuiError(f"no such config file: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise KdtuiError(f"{path}: not valid TOML ({exc})") from None
    if table is not None:
        data = data.get(table, {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise KdtuiError(f"{path}: {where}: {first['msg']}") from None
