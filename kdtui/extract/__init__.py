"""Answer extraction: pure Python, nothing of kdtui's imported (an import-linter contract).

* ``default``: kdtui's cascade (``cascade.py``).
* ``study-rules`` (alias ``seed``): the four rules as the study described them.
* ``study``: the study's notebook code replayed exactly, bugs included, stateful over a
  run (``study.py``); for replication only.

``extract_answers`` takes a run's responses in order and is the only way to get ``study``
right; ``extract_answer`` handles one response.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

# The tolerance rule is all the store's schema needs: the cascade (regexes compiled at import, ~15 ms) loads
# on first use of anything else, so `kdtui sql` and `kdtui --help` never pay for it.
from kdtui.extract.match import ABS_TOLERANCE, REL_TOLERANCE, answers_match, sql_answers_match

if TYPE_CHECKING:
    from kdtui.extract.cascade import (
        KINDS,
        MAX_CANDIDATES,
        SINGLE_PROTOCOLS,
        Extraction,
        Number,
        extract_answer,
        gold_answer,
        scan_numbers,
    )
    from kdtui.extract.study import StudyCascade

    PROTOCOLS: tuple[str, ...]

_LAZY = {"KINDS": "cascade", "MAX_CANDIDATES": "cascade", "SINGLE_PROTOCOLS": "cascade", "Extraction": "cascade",
         "Number": "cascade", "extract_answer": "cascade", "gold_answer": "cascade", "scan_numbers": "cascade",
         "StudyCascade": "study"}


def __getattr__(name: str) -> Any:
    if name == "PROTOCOLS":  # every protocol a user can name; "seed" is the old name of "study-rules"
        return __getattr__("SINGLE_PROTOCOLS")
    if name in _LAZY:
        value = getattr(importlib.import_module(f"kdtui.extract.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kdtui.extract' has no attribute {name!r}")


def extract_answers(responses: Iterable[str], protocol: str = "default",
                    questions: Sequence[str | None] | None = None,
                    finish_reasons: Sequence[str | None] | None = None) -> list[Extraction]:
    """One extraction per response, in order. ``study`` needs the whole run, in its original order.

    ``questions`` and ``finish_reasons`` (one per response, when known) sharpen ``default``'s reading.
    """
    from kdtui.extract.cascade import extract_answer
    from kdtui.extract.study import extract_study

    if protocol == "study":
        return extract_study(responses)
    texts = list(responses)
    asked = list(questions) if questions is not None else [None] * len(texts)
    reasons = list(finish_reasons) if finish_reasons is not None else [None] * len(texts)
    return [extract_answer(text, protocol, question=q, finish_reason=f)
            for text, q, f in zip(texts, asked, reasons, strict=True)]


__all__ = [
    "ABS_TOLERANCE",
    "KINDS",
    "MAX_CANDIDATES",
    "PROTOCOLS",
    "REL_TOLERANCE",
    "SINGLE_PROTOCOLS",
    "Extraction",
    "Number",
    "StudyCascade",
    "answers_match",
    "extract_answer",
    "extract_answers",
    "gold_answer",
    "scan_numbers",
    "sql_answers_match",
]
