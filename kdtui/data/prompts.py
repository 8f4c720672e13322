"""Named evaluation prompts: built-in presets plus user TOML files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from kdtui.config.presets import get_named_preset, load_named_presets
from kdtui.errors import KdtuiError


class PromptTemplate(BaseModel):
    """How a question becomes the text a model continues."""

    name: str = Field(description="Name used with --prompt.")
    template: str = Field(description="Python format string; {question} is replaced by the question.")
    chat: bool = Field(False, description="Wrap the filled template as the user turn of the chat template.")
    system: str | None = Field(None, description="Optional system turn (chat prompts only).")
    max_new_tokens: int = Field(350, gt=0, description="Default generation budget for this prompt.")
    description: str = Field("", description="One line shown in listings.")

    @field_validator("template")
    @classmethod
    def _has_question(cls, value: str) -> str:
        if "{question}" not in value:
            raise ValueError("template must contain {question}")
        return value

    def render(self, question: str, tokenizer: Any = None) -> str:
        """The prompt text for one question."""
        text = self.template.replace("{question}", question)
        if not self.chat:
            return text
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise KdtuiError(f"prompt {self.name!r} needs a chat template, and this tokenizer has none; "
                             "use --prompt plain")
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": text}]
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(rendered)


def load_prompts(extra: Path | None = None) -> dict[str, PromptTemplate]:
    """The built-in prompts, overridden and extended by ``extra``."""
    return load_named_presets("prompts.toml", "prompt", PromptTemplate, extra)


def get_prompt(name: str, extra: Path | None = None) -> PromptTemplate:
    return get_named_preset(name, "prompts.toml", "prompt", PromptTemplate, extra)
