"""The ExLlamaV2 teacher: EXL2-quantised models split across every visible GPU.

exllamav2 compiles or loads CUDA extensions when imported, so it is imported here
only, when this backend is chosen, and a missing package or GPU is a one-line error.
Written against exllamav2's own API (``ExLlamaV2Config``, ``ExLlamaV2``,
``load_autosplit``, the quantised caches and ``ExLlamaV2DynamicGenerator`` with
``return_logits``).
"""

from __future__ import annotations

from typing import Any

import torch

from kdtui.errors import KdtuiError, first_line

CACHE_TYPES = ("FP16", "Q8", "Q6", "Q4")


def _import_exllamav2() -> Any:
    if not torch.cuda.is_available():
        raise KdtuiError("the exllamav2 backend needs a CUDA GPU and none is visible; use --backend hf")
    try:
        import exllamav2
        import exllamav2.generator
    except ImportError as exc:
        raise KdtuiError(f"exllamav2 is not importable ({first_line(exc)}); install it with "
                         "pip install -e '.[gpu]' on a CUDA machine, or use --backend hf") from None
    return exllamav2


class ExLlamaV2Teacher:
    """An EXL2 model as a teacher; forward for prompt/answer modes, the dynamic generator for generate."""

    def __init__(self, path: str, cache_type: str = "Q4", max_seq_len: int = 4096) -> None:
        if cache_type not in CACHE_TYPES:
            raise KdtuiError(f"unknown cache type {cache_type!r}; use one of: {', '.join(CACHE_TYPES)}")
        ex = _import_exllamav2()
        from exllamav2.generator import ExLlamaV2DynamicGenerator

        try:
            config = ex.ExLlamaV2Config(path)
        except (OSError, ValueError, AssertionError) as exc:
            raise KdtuiError(f"cannot read EXL2 model at {path}: {first_line(exc)}") from None
        config.max_seq_len = min(max_seq_len, config.max_seq_len)
        self.model = ex.ExLlamaV2(config)
        cache_class = {"FP16": ex.ExLlamaV2Cache, "Q8": ex.ExLlamaV2Cache_Q8, "Q6": ex.ExLlamaV2Cache_Q6,
                       "Q4": ex.ExLlamaV2Cache_Q4}[cache_type]
        # The cache is allocated lazily so that load_autosplit can place layers and cache together.
        self.cache = cache_class(self.model, max_seq_len=config.max_seq_len, lazy=True)
        self.model.load_autosplit(self.cache)
        self.tokenizer = ex.ExLlamaV2Tokenizer(config)
        self.generator = ExLlamaV2DynamicGenerator(model=self.model, cache=self.cache, tokenizer=self.tokenizer)
        self.config = config
        self.name = path
        self.model_type = str(config.architecture)
        self.vocab_size = int(config.vocab_size)
        self.device = "cuda"
        self.eos_ids = {int(self.tokenizer.eos_token_id)}
        self.eos_id: int | None = int(self.tokenizer.eos_token_id)
        if isinstance(getattr(config, "eos_token_id", None), int):
            self.eos_ids.add(int(config.eos_token_id))
        self.chat_tokenizer: Any = self._chat_tokenizer(path)

    @staticmethod
    def _chat_tokenizer(path: str) -> Any:
        """The model folder's Hugging Face tokenizer, for chat templates (None if absent)."""
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError):
            return None

    def encode(self, text: str, bos: bool = True) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text, add_bos=bos)[0].tolist()]

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(torch.tensor([ids]))[0]) if ids else ""

    def vocabulary(self) -> list[str]:
        return list(self.tokenizer.get_id_to_piece_list(True))

    @torch.inference_mode()
    def forward(self, sequences: list[list[int]], spans: list[tuple[int, int]]) -> list[torch.Tensor]:
        out = []
        for sequence, (a, b) in zip(sequences, spans, strict=True):
            # No cache: the whole sequence in one pass; logits stay on the GPU of the output layer.
            logits = self.model.forward(torch.tensor([sequence], dtype=torch.long), cache=None)
            out.append(logits[0, a:b, : self.vocab_size])
        return out

    @torch.inference_mode()
    def forward_hidden(self, sequences: list[list[int]],
                       spans: list[tuple[int, int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Head inputs via a hook on the head module (``model.modules[-1]``, an ``ExLlamaV2Linear``).

        ``forward(..., return_last_state=True)`` keeps only the last position (and, in later versions,
        the state before the final norm), so the head's own input is read instead: it is the normed
        state at every position, whatever the version.
        """
        from kdtui.models.teachers import HeadInput

        head_module = self.model.modules[-1]
        original = head_module.forward
        seen = HeadInput()

        def recording(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            seen(head_module, (hidden_states,))
            return original(hidden_states, *args, **kwargs)

        head_module.forward = recording
        out = []
        try:
            for sequence, (a, b) in zip(sequences, spans, strict=True):
                logits = self.model.forward(torch.tensor([sequence], dtype=torch.long), cache=None)
                assert seen.value is not None
                out.append((seen.value.reshape(-1, seen.value.shape[-1])[a:b], logits[0, a:b, : self.vocab_size]))
        finally:
            head_module.forward = original
        return out

    def head(self) -> dict[str, Any]:
        """The head's weight, dequantised (``get_weight_tensor_dq`` returns it as [d, V])."""
        from kdtui.models.heads import logit_transform

        # ExLlamaV2Config.logit_scale already folds in Granite's 1 / logits_scaling and MiniCPM's base-dim
        # scaling (config.py, "Granite is backwards"); the capture's head check verifies it on real logits.
        weight = self.model.modules[-1].get_weight_tensor_dq().T[: self.vocab_size]
        transform = logit_transform(self.config)
        return {"weight": weight, "bias": None, "logit_scale": transform.scale, "softcap": transform.softcap}

    @torch.inference_mode()
    def generate(self, ids: list[int], max_new_tokens: int, temperature: float | None,
                 seed: int) -> tuple[list[int], torch.Tensor]:
        from exllamav2.generator import ExLlamaV2DynamicJob, ExLlamaV2Sampler

        settings = ExLlamaV2Sampler.Settings.greedy() if temperature is None else \
            ExLlamaV2Sampler.Settings(temperature=temperature, top_k=0, top_p=1.0)
        job = ExLlamaV2DynamicJob(
            input_ids=torch.tensor([ids], dtype=torch.long), max_new_tokens=max_new_tokens,
            gen_settings=settings, seed=seed, stop_conditions=sorted(self.eos_ids), return_logits=True,
        )
        self.generator.enqueue(job)
        tokens: list[int] = []
        chunks: list[torch.Tensor] = []
        while self.generator.num_remaining_jobs():
            for result in self.generator.iterate():
                if result.get("job") is not job:
                    continue
                if "token_ids" in result:
                    tokens += result["token_ids"].flatten().tolist()
                if "logits" in result:
                    chunks.append(result["logits"].reshape(-1, result["logits"].shape[-1]))
        logits = torch.cat(chunks)[:, : self.vocab_size] if chunks else torch.zeros((0, self.vocab_size))
        n = min(len(tokens), logits.shape[0])
        return tokens[:n], logits[:n]
