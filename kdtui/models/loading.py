"""Loading transformers models and tokenizers with clear errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdtui.config.layout import RUN_INFO
from kdtui.errors import KdtuiError, first_line


@dataclass
class LoadedModel:
    """A causal LM ready for generation, with its tokenizer and where it runs."""

    model: Any
    tokenizer: Any
    device: str
    dtype: str


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise KdtuiError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise KdtuiError(f"--device {device}: no CUDA device is visible; use --device cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        value = getattr(torch, dtype)
    except AttributeError:
        raise KdtuiError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None
    if not isinstance(value, torch.dtype):
        raise KdtuiError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return value


def end_token_ids(generation_eos: int | list[int] | None, tokenizer: Any) -> list[int]:
    """The ids generation stops at: the generation config's end-of-sequence ids and the tokenizer's."""
    ids = set(generation_eos if isinstance(generation_eos, list) else
              [generation_eos] if generation_eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


def finish_response(tokens: list[int], end_ids: list[int], tokenizer: Any) -> tuple[str, int, str]:
    """A generated continuation as a prediction sees it: the text up to the first end id, the new tokens
    (the end id counted) and the finish reason ("eos", or "length" when the budget ran out first). Every
    engine ends its responses here, so their runs compare token for token."""
    end = next((i for i, t in enumerate(tokens) if t in end_ids), None)
    kept = tokens if end is None else tokens[:end]
    text = str(tokenizer.decode(kept, skip_special_tokens=True))
    return text, len(kept) + (end is not None), "length" if end is None else "eos"


def check_model_path(name: str, adapter: str | None = None) -> None:
    """Fail fast, before any work is registered, on a model or adapter folder that is not there."""
    path = Path(name).expanduser()
    looks_local = path.is_absolute() or name.startswith((".", "~")) or path.exists()
    if looks_local and not (path / "config.json").is_file():
        raise KdtuiError(f"no model at {path} (expected a folder with config.json); "
                         "pass --model a transformers model folder")
    if adapter and not (Path(adapter).expanduser() / "adapter_config.json").is_file():
        raise KdtuiError(f"no PEFT adapter at {adapter} (expected adapter_config.json)")


def adapter_info(adapter: str | None) -> dict[str, Any]:
    """What ``kdtui distill`` wrote beside an adapter (its run, preset, capture and strategy), or {}."""
    if not adapter:
        return {}
    path = Path(adapter).expanduser() / RUN_INFO
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def load_model(name: str, adapter: str | None = None, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load ``name`` (folder or hub id) and an optional PEFT adapter, ready to generate."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    check_model_path(name, adapter)
    resolved_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, resolved_device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype)
    except KdtuiError:
        raise
    except Exception as exc:  # transformers and safetensors raise many types for a bad or partial model
        raise KdtuiError(f"cannot load model {name!r} ({type(exc).__name__}: {first_line(exc)[:200]}); check that "
                         "its files are complete") from None
    if adapter:
        model = _apply_adapter(model, Path(adapter).expanduser())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    model.to(resolved_device)  # type: ignore[arg-type]
    model.eval()
    return LoadedModel(model, tokenizer, resolved_device, str(torch_dtype).removeprefix("torch."))


def _apply_adapter(model: Any, adapter: Path) -> Any:
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(adapter))
    except (ValueError, RuntimeError, KeyError) as exc:
        raise KdtuiError(f"adapter {adapter} does not fit this model: {first_line(exc)}") from None
