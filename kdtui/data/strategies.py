"""Teacher prompting strategies: named prefix/suffix templates loaded from TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kdtui.config.presets import get_named_preset, load_named_presets
from kdtui.errors import KdtuiError


class Strategy(BaseModel):
    """How a question is put to the teacher."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name used with --strategy.")
    label: str = Field("", description="Human-readable label for tables.")
    prefix: str = Field("", description="Text before the question (raw, as the study did).")
    suffix: str = Field("", description="Text after the question.")
    chat: bool = Field(False, description="Wrap prefix+question+suffix as the user turn of the chat template.")
    system: str | None = Field(None, description="Optional system turn (chat strategies only).")

    def context(self, question: str, tokenizer: Any = None) -> tuple[str, str]:
        """(text before the question, the whole teacher context) for one question."""
        if not self.chat:
            return self.prefix, self.prefix + question + self.suffix
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise KdtuiError(f"strategy {self.name!r} is a chat strategy, and the teacher has no chat template")
        messages = ([{"role": "system", "content": self.system}] if self.system else [])
        user = {"role": "user", "content": self.prefix + question + self.suffix}
        full = str(tokenizer.apply_chat_template([*messages, user], tokenize=False, add_generation_prompt=True))
        before = full[: full.index(question)] if question in full else ""
        return before, full


def load_strategies(extra: Path | None = None) -> dict[str, Strategy]:
    """Built-in strategies, extended or overridden by ``extra``."""
    return load_named_presets("strategies.toml", "strategy", Strategy, extra)


def get_strategy(name: str, extra: Path | None = None) -> Strategy:
    return get_named_preset(name, "strategies.toml", "strategy", Strategy, extra)


def target_start(before_ids: list[int] | None, ids: list[int]) -> int:
    """Where the targets begin in ``ids`` (the whole context, tokenised): after the longest common prefix with
    ``before_ids`` (the part before the targets, tokenised alone; None: only the first token comes before).

    The one token-boundary rule, for the teacher's capture and the student's examples alike, since aligning
    their positions needs both to cut in the same place: a token straddling the boundary belongs to the
    targets, and position 0, with nothing before it to predict it from, never does.
    """
    if before_ids is None:
        start = 1
    else:
        start = 0
        for a, b in zip(before_ids, ids, strict=False):
            if a != b:
                break
            start += 1
    return max(1, min(start, len(ids) - 1))
