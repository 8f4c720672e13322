"""The ``default`` protocol: the answer the model committed to, read as ``JUDGING.md`` reads it.

The job is the answer to the question asked, not the last number in the text. In order:

1. **Where the reading stops**: a degenerate repeated tail (one copy is kept), and the point where
   the response turns to a question it made up ("Next question.", "Problem 2:", a new question
   that is not the one asked), once it has said something. A number cut in half by the token
   limit at the very end is not read.
2. **Explicit statements** (``\\boxed{}``, ``#### N``, "the answer is N", "Answer: N"). Several
   different ones are ``conflicting`` unless the model visibly corrects itself before the last.
3. **A bare leading answer** ("$24.00  Since ...", "6.  Emily has ...") that nothing later
   contradicts.
4. **The concluding statement** ("So she makes $18 every day.", "... = 336" closing a step, a
   first line that answers), when the response ended on its own or stopped right after it.
5. Otherwise **no answer**: cut off mid-working, a bare list of values, step indices, a loop
   with nothing concluded.

``finish_reason`` (``length`` = cut off by the token limit), when the run stored it, replaces the
guess from how the text ends. ``question``, when given, tells a premise restated from the question
from an answer, and a made-up question from the one asked.
"""

from __future__ import annotations

import re
from functools import lru_cache

from kdtui.extract.cascade import (
    _ANSWER_PHRASE_RE,
    _CORRECTION_RE,
    _GSM8K_MARKER_RE,
    Extraction,
    Number,
    _boxed_answers,
    _candidates,
    _degenerate_tail_start,
    _distinct,
    _lead_answer,
    _Numbers,
    _odd_fraction,
    _phrase_answers,
    answers_match,
)

CUT_OFF_REASONS = frozenset({"length", "max_tokens", "max_length"})
ENDED_REASONS = frozenset({"eos", "stop", "stop_sequence", "end_turn"})
# A new problem the model sets itself: "Question 2:", "Next question.", "Problem:", "Q:", "P.S. ... ?"
_INVENTED_RE = re.compile(
    r"(?im)(?:^|(?<=[.!?]\s)|(?<=[.!?]\s\s))[ \t#*>-]*(?:"
    r"(?:new|next|another|follow[- ]?up|bonus|extra|similar|practice|additional|second)\s+"
    r"(?:question|problem|exercise|example)s?\b"
    r"|(?:question|problem|exercise)\s*#?\d*\s*[:)]"
    r"|q\d*\s*[:.)](?=\s)"
    r"|(?:let'?s|now let'?s|we will|i will)\s+(?:try|do|solve)\s+(?:another|a\s+(?:new|different|similar))"
    r"|now,?\s+let'?s\s+(?:do|change|try)\s+the\s+same\s+problem"
    r"|p\.\s?s\.)"
)
_SENTENCE_RE = re.compile(r"[^\n.!?]*(?:[.!?](?!\d)|\n|$)")
_CONCLUSION_RE = re.compile(
    r"\b(?:so|therefore|thus|hence|in total|altogether|in all|overall|this means|which means|that means"
    r"|finally|as a result|the result is|we get|gives us|we find|in conclusion|total)\b",
    re.IGNORECASE,
)
# "224 + 112 = 336": a result computed from numbers only (an equation in x is no result).
_RESULT_LHS_RE = re.compile(r"[\d)\]}][\s$€£%]*[-+*/x×÷^][\s$€£(]*\d")
_STEP_HEADING_RE = re.compile(r"(?im)^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*)?step[ \t]*\d+\b")
_WORD_RE = re.compile(r"[A-Za-z]{2,}")
# What may stand around a bare leading answer: currency, LaTeX dollars, units in \text{}, dots.
_LEAD_NOISE_RE = re.compile(
    r"\\text\{[^}]{0,20}\}|\^\d|\\?\$|\\|[{}()\s.,:;%€£]|is the answer|dollars?|cents?")
_LEAD_PREFIX_CHARS = 80
_SENTENCE_REACH = 400  # no sentence or line is looked for further away than this
_BLOCK_REACH = 1_500  # nor a step's heading
_RESULTS_FROM_LAST = 60


