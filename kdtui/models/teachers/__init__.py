"""Teacher backends behind one interface: tokenize, forward for chosen positions, generate with logits.

``hf`` runs any transformers causal LM; ``exllamav2`` runs EXL2 quantised models
on CUDA GPUs and is imported only when chosen.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import torch

from kdtui.errors import KdtuiError

BACKENDS = ("hf", "exllamav2")


class Teacher(Protocol):
    """What a capture needs from a teacher model."""

    name: str
    model_type: str  # the family, as refusals name it ("granite", "LlamaForCausalLM")
    vocab_size: int
    device: str
    eos_ids: set[int]
    eos_id: int | None  # the tokenizer's end-of-sequence token: what ends a reference answer (answer mode)
    chat_tokenizer: Any  # an object with apply_chat_template, or None

    def encode(self, text: str, bos: bool = True) -> list[int]:
        """Token ids of ``text``, with the model's BOS when it uses one and ``bos``."""

    def decode(self, ids: list[int]) -> str: ...

    def vocabulary(self) -> list[str]:
        """Token strings by id (for the tokenizer identity hash)."""

    def forward(self, sequences: list[list[int]], spans: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Logits [b - a, V] at positions a..b-1 of each sequence, on the teacher's device."""

    def generate(self, ids: list[int], max_new_tokens: int, temperature: float | None,
                 seed: int) -> tuple[list[int], torch.Tensor]:
        """New token ids and the logits [n, V] that produced each (greedy when temperature is None)."""

    def forward_hidden(self, sequences: list[list[int]],
                       spans: list[tuple[int, int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(head input [b - a, d], logits [b - a, V]) at positions a..b-1 of each sequence."""

    def head(self) -> dict[str, Any]:
        """The output head: weight [V, d], bias or None, logit_scale, softcap (None when there is none)."""


def vocab_identity(teacher: Teacher) -> dict[str, Any]:
    """Vocabulary size and a hash of every (id, token) pair: equal iff the tokenizers agree."""
    return identity_of(teacher.vocabulary(), teacher.vocab_size)


def identity_of(vocabulary: list[str], vocab_size: int) -> dict[str, Any]:
    """The identity of a vocabulary (token strings by id) under an output layer of ``vocab_size`` rows."""
    digest = hashlib.sha256()
    for index, token in enumerate(vocabulary):
        digest.update(f"{index}\t{token}\n".encode("utf-8", "surrogatepass"))
    return {"vocab_size": vocab_size, "vocab_hash": digest.hexdigest()[:16]}


def hf_vocabulary(tokenizer: Any) -> list[str]:
    """Token strings by id of a transformers tokenizer (ids with no token are empty)."""
    vocab = tokenizer.get_vocab()
    by_id = [""] * max(len(tokenizer), max(vocab.values()) + 1)
    for token, index in vocab.items():
        by_id[index] = token
    return by_id


def load_teacher(backend: str, path: str, device: str = "auto", **options: Any) -> Teacher:
    if backend == "hf":
        from kdtui.models.teachers.hf import HFTeacher

        return HFTeacher(path, device=device, dtype=options.get("dtype", "auto"))
    if backend == "exllamav2":
        from kdtui.models.teachers.exl2 import ExLlamaV2Teacher

        return ExLlamaV2Teacher(path, cache_type=options.get("cache_type", "Q4"),
                                max_seq_len=options.get("max_seq_len", 4096))
    raise KdtuiError(f"unknown teacher backend {backend!r}; use one of: {', '.join(BACKENDS)}")


class HeadInput:
    """Records what a model's output head receives (the final hidden state, after the final norm).

    A hook on the head module, not a model-specific attribute, so it reads the true head input of any
    architecture and any library version that calls the head as a module.
    """

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __call__(self, _module: Any, args: tuple[Any, ...], *_rest: Any) -> None:
        self.value = args[0]
