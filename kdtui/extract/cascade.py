"""Turn a model's free-text GSM8K response into one number.

Two protocols share one number scanner:

* ``study-rules`` (alias ``seed``) is the study's four-rule cascade as its paper
  describes it (boxed, first line, answer phrase, last number); ``study.py`` has the
  notebook's actual code, bugs included.
* ``default`` reads the answer the model committed to (``committed.py``), with this
  module's scanner: nested ``\\boxed{}``, ``\\frac``, mixed numbers, number words,
  ``#### N``, list and step indices, degenerate repeated tails.

Every regex here is linear in its input (no nested unbounded quantifiers), so a
1 MB response is scanned in milliseconds.  Pure Python: no torch, no Textual.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from typing import Literal

from kdtui.extract.match import answers_match

Protocol = Literal["default", "study-rules", "seed", "study"]
# Every protocol ("study" is only right over a whole run, in order: see study.py and extract_answers).
SINGLE_PROTOCOLS: tuple[str, ...] = ("default", "study-rules", "seed", "study")
MAX_CANDIDATES = 9

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_UNIT_RE = "|".join(sorted(_UNITS, key=len, reverse=True))
_TENS_RE = "|".join(_TENS)
_WORD_NUMBER = (
    rf"(?:(?:{_TENS_RE})(?:[- ](?:{_UNIT_RE}))?|{_UNIT_RE})"
    rf"(?:[ ](?:hundred|thousand|million))?"
)

# Each pattern opens with a lookahead on its possible first characters: Python's
# engine otherwise tries every alternative at every position (3x slower).
_NUMBER_RE = re.compile(
    r"(?=[-\d\\zotfsenZOTFSEN])"
    r"(?:(?P<frac>\\[dt]?frac\{\s*(?P<fn>-?\d+(?:\.\d+)?)\s*\}\s*\{\s*(?P<fd>\d+(?:\.\d+)?)\s*\})"
    r"|(?P<mixed>(?<![\w.,/])(?P<mw>\d+)[ ](?P<mn>\d+)/(?P<md>\d+)(?![\d/]))"
    r"|(?P<slash>(?<![\w.,/])(?P<sn>-?\d+)/(?P<sd>\d+)(?![\d/.]))"
    r"|(?P<num>(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?![\d])|\d+)(?:\.\d+)?(?:[eE][+-]?\d{1,3}(?!\w))?(?![\d]))"
    rf"|(?P<word>\b{_WORD_NUMBER}\b))",
    re.IGNORECASE,
)
# More digits in a row than any GSM8K answer has (or a float can hold exactly).
_HUGE_NUMBER_RE = re.compile(r"\d{40}")
# The study's notebooks matched plain unsigned numbers (a sign or a fraction was
# never part of an answer there); "seed" keeps that so its numbers replay exactly.
_SEED_NUMBER_RE = re.compile(r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
# Words that make the number right after them an index, not a quantity.
_INDEX_BEFORE_RE = re.compile(
    r"(?=[sqpeoc#SQPEOC])"
    r"(?:\b(?:step|question|problem|example|option|part|case|exercise)[ \t]*|(?<!#)#)(?=\d)",
    re.IGNORECASE,
)
# "1. ..." / "2) ..." at the start of a line; an enumeration when a neighbour exists.
_LIST_ITEM_RE = re.compile(r"^[ \t#*(-]*(\d{1,2})[.):](?=[ \t]+\S)", re.MULTILINE)
_ANSWER_PHRASE_RE = re.compile(
    r"\banswer\s*(?:is|:|=|would\s+be|will\s+be)\s*:?", re.IGNORECASE
)
_GSM8K_MARKER_RE = re.compile(r"####")
# A model taking back what it said.
_CORRECTION_RE = re.compile(
    r"\b(?:wait|actually|oops|correction|let me (?:re-?do|re-?check|re-?calculate|try again)"
    r"|I made (?:a|an) (?:mistake|error)|that(?: i|')s (?:wrong|incorrect))\b",
    re.IGNORECASE,
)
_SEED_PHRASE_RE = re.compile(r"the\s+(?:final\s+|correct\s+)?answer\s+is", re.IGNORECASE)
# "\x08oxed": a JSON "\b" escape that turned the backslash of "\boxed" into a backspace.
_BOXED_RE = re.compile(r"(?:\\b|\x08)oxed\s*\{")
_BRACE_RE = re.compile(r"[{}]")
_SENTENCE_SPLIT_RE = re.compile(r"[^\n.!?]*(?:[.!?]+|\n|$)")
_BOX_SCAN_LIMIT = 400
_MAX_BOXES = 16
_WINDOW = 20_000
_SHORT_LINE_WORDS = 4
_PHRASE_LOOKAHEAD = 80


@dataclass(frozen=True)
class Number:
    """One number found in a response, with its position in the original text."""

    value: float
    start: int
    end: int
    is_word: bool = False
    is_index: bool = False
    is_fraction: bool = False


Kind = Literal["answer", "no_answer", "conflicting", "unclear"]
KINDS: tuple[str, ...] = ("answer", "no_answer", "conflicting", "unclear")
REVIEW_KINDS = ("conflicting", "unclear")  # a person settles these


@dataclass(frozen=True)
class Extraction:
    """The answer taken from one response, how it was found, and what kind of commitment it is.

    ``kind`` follows JUDGING.md: ``answer`` (one value for the question asked), ``no_answer`` (the
    model never committed: value None), ``conflicting`` (several final values, none retracted) or
    ``unclear`` (a value, with real doubt); the last two go to review. ``reason`` says why, in a few
    words. Left empty, the kind follows from the value and the review flag (the study protocols).
    """

    value: float | None
    rule: str
    needs_review: bool
    candidates: list[float] = field(default_factory=list)
    span: tuple[int, int] | None = None
    kind: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            kind = ("unclear" if self.needs_review else "no_answer") if self.value is None else \
                ("unclear" if self.needs_review else "answer")
            object.__setattr__(self, "kind", kind)
        if not self.reason:
            object.__setattr__(self, "reason", self.rule.replace("_", " "))

    @property
    def value_or_sentinel(self) -> float:
        """The study's convention: -1 stands for "no answer"."""
        return -1.0 if self.value is None else self.value