def _cut_off(text: str, finish_reason: str | None) -> bool:
    """Whether generation stopped at the token limit: the stored reason, else how the text ends."""
    if finish_reason:
        reason = finish_reason.lower()
        if reason in CUT_OFF_REASONS:
            return True
        if reason in ENDED_REASONS:
            return False
    tail = text.rstrip()
    return bool(tail) and tail[-1] not in ".!?)]}\"'*`$"


def _invented_start(text: str, limit: int, question: str | None, said_something: int) -> int:
    """Where the response turns to a question it made up (after ``said_something``), else ``limit``."""
    for match in _INVENTED_RE.finditer(text, said_something, limit):
        return match.start()
    if question is None:
        return limit
    asked = _words(question)
    mark = text.find("?", said_something, limit)
    while mark >= 0:
        start, _ = _sentence_bounds(text, mark)
        words = _words(text[start:mark])
        # A question the model asks itself that is not the one asked (a restatement shares its words).
        if len(words) >= 4 and len(words & asked) / len(words) < 0.6:
            return max(start, said_something)
        mark = text.find("?", mark + 1, limit)
    return limit


_STOP_WORDS = frozenset("""
the a an of in on at to for and or but if then than that this these those is are was were be been being do
does did done have has had will would shall should can could may might must how many much what which who
whom whose when where why it its he she they them their his her him we our us you your i my me there here
each per every all any some more most less least also just only so as by with from into over under after
before about up down out off again further once not no nor too very own same other such both few one two
three four five six seven eight nine ten total find calculate determine step number amount answer question
final first second
""".split())  # noqa: SIM905 (a word list reads better as text)


