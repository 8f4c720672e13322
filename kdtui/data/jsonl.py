"""Reading JSON-lines files with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from kdtui.errors import KdtuiError


def jsonl_objects(lines: Iterable[str], source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a bad line is a one-line error naming it."""
    try:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise KdtuiError(f"{source}:{line_no}: not valid JSON ({exc.msg}); fix or remove that line") \
                    from None
            except RecursionError:
                raise KdtuiError(f"{source}:{line_no}: JSON nested too deeply to read; fix or remove that line") \
                    from None
            if not isinstance(record, dict):
                raise KdtuiError(f"{source}:{line_no}: expected a JSON object, got {type(record).__name__}")
            yield line_no, record
    except UnicodeDecodeError as exc:
        raise KdtuiError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