def gold_answer(gsm8k_answer: str) -> float:
    """The number after ``####`` in a GSM8K reference solution.

    Raises ``ValueError`` when the solution has no ``####`` line with a number.
    """
    marker = gsm8k_answer.rfind("####")
    if marker < 0:
        raise ValueError("GSM8K answer has no '#### N' line")
    numbers = scan_numbers(gsm8k_answer, marker + 4, len(gsm8k_answer))
    if not numbers:
        raise ValueError(f"GSM8K answer has no number after '####': {gsm8k_answer[marker:][:40]!r}")
    return numbers[0].value


def _word_value(text: str) -> float:
    parts = re.split(r"[- ]", text.lower())
    total = 0
    for part in parts:
        if part in _UNITS:
            total += _UNITS[part]
        elif part in _TENS:
            total += _TENS[part]
        elif part in _SCALES:
            total = max(total, 1) * _SCALES[part]
    return float(total)


def _index_starts(text: str, start: int, stop: int) -> set[int]:
    """Where numbers that are indices begin: "Step 3", "#2", and enumerations."""
    starts = {m.end() for m in _INDEX_BEFORE_RE.finditer(text, start, stop)}
    found = [(int(m.group(1)), m.start(1)) for m in _LIST_ITEM_RE.finditer(text, start, stop)]
    values = {value for value, _ in found}
    # "1. ... 2. ..." is a list; a lone "5. Thank you." opening is an answer.
    starts.update(pos for value, pos in found if value - 1 in values or value + 1 in values)
    return starts


def _match_value(match: re.Match[str]) -> float:
    kind = match.lastgroup
    if kind == "num":
        return float(match.group("num").replace(",", ""))
    if kind == "word":
        return _word_value(match.group("word"))
    if kind == "frac":
        numerator, denominator = float(match.group("fn")), float(match.group("fd"))
    elif kind == "mixed":
        numerator = float(match.group("mw")) * float(match.group("md")) + float(match.group("mn"))
        denominator = float(match.group("md"))
    else:
        numerator, denominator = float(match.group("sn")), float(match.group("sd"))
    return numerator / denominator if denominator else math.nan


def scan_numbers(text: str, start: int = 0, end: int | None = None) -> list[Number]:
    """Every number in ``text[start:end]``, in order, with positions in ``text``."""
    stop = len(text) if end is None else end
    indices = _index_starts(text, start, stop)
    found: list[Number] = []
    for match in _NUMBER_RE.finditer(text, start, stop):
        try:
            value = _match_value(match)
        except OverflowError:
            continue
        if not math.isfinite(value):
            continue
        kind = match.lastgroup
        found.append(
            Number(
                value=value,
                start=match.start(),
                end=match.end(),
                is_word=kind == "word",
                is_fraction=kind in ("slash", "mixed"),
                is_index=kind == "num" and match.start() in indices,
            )
        )
    return found