def _words(text: str) -> set[str]:
    """Content words, lower-cased, a plural 's' dropped: what a sentence is about."""
    out = set()
    for word in _WORD_RE.findall(text):
        word = word.lower()
        if word in _STOP_WORDS:
            continue
        out.add(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return out


_ASK_START_RE = re.compile(r"\b(?:how|what|which|who|when|where|calculate|find|determine|compute)\b", re.IGNORECASE)


def _asked(question: str | None) -> set[str]:
    """The words of what the question asks (its last sentence with a '?', else its last sentence)."""
    if not question:
        return set()
    sentences = [m.group() for m in _SENTENCE_RE.finditer(question) if m.group().strip()]
    asking = [s for s in sentences if s.rstrip().endswith("?")] or sentences[-1:]
    if not asking:
        return set()
    clause = asking[-1]
    # "If he has 4 lessons ..., what is the total he will make?": the words after the question word.
    starts = [m.start() for m in _ASK_START_RE.finditer(clause)]
    core = _words(clause[starts[-1]:]) if starts else set()
    return core if len(core) >= 2 else _words(clause)


def _truncated_tail(text: str, numbers: list[Number], cut_off: bool) -> Number | None:
    """The last number when the token limit cut it in half ("... weighs 260" after "2600 grams" x N)."""
    if not cut_off or not numbers:
        return None
    last = numbers[-1]
    if text[last.end:].strip():
        return None
    digits = text[last.start:last.end].replace(",", "")
    earlier = {text[n.start:n.end].replace(",", "") for n in numbers[:-1]}
    return last if any(e != digits and e.startswith(digits) for e in earlier) else None


def _bare_lead(text: str, numbers: _Numbers, options: set[int]) -> Number | None:
    """A response that opens with its answer and nothing else: "$24.00  Since ...", "6.  Emily ..."."""
    start = len(text) - len(text.lstrip())
    window = text[start:start + _LEAD_PREFIX_CHARS]
    # Blank out currency, LaTeX and units, keeping positions: the first word left is where prose begins.
    blanked = _LEAD_NOISE_RE.sub(lambda m: " " * len(m.group()), window)
    first_word = _WORD_RE.search(blanked)
    prefix_end = start + (first_word.start() if first_word else len(window))
    lead = [n for n in numbers.all if start <= n.start and n.end <= prefix_end]
    if not lead or lead[0].start > start + 4 or any(n.is_word or n.is_index or n.start in options for n in lead):
        return None
    if re.search(r"[=+*/×]|\\(?:cdot|times|div)", text[start:prefix_end]):
        return None  # it opens with a computation: its result is read as one
    if first_word is not None and not re.search(r"[.!?\n]|\s{2}|\$\s|\\\)", text[lead[-1].end:prefix_end]):
        return None  # "4 orange and 13 white.": the number begins a sentence, it does not stand alone
    if len(_distinct(lead)) != 1:
        return None
    return lead[0]


_OPTION_RE = re.compile(r"(?m)^[ \t*]*\(?([A-Ea-e])[.)][ \t]+(?=\S)")


def _options(text: str, numbers: list[Number]) -> dict[str, Number]:
    """Multiple-choice options the model listed ("A. 30 tons" / "B) 20"), letter -> its number."""
    found: dict[str, Number] = {}
    for match in _OPTION_RE.finditer(text):
        line_end = text.find("\n", match.end(), match.end() + _SENTENCE_REACH)
        inside = [n for n in numbers if match.end() <= n.start and n.end <= (len(text) if line_end < 0 else line_end)]
        if inside:
            found.setdefault(match.group(1).upper(), inside[0])
    return found if {"A", "B"} <= set(found) else {}


_WORDED_RESULT_RE = re.compile(
    r"\b(?:is|are|was|were|equals?|equal\s+to|gives?(?:\s+us)?|get|gets|makes?|totals?|comes\s+to|be)\s*:?\s*$",
    re.IGNORECASE)
_ARITHMETIC_RE = re.compile(
    r"[-+*/×÷]|\b(?:plus|minus|times|divided|multiplied|added|adding|subtract\w*|sum|total|difference|product"
    r"|left|remain\w*|altogether|combined)\b", re.IGNORECASE)


def _sentence_bounds(text: str, pos: int) -> tuple[int, int]:
    # Bounded both ways, so a megabyte without a full stop stays linear.
    low, high = max(0, pos - _SENTENCE_REACH), min(len(text), pos + _SENTENCE_REACH)
    start = max(text.rfind("\n", low, pos), text.rfind(". ", low, pos) + 1, text.rfind("? ", low, pos) + 1, low)
    ends = [i for i in (text.find("\n", pos, high), text.find(". ", pos, high)) if i >= 0]
    return start, min(ends) if ends else high


def _is_result(text: str, number: Number, givens: frozenset[float] | set[float] = frozenset()) -> bool:
    """Presented as a result: after "=" with only arithmetic before it, after "is"/"gives" in a sentence that
    computes or concludes, the last number of a concluding sentence, or alone on its line ("67 kilometers.")."""
    start, end = _sentence_bounds(text, number.start)
    before = text[start:number.start]
    if before.rstrip(" $\\").endswith("="):
        lhs = before.rstrip(" $\\")[:-1]
        lhs = lhs[lhs.rfind("=") + 1:]
        if _RESULT_LHS_RE.search(lhs) and not re.search(r"\d[a-wyzA-WYZ]|[a-wyzA-WYZ]\d", lhs):
            return True
        if re.fullmatch(r"\s*\$?[A-Za-z]\w{0,2}\$?\s*", lhs):  # "H = 44": a solved unknown
            return True
    if round(number.value, 4) in givens or _OPERAND_AFTER_RE.match(text, number.end) \
            or _OPERAND_BEFORE_RE.search(text[max(0, number.start - 12):number.start]):
        return False  # a given restated, or a term of a computation ("21 minutes - 4", "(3) * the number")
    sentence = text[start:end]
    if _WORDED_RESULT_RE.search(before[-40:]) and (_ARITHMETIC_RE.search(before) or _concludes(before)):
        return True
    if _concludes(sentence) and not _STEP_HEADING_RE.match(sentence):
        inside = [m for m in _NUMBER_TOKEN_RE.finditer(text, start, end)]
        if inside and inside[-1].start() == number.start:
            return True
    line_start = text.rfind("\n", max(0, number.start - _SENTENCE_REACH), number.start) + 1
    line_end = text.find("\n", number.start, number.start + _SENTENCE_REACH)
    line = text[line_start:len(text) if line_end < 0 else line_end]
    return not text[line_start:number.start].strip(" $#*-:") and len(line.split()) <= 4


@lru_cache(maxsize=1024)
def _concludes(sentence: str) -> bool:
    """Whether a sentence concludes ("So ...", "Therefore ...", "In total ..."); sentences repeat, so cached."""
    return _CONCLUSION_RE.search(sentence) is not None


_OPERAND_AFTER_RE = re.compile(r"[\s)$%]*(?:[-+*/×÷^]|\\times|\\cdot|x\s)(?![-=])")
_OPERAND_BEFORE_RE = re.compile(r"(?:[-+*/×÷^]|\\times|\\cdot|\bx)[\s($]*$")
_GIVEN_RE = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?!\d)|(?<![\w.])\d+(?:\.\d+)?")
_NUMBER_TOKEN_RE = re.compile(r"(?<![\w.])-?\$?\d[\d,]*(?:\.\d+)?")


