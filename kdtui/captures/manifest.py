"""A capture on disk: ``store/captures/NAME/`` with its ``manifest.json`` and shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdtui.captures.format import write_atomic_bytes
from kdtui.errors import KdtuiError

MANIFEST = "manifest.json"


class CaptureFolder:
    """The folder of one capture; the manifest is written atomically so a kill never leaves half of one."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.path = root / "captures" / name
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
        if not isinstance(manifest, dict):
            raise KdtuiError(f"{self.manifest_path} is not a capture manifest; delete the capture folder and rerun")
        return manifest

    def save_manifest(self, manifest: dict[str, Any]) -> None:
        write_atomic_bytes(self.manifest_path, json.dumps(manifest, indent=1).encode())


def known_captures(root: Path) -> list[str]:
    return sorted(p.parent.name for p in (root / "captures").glob(f"*/{MANIFEST}"))


def load_manifest(root: Path, name: str) -> dict[str, Any]:
    """The manifest of capture ``name``; a missing one names the captures there are."""
    manifest = CaptureFolder(root, name).load_manifest()
    if manifest is None:
        known = ", ".join(known_captures(root)) or "none"
        raise KdtuiError(f"no capture {name!r} in {root / 'captures'}; known: {known}")
    return manifest
