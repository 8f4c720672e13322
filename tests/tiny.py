"""A tiny Llama and a tokenizer trained here: real transformers loading and generation, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdtui.data import synthetic

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(vocab_size: int = 400):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [p.question + "\n" + p.answer for p in synthetic.generate(300, seed=7)]
    corpus += ["The answer is \\boxed{18}. Step 1: 0 1 2 3 4 5 6 7 8 9 ####"] * 5
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_llama(folder: Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """Save a randomly initialised Llama with a trained tokenizer to ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


FAMILIES = ("llama-tied", "llama-untied", "gemma2", "cohere", "granite")


def build_tiny_family(folder: Path, family: str, seed: int = 0, hidden: int = 64) -> Path:
    """A tiny random model of a family whose logits are transformed after the head (Gemma 2 soft-caps, Cohere
    multiplies by logit_scale, Granite divides by logits_scaling), with the transform made large enough to
    matter at random-init logit sizes."""
    import torch
    from transformers import (
        CohereConfig,
        CohereForCausalLM,
        Gemma2Config,
        Gemma2ForCausalLM,
        GraniteConfig,
        GraniteForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    tokenizer = build_tokenizer()
    common = {"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": hidden * 2,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 1024, "bos_token_id": tokenizer.bos_token_id,
              "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    config: Any
    cls: Any
    if family.startswith("llama"):
        config, cls = LlamaConfig(**common, tie_word_embeddings=family == "llama-tied"), LlamaForCausalLM
    elif family == "gemma2":
        config, cls = Gemma2Config(**common, head_dim=16, final_logit_softcapping=0.5), Gemma2ForCausalLM
    elif family == "cohere":
        config, cls = CohereConfig(**common, logit_scale=8.0), CohereForCausalLM
    elif family == "granite":
        config, cls = GraniteConfig(**common, logits_scaling=0.125), GraniteForCausalLM
    else:
        raise ValueError(family)
    torch.manual_seed(seed)
    model = cls(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