def _context(text: str, number: Number) -> str:
    """What a result is about: its step or paragraph up to it (heading included), and the next sentence of
    the same step ("... gives us 96. Thus, the number of blueberry cubes is")."""
    low = max(0, number.start - _BLOCK_REACH)
    block = max(text.rfind("\n\n", low, number.start), text.rfind("\n#", low, number.start),
                text.rfind("\nStep", low, number.start), low)
    _, end = _sentence_bounds(text, number.end)
    high = number.end + _BLOCK_REACH
    boundary = min([i for i in (text.find("\n\n", number.end, high), text.find("\n#", number.end, high)) if i >= 0],
                   default=min(len(text), high))
    _, after = _sentence_bounds(text, min(len(text), end + 2))
    return text[block:min(after, boundary)]


class _Results:
    """The numbers presented as results (a given of the question restated is none), judged lazily from the
    end: most responses need only their last one."""

    def __init__(self, text: str, numbers: list[Number], givens: set[float]) -> None:
        self.text, self.givens = text, givens
        self.numbers = numbers  # digits: no words, no indices
        self._judged: dict[int, bool] = {}

    def _is(self, number: Number) -> bool:
        if number.start not in self._judged:
            self._judged[number.start] = _is_result(self.text, number, self.givens)
        return self._judged[number.start]

    def after(self, pos: int) -> list[Number]:
        return [n for n in self.numbers if n.start > pos and self._is(n)]

    def last(self) -> Number | None:
        return next((n for n in reversed(self.numbers) if self._is(n)), None)


def _givens(question: str | None) -> set[float]:
    """The numbers the question states (rounded as ``_distinct`` keys them)."""
    if not question:
        return set()
    return {round(float(raw.replace(",", "")), 4) for raw in _GIVEN_RE.findall(question)}


# "31 slices is the correct answer": the statement after its number.
_ANSWER_AFTER_RE = re.compile(r"\b(?:is|as)\s+(?:(?:the|our|my)\s+(?:correct\s+|final\s+|right\s+)?answer\b"
                              r"|(?:the\s+)?(?:correct|right)\b(?!\s+(?:number|amount|way|unit)))", re.IGNORECASE)
# A value taken back: "$35 is incorrect", beside the cascade's "wait", "actually", "I made a mistake".
_RETRACTED_RE = re.compile(r"\b(?:is|was)\s+(?:incorrect|wrong|not\s+(?:correct|right))\b", re.IGNORECASE)
_MATCH_SHARE = 0.5  # a result is about the question asked when its context holds half the asked words


def _explicit(text: str, numbers: _Numbers, stop: int) -> tuple[list[Number], str]:
    boxed = _boxed_answers(text, numbers, stop)
    marked = _phrase_answers(text, numbers, stop, _GSM8K_MARKER_RE)
    stated = _phrase_answers(text, numbers, stop, _ANSWER_PHRASE_RE)
    for match in _ANSWER_AFTER_RE.finditer(text, 0, stop):
        start, _ = _sentence_bounds(text, match.start())
        before = [n for n in numbers.between(start, match.start()) if not n.is_word]
        if before:
            stated.append(before[-1])
    stated.sort(key=lambda n: n.start)
    if boxed:
        return boxed, "boxed"
    if marked:
        return marked, "gsm8k_marker"
    return stated, "answer_phrase"


