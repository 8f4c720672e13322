"""One pydantic model per recipe: its CLI flags, its TOML table and its identity come from the fields.

A field's ``description`` is its ``--help``; ``json_schema_extra`` may say
``{"identity": True}`` (the field defines what the run measures, so a resumed run
must keep it), ``{"identity": "file"}`` (likewise, by the file's content),
``{"identity": "unless_default"}`` (likewise, but only when set: for fields added later),
``{"flag": "sample"}`` (another flag name) or ``{"cli": False}`` (TOML only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tomllib
import types
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from kdtui.errors import KdtuiError


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _number_list(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def file_digest(path: str | None) -> str | None:
    """sha256 of a file's bytes (first 16 hex digits), or None without a file."""
    if path is None:
        return None
    try:
        with Path(path).expanduser().open("rb") as fh:  # in blocks: an imported file may be GBs
            return hashlib.file_digest(fh, "sha256").hexdigest()[:16]
    except OSError:
        raise KdtuiError(f"cannot read {path}; check the path") from None


def validation_message(exc: ValidationError, source: str, flags: bool) -> str:
    """One line for the first validation error, naming the flag (``--batch-size``) or TOML key."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    name = f"--{where.replace('_', '-')}" if flags else where
    hint = " (give the flag, or set it in the TOML table)" if first["type"] == "missing" else ""
    return f"{source}{name}: {first['msg']}{hint}"


class RecipeConfig(BaseModel):
    """Base of every recipe config: flags, TOML and identity generated from the fields."""

    # strict: "yes" is not a boolean and "8" not a number, in TOML as on the command line
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)
    TOML_TABLE: ClassVar[str] = ""

    # ----------------------------------------------------------------- CLI flags

    @classmethod
    def flag_name(cls, name: str) -> str:
        return "--" + str(_extra(cls.model_fields[name]).get("flag", name)).replace("_", "-")

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per field, with the field's description as help; absent flags stay unset."""
        for name, info in cls.model_fields.items():
            if _extra(info).get("cli") is False:
                continue
            annotation = _unwrap_optional(info.annotation)
            kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
            help_text = (info.description or "").replace("%", "%%")
            if not info.is_required() and info.default is not None and annotation is not bool:
                help_text += f" (default: {info.default})".replace("%", "%%")
            if annotation is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
                help_text += f" (default: {'on' if info.default else 'off'})"
            elif get_origin(annotation) is Literal:
                kwargs["choices"] = list(get_args(annotation))
            elif get_origin(annotation) is list:
                kwargs["type"] = _number_list
                kwargs["metavar"] = "X,Y,..."
            elif annotation in (int, float):
                kwargs["type"] = annotation
            kwargs["help"] = help_text
            parser.add_argument(cls.flag_name(name), **kwargs)

    @classmethod
    def from_sources(cls, flags: dict[str, Any], toml_path: str | Path | None = None) -> Self:
        """The config from a TOML table (if given) overridden by explicitly given flags.

        ``flags`` may hold anything (a whole argparse namespace): only this model's fields are taken.
        """
        data: dict[str, Any] = {}
        if toml_path is not None:
            data = load_toml_table(Path(toml_path), cls.TOML_TABLE)
        explicit = {k: v for k, v in flags.items() if k in cls.model_fields}
        try:
            return cls.model_validate(cls.preset_defaults(data | explicit) | data | explicit)
        except ValidationError as exc:
            loc = exc.errors()[0]["loc"]
            from_toml = toml_path is not None and bool(loc) and str(loc[0]) in data and str(loc[0]) not in explicit
            source = f"{toml_path}: [{cls.TOML_TABLE}] " if from_toml else ""
            raise KdtuiError(validation_message(exc, source, flags=not from_toml)) from None

    @classmethod
    def preset_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        """Values a named preset fills in under the TOML table and the flags (``chosen`` is both, merged)."""
        return {}

    # ------------------------------------------------------------------- identity

    def identity(self) -> dict[str, Any]:
        """What this run measures: identity fields, file fields by content. A resume must match it."""
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            kind = _extra(info).get("identity")
            if kind == "file":
                out[name] = file_digest(getattr(self, name))
            elif kind == "unless_default":
                # a field added later: at its default it leaves the identities (and job ids) of older runs as
                # they were
                if getattr(self, name) != info.default:
                    out[name] = getattr(self, name)
            elif kind:
                out[name] = getattr(self, name)
        return out

    def identity_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``field: old -> new`` for every identity field that differs."""
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)]


def resume_changes(recorded: dict[str, Any], cfg: RecipeConfig) -> list[str]:
    """What would make resuming a run (or capture) recorded with identity ``recorded`` measure something else
    under ``cfg``: the one rule for every resume. A field a later kdtui added measured, before it existed, its
    ``before`` value where it declares one (a new default that changes what is computed), else its default;
    left at that value, it is no change."""
    new = cfg.identity()
    fields = type(cfg).model_fields
    recorded = dict(recorded)
    for name, info in fields.items():
        if "before" in _extra(info) and name in new and name not in recorded:
            recorded[name] = _extra(info)["before"]
    new = {k: v for k, v in new.items() if k in recorded or k not in fields or v != fields[k].default}
    return identity_changes(recorded, new)


def load_toml_table(path: Path, table: str | None) -> dict[str, Any]:
    """One table of a TOML file (the whole file when ``table`` is None), as a dict."""
    if not path.is_file():
        raise KdtuiError(f"no such config file: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise KdtuiError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise KdtuiError(f"{path}: not UTF-8 text") from None
    if table:
        data = data.get(table, {})
        if not isinstance(data, dict):
            raise KdtuiError(f"{path}: [{table}] must be a table")
    return dict(data)

