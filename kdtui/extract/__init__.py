"""Answer extraction: pure Python, nothing of kdtui's imported (an import-linter contract).

* ``default``: kdtui's cascade (``cascade.py``).
* ``study-rules`` (alias ``seed``): the four rules as the study described them.
* ``study``: the study's notebook code replayed exactly, bugs included, stateful over a
  run (``study.py``); for replication only.

``extract_answers`` takes a run's responses in order and is the only way to get ``study``
right; ``extract_answer`` handles one response.
"""

from collections.abc import Iterable, Sequence

from kdtui.extract.cascade import (
    ABS_TOLERANCE,
    KINDS,
    MAX_CANDIDATES,
    REL_TOLERANCE,
    SINGLE_PROTOCOLS,
    Extraction,
    Number,
    answers_match,
    extract_answer,
    gold_answer,
    scan_numbers,
    sql_answers_match,
)
from kdtui.extract.study import StudyCascade, extract_study

# Every protocol a user can name; "seed" is the old name of "study-rules".
PROTOCOLS: tuple[str, ...] = SINGLE_PROTOCOLS


def extract_answers(responses: Iterable[str], protocol: str = "default",
                    questions: Sequence[str | None] | None = None,
                    finish_reasons: Sequence[str | None] | None = None) -> list[Extraction]:
    """One extraction per response, in order. ``study`` needs the whole run, in its original order.

    ``questions`` and ``finish_reasons`` (one per response, when known) sharpen ``default``'s reading.
    """
    if protocol == "study":
        return extract_study(responses)
    texts = list(responses)
    asked = list(questions) if questions is not None else [None] * len(texts)
    reasons = list(finish_reasons) if finish_reasons is not None else [None] * len(texts)
    return [extract_answer(text, protocol, question=q, finish_reason=f)
            for text, q, f in zip(texts, asked, reasons, strict=True)]


__all__ = [
    "ABS_TOLERANCE", "KINDS", "MAX_CANDIDATES", "PROTOCOLS", "REL_TOLERANCE", "Extraction", "Number", "StudyCascade",
    "answers_match", "extract_answer", "extract_answers", "gold_answer", "scan_numbers", "sql_answers_match",
]
