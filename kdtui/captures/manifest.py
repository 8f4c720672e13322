"""A capture on disk: ``store/captures/NAME/`` with its ``manifest.json`` and shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kdtui.captures.format import sha256_file, write_atomic_bytes
from kdtui.config.layout import StoreLayout
from kdtui.config.names import check_capture_name
from kdtui.errors import KdtuiError

MANIFEST = "manifest.json"


class ShardEntry(BaseModel):
    """One shard as the manifest lists it (per-shard statistics ride along as extra fields)."""

    model_config = ConfigDict(extra="allow")

    file: str = Field(pattern=r"^shard-\d{5}\.safetensors$")
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    n_examples: int = Field(ge=0)
    n_tokens: int = Field(ge=0)


class StrategyEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


class CaptureManifest(BaseModel):
    """What ``manifest.json`` must hold for kdtui to read or resume a capture."""

    model_config = ConfigDict(extra="allow")

    name: str
    teacher: str
    backend: str
    tokenizer: dict[str, Any]
    strategy: StrategyEntry
    mode: str
    format: str
    k: int = Field(ge=1)
    temperatures: list[float]
    value_dtype: str
    n_examples: int = Field(ge=0)
    n_tokens: int = Field(ge=0)
    shards: list[ShardEntry]
    status: str
    config: dict[str, Any]


class CaptureFolder:
    """The folder of one capture; the manifest is written atomically so a kill never leaves half of one."""

    def __init__(self, root: Path, name: str) -> None:
        try:
            self.name = check_capture_name(name)
        except ValueError as exc:
            raise KdtuiError(str(exc)) from None
        self.path = StoreLayout(root).capture(name)
        self.manifest_path = self.path / MANIFEST

    def load_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when the capture has not started."""
        if not self.manifest_path.is_file():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise KdtuiError(f"{self.manifest_path} is damaged ({exc}); delete the capture folder and rerun") \
                from None
        try:
            CaptureManifest.model_validate(manifest)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise KdtuiError(f"{self.manifest_path} is damaged ({where}: {first['msg']}); delete the capture folder "
                             "and rerun") from None
        return dict(manifest)

    def verify(self, manifest: dict[str, Any], checksums: bool) -> list[str]:
        """Problems with the shards on disk: missing, wrong size, or (with ``checksums``) wrong sha256."""
        problems = []
        for entry in manifest["shards"]:
            path = self.path / entry["file"]
            if not path.is_file():
                problems.append(f"{path.name} is missing")
            elif path.stat().st_size != entry["bytes"]:
                problems.append(f"{path.name} has {path.stat().st_size} bytes, the manifest says {entry['bytes']}")
            elif checksums and sha256_file(path) != entry["sha256"]:
                problems.append(f"{path.name} does not match its sha256")
        return problems

    def save_manifest(self, manifest: dict[str, Any]) -> None:
        write_atomic_bytes(self.manifest_path, json.dumps(manifest, indent=1).encode())


def known_captures(root: Path) -> list[str]:
    return sorted(p.parent.name for p in StoreLayout(root).captures.glob(f"*/{MANIFEST}"))


def load_manifest(root: Path, name: str) -> dict[str, Any]:
    """The manifest of capture ``name``; a missing one names the captures there are."""
    manifest = CaptureFolder(root, name).load_manifest()
    if manifest is None:
        known = ", ".join(known_captures(root)) or "none"
        raise KdtuiError(f"no capture {name!r} in {root / 'captures'}; known: {known}")
    return manifest
