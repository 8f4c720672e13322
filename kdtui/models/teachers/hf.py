"""The transformers teacher: any causal LM, CPU or GPU."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from kdtui.models.loading import load_model


class HFTeacher:
    """A transformers causal LM as a teacher."""

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto") -> None:
        loaded = load_model(path, device=device, dtype=dtype)
        self.model, self.tokenizer, self.device = loaded.model, loaded.tokenizer, loaded.device
        self.name = path
        self.model_type = str(self.model.config.model_type)
        # The output layer may be padded beyond the tokenizer; ids past len(tokenizer) never occur in text.
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_id: int | None = self.tokenizer.eos_token_id
        self.chat_tokenizer: Any = self.tokenizer
        # transformers >= 4.50 takes the positions to compute logits at; older ones and some families do not
        self._slices_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def encode(self, text: str, bos: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=bos)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def vocabulary(self) -> list[str]:
        from kdtui.models.teachers import hf_vocabulary

        return hf_vocabulary(self.tokenizer)

    @torch.inference_mode()
    def forward(self, sequences: list[list[int]], spans: list[tuple[int, int]]) -> list[torch.Tensor]:
        # Right padding keeps every position where it is; padded positions are never read.
        length = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(sequences), length), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        lo = self._first_kept(spans)
        keep = {"logits_to_keep": torch.arange(lo, max(b for _, b in spans), device=self.device)} if lo else {}
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **keep).logits
        return [logits[row, a - lo:b - lo] for row, (a, b) in enumerate(spans)]

    def _first_kept(self, spans: list[tuple[int, int]]) -> int:
        """The first position whose logits the batch needs, where transformers can skip the ones before it (the
        vocabulary-wide head is a quarter of a small model's forward); 0 where it cannot."""
        return min(a for a, _ in spans) if self._slices_logits else 0

    @torch.inference_mode()
    def forward_hidden(self, sequences: list[list[int]],
                       spans: list[tuple[int, int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        from kdtui.models.teachers import HeadInput

        seen = HeadInput()
        handle = self.model.get_output_embeddings().register_forward_pre_hook(seen)
        try:
            logits = self.forward(sequences, spans)
        finally:
            handle.remove()
        assert seen.value is not None  # what the head saw: from the first kept position on
        lo = self._first_kept(spans)
        return [(seen.value[row, a - lo:b - lo], rows)
                for row, ((a, b), rows) in enumerate(zip(spans, logits, strict=True))]

    def head(self) -> dict[str, Any]:
        from kdtui.models.heads import logit_transform

        head = self.model.get_output_embeddings()
        transform = logit_transform(self.model.config)
        return {"weight": head.weight.detach(), "bias": getattr(head, "bias", None),
                "logit_scale": transform.scale, "softcap": transform.softcap}

    @torch.inference_mode()
    def generate(self, ids: list[int], max_new_tokens: int, temperature: float | None,
                 seed: int) -> tuple[list[int], torch.Tensor]:
        torch.manual_seed(seed)
        sampling: dict[str, Any] = ({"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
                                    if temperature else {"do_sample": False, "temperature": None, "top_p": None,
                                                         "top_k": None})
        out = self.model.generate(
            input_ids=torch.tensor([ids], device=self.device), attention_mask=torch.ones((1, len(ids)),
                                                                                        device=self.device,
                                                                                        dtype=torch.long),
            max_new_tokens=max_new_tokens, output_logits=True, return_dict_in_generate=True,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=sorted(self.eos_ids) or None, **sampling,
        )
        new = out.sequences[0, len(ids):].tolist()
        logits = torch.stack([step[0] for step in out.logits])[: len(new)]
        return new, logits
