"""Teacher prompting strategies: named prefix/suffix templates loaded from TOML."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    sources = [("built-in strategies", resources.files("kdtui").joinpath("presets/strategies.toml")
                .read_text(encoding="utf-8"))]
    if extra is not None:
        if not extra.is_file():
            raise KdtuiError(f"no such strategies file: {extra}")
        sources.append((str(extra), extra.read_text(encoding="utf-8")))
    strategies: dict[str, Strategy] = {}
    for source, text in sources:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise KdtuiError(f"{source}: not valid TOML ({exc})") from None
        for index, raw in enumerate(data.get("strategy", [])):
            try:
                strategy = Strategy.model_validate(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise KdtuiError(f"{source}: strategy #{index + 1}: {'.'.join(map(str, first['loc']))}: "
                                 f"{first['msg']}") from None
            strategies[strategy.name] = strategy
    return strategies


def get_strategy(name: str, extra: Path | None = None) -> Strategy:
    strategies = load_strategies(extra)
    if name not in strategies:
        raise KdtuiError(f"unknown strategy {name!r}; choose one of: {', '.join(sorted(strategies))}")
    return strategies[name]
