"""Evaluation on vLLM (optional extra ``kdtui[vllm]``, CUDA only): the base model once, a distilled student
as a LoRA adapter on it (``enable_lora``), tensor parallelism as configured.

It generates what :func:`kdtui.recipes.evaluate.generate_batch` generates, so runs stay comparable and a
run resumes the same way: prompts are tokenised here by the model's own Hugging Face tokenizer (the same
special tokens, the same left truncation) and handed to vLLM as token ids; generation stops at the same
end-of-sequence ids; the kept tokens are decoded by the same tokenizer. Only the kernels differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdtui.errors import KdtuiError, first_line
from kdtui.models.loading import end_token_ids, finish_response

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed max_lora_rank values (LoRAConfig)


def check_vllm() -> None:
    """One line, before any work is registered, where vLLM or a CUDA GPU is missing."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise KdtuiError("--engine vllm needs vLLM: pip install -e '.[vllm]' on a CUDA machine, or use --engine "
                         "transformers") from None
    import torch

    if not torch.cuda.is_available():
        raise KdtuiError("--engine vllm needs a CUDA GPU and none is visible here; use --engine transformers")


def lora_rank(adapter: str) -> int:
    """The smallest max_lora_rank vLLM accepts that holds the adapter's rank."""
    try:
        rank = int(json.loads((Path(adapter).expanduser() / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError):
        raise KdtuiError(f"cannot read the LoRA rank from {adapter}/adapter_config.json") from None
    fitting = [r for r in LORA_RANKS if r >= rank]
    if not fitting:
        raise KdtuiError(f"adapter rank {rank} is above vLLM's largest ({LORA_RANKS[-1]}); use --engine transformers")
    return fitting[0]


def end_ids(model: str, tokenizer: Any) -> list[int]:
    """The end-of-sequence ids transformers' generate stops at for this model."""
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(model).eos_token_id
    except (OSError, ValueError):
        eos = None
    return end_token_ids(eos, tokenizer)


class VllmEngine:
    """The model in vLLM, generating batches of prompts the way the transformers path does."""

    def __init__(self, model: str, adapter: str | None, dtype: str, tensor_parallel: int, gpu_memory: float,
                 seed: int, max_new_tokens: int) -> None:
        check_vllm()
        from transformers import AutoConfig, AutoTokenizer
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.truncation_side = "left"
        context = getattr(AutoConfig.from_pretrained(model), "max_position_embeddings", None)
        self.context: int | None = context if isinstance(context, int) else None
        self.end_ids = end_ids(model, self.tokenizer)
        lora: dict[str, Any] = {"enable_lora": True, "max_lora_rank": lora_rank(adapter), "max_loras": 1} \
            if adapter else {}
        try:
            self.llm = LLM(model=model, tokenizer=model, dtype="bfloat16" if dtype == "auto" else dtype,
                           tensor_parallel_size=tensor_parallel, gpu_memory_utilization=gpu_memory, seed=seed,
                           max_model_len=self.context, **lora)
        except Exception as exc:  # vLLM raises many types for a model it cannot serve
            raise KdtuiError(f"vLLM cannot load {model} ({type(exc).__name__}: {first_line(exc)[:200]})") from None
        self.lora = LoRARequest("adapter", 1, str(Path(adapter).expanduser())) if adapter else None
        self.max_new_tokens = max_new_tokens

    def generate(self, prompts: list[str], add_special_tokens: bool, max_input_tokens: int | None,
                 sample: bool, temperature: float, top_p: float, seed: int) -> list[tuple[str, int, str]]:
        """(response, new tokens, finish reason) per prompt, as ``generate_batch`` returns them."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        encoded = self.tokenizer(prompts, add_special_tokens=add_special_tokens,
                                 truncation=max_input_tokens is not None, max_length=max_input_tokens)["input_ids"]
        params = [SamplingParams(n=1, max_tokens=self.max_new_tokens, stop_token_ids=self.end_ids,
                                 temperature=temperature if sample else 0.0, top_p=top_p if sample else 1.0,
                                 seed=seed + i if sample else None, detokenize=False)
                  for i in range(len(prompts))]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in encoded], params,
                                    use_tqdm=False, lora_request=self.lora)
        # in the order of the prompts
        return [finish_response(list(o.outputs[0].token_ids), self.end_ids, self.tokenizer) for o in outputs]
