"""Named presets (prompts, strategies): built-in TOML files extended by the user's."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from kdtui.errors import KdtuiError

T = TypeVar("T", bound=BaseModel)


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




def get_named_preset(name: str, preset: str, table: str, model: type[T], extra: Path | None) -> T:
    """One named entry of :func:`load_named_presets`; an unknown name lists the known ones."""
    entries = load_named_presets(preset, table, model, extra)
    if name not in entries:
        raise KdtuiError(f"unknown {table} {name!r}; choose one of: {', '.join(sorted(entries))}")
    return entries[name]
