"""The study's own assessment cascade, replayed exactly, bugs included: protocol ``study``.

This is for replication, never the default.  It reproduces what the study's assessment
notebook computed automatically over one run, in that run's file order, so the published
accuracies can be recomputed.  Read the rules as the notebook applied them:

1. the first ``\\boxed{...}`` (also ``\\x08oxed``: only ``oxed{`` is matched) holding a bare
   number of digits and commas with at most one point;
2. the first line, if it holds one number or all its numbers are the same string
   ("5," and "5" differ);
3. the phrase "the answer is" / "the final answer is" / "the correct answer is", in lower
   case only, with any number after it: the notebook then took the first number of the
   *last response that reached rule 4* (a variable left over from an earlier row), so
   this rule is stateful over the run;
4. the last number of the response.

Its number pattern accepts a lone comma, and whatever ``float()`` cannot read (a lone
comma, an empty value) went to a human.  Here that is ``needs_review`` with no value, and
so is rule 3 before any row reached rule 4 (the notebook would have failed there).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kdtui.extract.cascade import Extraction

# A sign and a dollar sign may precede, a percent sign follow; the number itself is digits and
# commas around at most one point, so "," alone is a number here, as it was in the study.
# Every match also takes the one character after the number (or the end of the text).
_STUDY_NUMBER = re.compile(r"[-+]?[$]?(?P<num>[,\d]+\.?[,\d]*)%?(?: |$|\n|.)")
_STUDY_BOXED = re.compile(r"oxed\{ *(?P<num>[,\d]+\.?[,\d]*) *\}")
_STUDY_PHRASE = re.compile(r"the ?(?:final|correct)* ?answer ?is")


def _numbers(text: str) -> list[str]:
    return [m.group("num") for m in _STUDY_NUMBER.finditer(text)]


def _as_float(raw: str) -> float | None:
    try:
        return float(raw.replace(",", ""))
    except ValueError:
        return None


class StudyCascade:
    """One run's worth of the study's cascade: call it on each response in the run's order."""

    def __init__(self) -> None:
        self.left_over: list[str] | None = None  # the numbers of the last response that reached rule 4

    def __call__(self, response: str) -> Extraction:
        text = response.strip()
        boxed = _STUDY_BOXED.search(text)
        on_first_line = _numbers(text.split("\n")[0])
        phrase = _STUDY_PHRASE.search(text)
        if boxed:
            rule, raw = "boxed", boxed.group("num")
        elif len(on_first_line) == 1 or len(set(on_first_line)) == 1:
            rule, raw = "first_line", on_first_line[0]
        elif phrase and _numbers(text[phrase.start():]):
            if not self.left_over:  # the notebook read a variable that did not exist (yet)
                return Extraction(None, "answer_phrase", needs_review=True)
            rule, raw = "answer_phrase", self.left_over[0]
        else:
            self.left_over = _numbers(text)
            if not self.left_over:
                return Extraction(None, "none", needs_review=True)
            rule, raw = "last_number", self.left_over[-1]
        value = _as_float(raw)
        return Extraction(value, rule, needs_review=value is None, candidates=[] if value is None else [value])


def extract_study(responses: Iterable[str]) -> list[Extraction]:
    """The study's cascade over one run's responses, in the run's order."""
    cascade = StudyCascade()
    return [cascade(response) for response in responses]