def _windows(text: str, limit: int | None = None) -> list[tuple[int, int]]:
    """The parts of a response that are analysed: all of it, or head and tail.

    A response longer than two windows is degenerate (GSM8K answers take a few
    hundred tokens); its opening and its end decide the answer, and bounding the
    scan keeps a 1 MB response well under a second.
    """
    stop = len(text) if limit is None else limit
    if stop <= 2 * _WINDOW:
        return [(0, stop)]
    windows = [(0, _WINDOW), (stop - _WINDOW, stop)]
    if not any(char.isdigit() for char in text[stop - _WINDOW:stop]):
        # No number at the end: look around the last digit, wherever it is.
        last_digit = max(text.rfind(d, 0, stop) for d in "0123456789")
        if last_digit >= _WINDOW:
            windows.insert(1, (max(_WINDOW, last_digit - 64), last_digit + 1))
    return windows


def _boxed_contents(text: str, limit: int, most: int = _MAX_BOXES) -> list[tuple[int, int]]:
    """Spans of the contents of the first ``most`` ``\\boxed{...}``, braces balanced."""
    spans: list[tuple[int, int]] = []
    opened = 0
    for window_start, window_end in _windows(text, limit):
        for match in _BOXED_RE.finditer(text, window_start, window_end):
            depth = 1
            for brace in _BRACE_RE.finditer(text, match.end(), min(limit, match.end() + _BOX_SCAN_LIMIT)):
                depth += 1 if brace.group() == "{" else -1
                if depth == 0:
                    spans.append((match.end(), brace.start()))
                    break
            opened += 1
            if opened == most:
                return spans
    return spans
    return spans


def _first_line_span(text: str) -> tuple[int, int]:
    start = len(text) - len(text.lstrip())
    newline = text.find("\n", start)
    return start, len(text) if newline < 0 else newline


def _candidates(chosen: Number | None, numbers: list[Number], extra: list[Number]) -> list[float]:
    """Distinct plausible answers, best first: the choice, explicit answers, then the rest."""
    pool = ([chosen] if chosen else []) + extra
    # Later numbers in a response are more often conclusions than inputs.
    pool += [n for n in reversed(numbers) if not n.is_index]
    return _distinct(pool, MAX_CANDIDATES)


def _result(rule: str, chosen: Number | None, numbers: list[Number],
            review: bool, extra: list[Number] | None = None) -> Extraction:
    return Extraction(
        value=None if chosen is None else chosen.value,
        rule=rule,
        needs_review=review,
        candidates=_candidates(chosen, numbers, extra or []),
        span=None if chosen is None else (chosen.start, chosen.end),
    )


# --------------------------------------------------------------------------- seed


def _scan_seed_numbers(text: str) -> list[Number]:
    return [
        Number(float(m.group().replace(",", "")), m.start(), m.end())
        for start, end in _windows(text)
        for m in _SEED_NUMBER_RE.finditer(text, start, end)
    ]


def _extract_seed(text: str) -> Extraction:
    numbers = _scan_seed_numbers(text)
    for start, end in _boxed_contents(text, len(text), most=1):
        inside = [n for n in numbers if start <= n.start and n.end <= end]
        if inside:
            return _result("boxed", inside[0], numbers, False)
    line_start, line_end = _first_line_span(text)
    on_line = [n for n in numbers if line_start <= n.start and n.end <= line_end and not n.is_word]
    if on_line and all(answers_match(n.value, on_line[0].value) for n in on_line):
        return _result("first_line", on_line[0], numbers, False)
    phrase = _SEED_PHRASE_RE.search(text)
    if phrase:
        after = [n for n in numbers if n.start >= phrase.end() and not n.is_word]
        if after:
            return _result("answer_phrase", after[0], numbers, False)
    digits = [n for n in numbers if not n.is_word]
    if digits:
        return _result("last_number", digits[-1], numbers, False)
    return _result("none", None, numbers, True)


# ------------------------------------------------------------------------ default


def _degenerate_tail_start(text: str) -> int:
    """Where a run of three or more identical sentences begins (one copy is kept)."""
    for window_start, window_end in _windows(text):
        previous, run, second_start = "", 0, window_end
        for match in _SENTENCE_SPLIT_RE.finditer(text, window_start, window_end):
            sentence = match.group().strip()
            if sentence and sentence == previous:
                run += 1
                if run == 1:
                    second_start = match.start()
                elif run >= 2:
                    return second_start
            elif sentence:
                previous, run = sentence, 0
            if match.end() >= window_end:
                break
    return len(text)