def _build(rule: str, kind: str, reason: str, chosen: Number | None, numbers: list[Number],
           extra: list[Number] | None = None) -> Extraction:
    if kind == "unclear" and chosen is not None and _odd_fraction(chosen):
        reason += "; a bare ratio, where answers are counts or money"
    return Extraction(
        value=None if chosen is None or kind in ("no_answer", "conflicting") else chosen.value,
        rule=rule, needs_review=kind in ("unclear", "conflicting"),
        candidates=_candidates(chosen, numbers, extra or []),
        span=None if chosen is None else (chosen.start, chosen.end), kind=kind, reason=reason)


def read_committed(text: str, question: str | None = None, finish_reason: str | None = None) -> Extraction:
    """The model's committed answer to the question asked (see the module docstring)."""
    limit = _degenerate_tail_start(text)
    looped = limit < len(text)
    numbers = _Numbers(text, limit)
    cut_off = _cut_off(text, finish_reason)
    truncated = _truncated_tail(text, numbers.all, cut_off)
    if truncated is not None:
        limit = min(limit, truncated.start)
    first = next((n for n in numbers.usable if n.start < limit), None)
    said = first.end if first is not None else limit
    stop = _invented_start(text, limit, question, said)
    invented = stop < limit
    numbers = numbers.up_to(text, stop)
    usable = numbers.usable  # before ``stop`` already
    everything = numbers.all
    options = _options(text, [n for n in usable if not n.is_word])
    listed = {n.start for n in options.values()}
    digits = [n for n in usable if not n.is_word and n.start not in listed]
    # Results are looked for among the last numbers only: conclusions come late, and this keeps it fast.
    results = _Results(text, digits[-_RESULTS_FROM_LAST:], _givens(question))
    asked = _asked(question)

    # -- explicit statements (a letter naming one of the model's own options counts as its value)
    explicit, rule = _explicit(text, numbers, stop)
    explicit = [n for n in explicit if n.start not in listed] + _chosen_options(text, options, stop)
    explicit.sort(key=lambda n: n.start)
    lead = _bare_lead(text, numbers, listed)
    if lead is not None and looped and _stray(lead) and not explicit:
        return _build("none", "no_answer", "repeats a step index", None, everything)
    if explicit:
        final = explicit[-1]
        values = _distinct(explicit)
        corrected = len(values) > 1 and (_CORRECTION_RE.search(text, explicit[0].end, final.start) is not None
                                         or _RETRACTED_RE.search(text, explicit[0].end, final.start) is not None)
        if lead is not None and not _stray(lead) and rule == "answer_phrase" \
                and not answers_match(lead.value, final.value) and not corrected:
            return _build(rule, "conflicting", f"leading {lead.value:g}, stated {final.value:g}", final, everything,
                          explicit)
        if len(values) > 1 and not corrected:
            if rule == "answer_phrase":  # the last statement stands: where a model that rethinks ends up
                return _build(rule, "unclear", f"states {len(values)} values; the last taken", final, everything,
                              explicit)
            return _build(rule, "conflicting", f"{len(values)} different {rule.replace('_', ' ')} values", final,
                          everything, explicit)
        retraction = _CORRECTION_RE.search(text, final.end, stop) or _RETRACTED_RE.search(text, final.end, stop)
        redone = results.last() if retraction is not None else None
        if redone is not None and retraction is not None and redone.start > retraction.end() \
                and not answers_match(redone.value, final.value):
            # "The answer is 18. Wait, let me redo it: ... So 20": the correction after the statement stands.
            return _build("result", "answer", "stated, then corrected", redone, everything, explicit)
        reason = "explicit answer" + (", corrected" if corrected else "") + \
            (", then an invented question" if invented else "")
        return _build(rule, "answer", reason, final if rule == "answer_phrase" or corrected else explicit[0],
                      everything, explicit)

    # -- a bare leading answer, which no concluding statement contradicts
    if lead is not None:
        later = [n for n in results.after(lead.end)
                 if _CONCLUSION_RE.search(_context(text, n)) and _about(text, n, asked)]
        if not later or answers_match(later[-1].value, lead.value) or not _stray(lead):
            return _build("first_line", "unclear" if _odd_fraction(lead) else "answer", "leading answer", lead,
                          everything)

    # -- a first line that answers (not a premise restated from the question, not a step heading)
    line, doubtful = _lead_answer(text, numbers)
    if line is not None and line.start not in listed and not _restated(text, line, question) \
            and not _STEP_HEADING_RE.match(text.lstrip()):
        later = results.after(line.end)
        if not later or answers_match(later[-1].value, line.value):
            return _build("first_line", "unclear" if doubtful else "answer", "first line answers", line, everything)

    # -- the concluding statement
    latest = results.last()  # the model's latest result, however it went on
    if options and latest is None:
        return _build("none", "no_answer", "options listed, none chosen", None, everything)
    if not digits:
        return _build("none", "no_answer", "no number for the question asked", None, everything)
    if _bare_list(text, digits, stop):
        return _build("none", "no_answer", "a list of values, none chosen", None, everything)
    last = digits[-1]
    if not cut_off and not looped and not invented:
        kind = "unclear" if _odd_fraction(last) else "answer"
        return _build("last_number", kind, "closing number", last, everything)
    if latest is None:
        why = "loops without concluding" if looped and not cut_off else "cut off before any result"
        return _build("none", "no_answer", why, None, everything)
    ending = "an invented question" if invented else "cut off" if cut_off else "a loop"
    if _about(text, latest, asked):
        return _build("result", "unclear" if _odd_fraction(latest) else "answer",
                      f"last result, of the quantity asked; then {ending}", latest, everything)
    pending = [n for n in digits if n.start > latest.end and not answers_match(n.value, latest.value)]
    if not pending:
        # Nothing computed after it, but no sign it is the quantity asked: a person decides.
        return _build("result", "unclear", f"last result, not clearly the quantity asked; then {ending}", latest,
                      everything)
    return _build("none", "no_answer", f"{ending} while still working", None, everything)


