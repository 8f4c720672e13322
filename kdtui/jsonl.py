"""Reading JSON-lines files with errors that name the file and line, mending what no store can hold."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kdtui.errors import KdtuiError
from kdtui.render import without_lone_surrogates

BOM = "\ufeff"


@dataclass
class Repairs:
    """What reading a file had to mend, for its summary line."""

    surrogates: int = 0

    def note(self) -> str:
        return (f"; {self.surrogates:,} lone surrogate{'s' if self.surrogates != 1 else ''} (invalid UTF-16 escapes) "
                "replaced by U+FFFD") if self.surrogates else ""


def _mend(value: Any, repairs: Repairs) -> Any:
    if isinstance(value, str):
        text, count = without_lone_surrogates(value)
        repairs.surrogates += count
        return text
    if isinstance(value, dict):
        return {_mend(k, repairs): _mend(v, repairs) for k, v in value.items()}
    if isinstance(value, list):
        return [_mend(v, repairs) for v in value]
    return value


def jsonl_objects(lines: Iterable[str], source: str,
                  repairs: Repairs | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a bad line is a one-line error naming it.

    A byte-order mark on the first line is skipped; lone surrogates (``"\\ud800"``: valid JSON, but no
    UTF-8 file or DuckDB string can hold one) are replaced and counted in ``repairs``.
    """
    repairs = repairs if repairs is not None else Repairs()
    try:
        for line_no, line in enumerate(lines, start=1):
            if line_no == 1 and line.startswith(BOM):
                line = line[1:]
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
            if "\\ud" in line.lower():  # only a \uD800-\uDFFF escape can make one
                record = _mend(record, repairs)
            yield line_no, record
    except UnicodeDecodeError as exc:
        raise KdtuiError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