class _Numbers:
    """A response's numbers with fast "first number after position" lookups."""

    def __init__(self, text: str, limit: int, scanned: list[Number] | None = None) -> None:
        self.all = scanned if scanned is not None else \
            [n for start, end in _windows(text) for n in scan_numbers(text, start, end)]
        self.usable = [n for n in self.all if n.start < limit and not n.is_index]
        self._starts = [n.start for n in self.usable]

    def up_to(self, text: str, limit: int) -> _Numbers:
        """The same numbers, usable only before ``limit`` (nothing scanned again)."""
        return _Numbers(text, limit, self.all)

    def first_after(self, pos: int, stop: int) -> Number | None:
        i = bisect.bisect_left(self._starts, pos)
        if i < len(self.usable) and self.usable[i].start < stop:
            return self.usable[i]
        return None

    def between(self, start: int, stop: int) -> list[Number]:
        lo = bisect.bisect_left(self._starts, start)
        hi = bisect.bisect_left(self._starts, stop)
        return [n for n in self.usable[lo:hi] if n.end <= stop]


def _boxed_answers(text: str, numbers: _Numbers, limit: int) -> list[Number]:
    found: list[Number] = []
    for start, end in _boxed_contents(text, limit):
        inside = numbers.between(start, end)
        # "\boxed{2 + 3 = 5}": the answer is what follows the last "=".
        equals = text.rfind("=", start, end)
        after_equals = [n for n in inside if n.start > equals] if equals >= 0 else []
        if after_equals or inside:
            found.append((after_equals or inside)[0])
    return found


def _phrase_answers(text: str, numbers: _Numbers, limit: int, pattern: re.Pattern[str]) -> list[Number]:
    found: list[Number] = []
    for match in (m for start, end in _windows(text, limit) for m in pattern.finditer(text, start, end)):
        stop = min(limit, match.end() + _PHRASE_LOOKAHEAD)
        newline = text.find("\n", match.end() + 1, stop)
        number = numbers.first_after(match.end(), stop if newline < 0 else newline)
        if number is not None:
            found.append(number)
    return found


def _lead_answer(text: str, numbers: _Numbers) -> tuple[Number | None, bool]:
    """The answer a response opens with (the first line's numbers, if they all
    agree) and whether a human should confirm it.

    When the line restates a question and answers it ("...how many? 2"), only the
    numbers after the last "?" count.  Number words count only on a short line
    ("Twelve."), since prose is full of "one" and "two".  Adjudicated study data
    showed no better rule for lines that are questions or "## Step 1" headings:
    people took their number about as often as anything else.
    """
    line_start, line_end = _first_line_span(text)
    on_line = [n for n in numbers.all if line_start <= n.start and n.end <= line_end]
    question_end = text.rfind("?", line_start, line_end)
    answered = [n for n in on_line if n.start > question_end]
    candidates = answered or on_line
    digits = [n for n in candidates if not n.is_word]
    if not digits and len(text[line_start:line_end].split()) <= _SHORT_LINE_WORDS:
        digits = candidates
    if not digits or len(_distinct(digits)) != 1 or all(n.is_index for n in digits):
        return None, False
    return digits[0], _odd_fraction(digits[0])


def _distinct(numbers: list[Number], most: int | None = None) -> list[float]:
    """The different values among ``numbers``, first occurrence first.

    Values are keyed by rounding to the comparison tolerance, so this stays
    linear on responses with thousands of numbers.
    """
    seen: dict[float, float] = {}
    for number in numbers:
        seen.setdefault(round(number.value, 4), number.value)
        if most is not None and len(seen) >= most:
            break
    return list(seen.values())


def _odd_fraction(number: Number) -> bool:
    """GSM8K answers are whole numbers or money: a bare "3/8" is more likely a ratio."""
    return number.is_fraction and not number.value.is_integer()


def extract_answer(response: str, protocol: str = "default", question: str | None = None,
                   finish_reason: str | None = None) -> Extraction:
    """Extract the numeric answer of one response.

    ``"default"`` reads the model's committed answer (``committed.py``; ``question`` and the
    generation's ``finish_reason`` sharpen it when known); ``"study-rules"`` (alias ``"seed"``) the
    study's four rules as described; ``"study"`` the study's code, which needs the whole run
    (``extract_answers``). Never raises on any string; raises ``ValueError`` only for an unknown protocol.
    """
    if protocol not in SINGLE_PROTOCOLS:
        raise ValueError(f"unknown extraction protocol {protocol!r}; use one of: {', '.join(SINGLE_PROTOCOLS)}")
    if protocol == "study":
        from kdtui.extract.study import StudyCascade

        return StudyCascade()(response)  # alone, with no run before it (see extract_answers)
    if _HUGE_NUMBER_RE.search(response):
        # A run of digits no answer has (a loop, or garbage): no number read from it can be trusted.
        return Extraction(None, "unreadable_number", needs_review=True)
    if protocol == "default":
        from kdtui.extract.committed import read_committed

        return read_committed(response, question, finish_reason)
    return _extract_seed(response)