_CHOICE_RE = re.compile(r"\b(?:answer|choice|option)\s*(?:is|:|=)?\s*(?:option\s+|choice\s+)?\(?([A-E])\)?(?![\w])",
                        re.IGNORECASE)


def _chosen_options(text: str, options: dict[str, Number], stop: int) -> list[Number]:
    """"The answer is (C)" where the model listed "C. 400 tons": the option's number."""
    if not options:
        return []
    return [options[m.group(1).upper()] for m in _CHOICE_RE.finditer(text, 0, stop) if m.group(1).upper() in options]


def _about(text: str, number: Number, asked: set[str]) -> bool:
    """Whether a result's context speaks of what the question asks (half its words, at least one)."""
    if not asked:
        return True
    shared = _words(_context(text, number)) & asked
    return len(shared) >= max(1, _MATCH_SHARE * len(asked))


def _stray(number: Number) -> bool:
    """A lone "0" or "1" ("1.", the start of a list) that opens a worked response is noise, not an answer."""
    return number.value in (0.0, 1.0)


def _restated(text: str, number: Number, question: str | None) -> bool:
    """A first line that repeats a given of the question ("The first month she collected 2 shells.")."""
    if question is None:
        return False
    line = text[:text.find("\n", 0, _SENTENCE_REACH)] if "\n" in text[:_SENTENCE_REACH] else text[:_SENTENCE_REACH]
    words = _words(line)
    raw = text[number.start:number.end].replace(",", "")
    return len(words) >= 3 and raw in question.replace(",", "")


def _bare_list(text: str, digits: list[Number], stop: int) -> bool:
    """Only numbers (three or more different ones), no prose and no computation: "$3.50. $8.00. $12.50. ..."."""
    head = text[:stop]
    prose = _WORD_RE.findall(_LEAD_NOISE_RE.sub(" ", head))
    return len(prose) <= 2 and len(_distinct(digits)) >= 3 and not re.search(r"=|\d\s*[-+*/×]\s*\d", head)
