"""Answer extraction on a hand-written table; no shared data needed."""

from __future__ import annotations

import pytest

from kdtui.extract import (
    MAX_CANDIDATES,
    Extraction,
    answers_match,
    extract_answer,
    gold_answer,
    scan_numbers,
)

# (response, value, rule, needs_review)
DEFAULT_CASES: list[tuple[str, float | None, str, bool]] = [
    # \boxed{}, nested braces, fractions inside, "=" inside, conflicting boxes
    (r"The answer is \boxed{\frac{3}{4}}.", 0.75, "boxed", False),
    (r"So $\boxed{{18}}$ eggs.", 18, "boxed", False),
    (r"\boxed{2 + 16 = 18}", 18, "boxed", False),
    ("The final answer is: $\\boxed{18}$", 18, "boxed", False),
    ("Steps first: 9 * 2 = 18.\nThe final answer is: $\\boxed{18}$", 18, "boxed", False),
    ("$\x08oxed{124}$ (a JSON \\b escape ate the backslash)", 124, "boxed", False),
    (r"\boxed{18} ... actually \boxed{20}", 20, "boxed", False),  # a self-correction counts (JUDGING.md)
    (r"\boxed{18} and \boxed{20}", None, "boxed", True),  # two final values, none retracted: conflicting
    # money, percent, units, LaTeX fractions
    ("She makes \\$18 per day.", 18, "first_line", False),
    ("$18.00", 18, "first_line", False),
    ("It rose by 25%.", 25, "first_line", False),
    ("18 dollars", 18, "first_line", False),
    ("\\frac{36}{2}", 18, "first_line", False),
    # thousands separators: only real 3-digit groups
    ("The house cost $1,234,567.50 in total.", 1234567.5, "first_line", False),
    ("It costs 70,000 dollars.", 70000, "first_line", False),
    # negatives, fractions, mixed numbers, number words
    ("The temperature is -5 degrees.", -5, "first_line", False),
    ("2 - 3 = -1", None, "", False),  # checked separately below: not a single answer
    ("3/4", 0.75, "first_line", True),
    ("2 1/2 cups", 2.5, "first_line", True),
    ("Twelve.", 12, "first_line", False),
    ("twenty-five", 25, "first_line", False),
    # GSM8K marker
    ("She sells 16 - 3 - 4 = 9 eggs and makes 9 * 2 = 18 dollars.\n#### 18", 18, "gsm8k_marker", False),
    ("16 - 3 - 4 = 9 eggs\n#### 18\nQuestion: A new problem with 5 apples", 18, "gsm8k_marker", False),
    # degenerate repeated tails
    ("She makes 9 * 2 = 18 dollars.\nTotal: 18. 18. 18. 18. 18.", 18, "result", False),
    ("She makes 9 * 2 = 18 dollars.\nSo 18. 18. 18. 18. 1", 18, "result", False),  # the cut "1" is not read
    ("18. 18. 18. 18. 18. 18.", 18, "first_line", False),
    # a restated question answered on the same line; an invented question before the work
    ("How many eggs does she sell? 9\nShe sells 16 - 3 - 4 = 9.", 9, "first_line", False),
    ("Janet has 16 eggs and eats 3. How many are left?\nShe has 16 - 3 = 13 left.", 13, "last_number", False),
    # list and step indices are not answers
    ("## Step 1: Eggs left\n16 - 3 - 4 = 9\n## Step 2: Money\n9 * 2 = 18", 18, "result", False),
    ("1. She has 16 eggs.\n2. She eats 3 and bakes with 4.\n3. She sells 9 for $2: 9 * 2 = 18", 18,
     "result", False),
    ("5.  Thank you.\nThe ducks lay 16 eggs.", 5, "first_line", False),
    # cut off in a heading after its last result: that result (JUDGING.md: "then cut off: answer")
    ("## Step 1: Eggs left\n16 - 3 - 4 = 9\n## Step 2: Money\n9 * 2 = 18\n## Step 3: Check", 18,
     "result", False),
    # truncated mid-sentence after a result
    ("She sells 9 eggs at $2 each, so she makes 9 * 2 = $18. Then she", 18, "result", False),
    # no answer at all
    ("", None, "none", False),
    ("No numbers here at all.", None, "none", False),
]


@pytest.mark.parametrize(("response", "value", "rule", "review"), [c for c in DEFAULT_CASES if c[2]])
def test_default_protocol_table(response: str, value: float | None, rule: str, review: bool) -> None:
    result = extract_answer(response)
    assert answers_match(result.value, value), (result, value)
    assert result.rule == rule
    assert result.needs_review is review
    if value is not None:
        assert result.span is not None
        assert result.candidates[0] == result.value
        start, end = result.span
        assert answers_match(scan_numbers(response[start:end])[0].value, value)


def test_first_line_with_conflicting_numbers_falls_through() -> None:
    result = extract_answer("2 - 3 = -1")
    assert result.rule == "result"
    assert result.value == -1
    assert set(result.candidates) == {-1.0, 3.0, 2.0}


def test_thousands_separator_needs_three_digit_groups() -> None:
    assert [n.value for n in scan_numbers("7,0")] == [7, 0]
    assert [n.value for n in scan_numbers("1,2345")] == [1, 2345]
    assert [n.value for n in scan_numbers("1,234 and 12,345,678")] == [1234, 12345678]


def test_step_and_list_indices_are_marked() -> None:
    numbers = scan_numbers("## Step 3: add\n1. a\n2. b\nQuestion 4 is 7")
    assert [(n.value, n.is_index) for n in numbers] == [
        (3, True), (1, True), (2, True), (4, True), (7, False)]


def test_candidates_are_distinct_best_first_and_capped() -> None:
    text = "We add " + " + ".join(str(i) for i in range(1, 30)) + " = 435. The answer is 435."
    result = extract_answer(text)
    assert result.value == 435
    assert len(result.candidates) == MAX_CANDIDATES
    assert len(set(result.candidates)) == MAX_CANDIDATES
    assert result.candidates[0] == 435


def test_stated_answer_that_disagrees_becomes_a_candidate() -> None:
    result = extract_answer("The answer is 18. Wait, let me redo it: 9 * 2 = 20. So 20")
    assert result.value == 20
    assert 18 in result.candidates


# ---------------------------------------------------------------------------- seed

SEED_CASES: list[tuple[str, float | None, str, bool]] = [
    # rule 1: the first \boxed{} wins over everything, first number inside it
    ("18\nso \\boxed{20} and \\boxed{22}", 20, "boxed", False),
    (r"\boxed{2 + 16 = 18}", 2, "boxed", False),
    # rule 2: first line, only when exactly one number or all equal
    ("$18.00. $18.00.\nThe final answer is 20", 18, "first_line", False),
    ("It is 18\nThe answer is 20", 18, "first_line", False),
    # rule 2 fails (numbers disagree) -> rule 3: first number after the phrase
    ("16 - 3 = 13 eggs\nThe final answer is 20, or 22", 20, "answer_phrase", False),
    ("16 - 3 = 13 eggs\nI think the correct answer is 21.", 21, "answer_phrase", False),
    ("16 - 3 = 13 eggs\nSo the answer is 19 and 1", 19, "answer_phrase", False),
    # rule 2 fails and no phrase -> rule 4: the last number
    ("16 - 3 = 13 eggs\nShe sells them for 2 dollars each", 2, "last_number", False),
    # the first line has no number -> later rules
    ("Let us think.\nShe has 13 eggs, so 26", 26, "last_number", False),
    # the study matched plain unsigned numbers
    ("-5", 5, "first_line", False),
    ("3/4 of them", 4, "last_number", False),
    ("1,234 eggs", 1234, "first_line", False),
    # nothing found: no answer, for a human to look at
    ("No numbers here.", None, "none", True),
    ("", None, "none", True),
]


@pytest.mark.parametrize(("response", "value", "rule", "review"), SEED_CASES)
def test_seed_protocol_table(response: str, value: float | None, rule: str, review: bool) -> None:
    result = extract_answer(response, "seed")
    assert answers_match(result.value, value), (result, value)
    assert result.rule == rule
    assert result.needs_review is review


def test_seed_rule_order_boxed_before_first_line() -> None:
    assert extract_answer("7\n\\boxed{8}", "seed").value == 8


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown extraction protocol 'fancy'"):
        extract_answer("18", "fancy")


def test_sentinel_for_no_answer() -> None:
    assert extract_answer("nothing").value_or_sentinel == -1
    assert isinstance(extract_answer("18"), Extraction)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [(18.0, 18, True), (18.00001, 18, True), (18.5, 18, False), (1 / 3, 0.3333333, True),
     (None, None, True), (None, 0.0, False), (float("nan"), float("nan"), False), (-1.0, 1.0, False)],
)
def test_answers_match(a: float | None, b: float | None, same: bool) -> None:
    assert answers_match(a, b) is same


def test_gold_answer() -> None:
    assert gold_answer("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n#### 18") == 18
    assert gold_answer("#### 1,000") == 1000
    assert gold_answer("#### -3") == -3
    with pytest.raises(ValueError, match="no '#### N' line"):
        gold_answer("no marker")
    with pytest.raises(ValueError, match="no number after"):
        gold_answer("#### none")


# ------------------------------------------------------------- committed answers (issue 20)

def test_a_cut_off_response_keeps_the_answer_it_stated_early() -> None:
    result = extract_answer("$24.00  Since the boxes each held 64 crayons, Kate had 3*64=192 crayons. Since Kate "
                            "could melt 8 crayons at a time to make a muffin crayon")
    assert (result.value, result.kind, result.needs_review) == (24, "answer", False)


def test_an_invented_follow_up_question_ends_the_search() -> None:
    result = extract_answer("106.  Thank you.  Next question.  1.  In a certain year, 10% of all the people were "
                            "born in 1960 or earlier.  If there were 240 million people")
    assert (result.value, result.kind) == (106, "answer")
    made_up = extract_answer("She makes 9 * 2 = $18 every day.\nQuestion 2: If she sells 5 more eggs, how much "
                             "does she make?\n5 * 2 = 10, so 18 + 10 = 28.", question="How much does she make "
                             "every day at the farmers' market?")
    assert made_up.value == 18 and "invented" in made_up.reason


def test_a_self_correction_counts() -> None:
    assert extract_answer("The answer is 18. Wait, let me redo it: 9 * 2 = 20. So 20").value == 20
    assert extract_answer("The answer is $35.  $35 is incorrect.  $29 is correct.").value == 29


def test_a_bare_option_list_is_no_answer() -> None:
    result = extract_answer("A. 30 tons\nB. 20 tons\nC. 400 tons\nD. 100 tons\n\n## Step 1: Determine the tons")
    assert (result.value, result.kind, result.needs_review) == (None, "no_answer", False)
    chosen = extract_answer("A) 12\nB) 18\nC) 24\nThe answer is (B).")
    assert (chosen.value, chosen.kind) == (18, "answer")
    listed = extract_answer("$3.50. $8.00. $12.50. $4.50. $13.00. $9.50.")
    assert (listed.value, listed.kind) == (None, "no_answer")


def test_a_loop_with_nothing_concluded_is_no_answer() -> None:
    assert extract_answer("1. " * 300).kind == "no_answer"
    assert extract_answer("## Step 1: Think.\nWe think about it.\n" * 30).kind == "no_answer"
    repeated = extract_answer("She makes 9 * 2 = $18.  " * 40 + "She makes 9 * 2 = $1")
    assert (repeated.value, repeated.kind) == (18, "answer")  # the cut "$1" at the end is not read


def test_the_finish_reason_is_used_when_present() -> None:
    text = "## Step 1: Eggs left\n16 - 3 - 4 = 9 eggs.\n## Step 2: Money\nShe sells 9 eggs at $2 each, so"
    question = "How much in dollars does she make every day at the farmers' market?"
    assert extract_answer(text, question=question, finish_reason="length").kind == "no_answer"
    ended = extract_answer("16 - 3 - 4 = 9\n9 * 2 = 18", question=question, finish_reason="eos")
    assert (ended.value, ended.kind, ended.rule) == (18, "answer", "last_number")
    cut = extract_answer("16 - 3 - 4 = 9\n9 * 2 = 18", question=question, finish_reason="length")
    assert cut.rule != "last_number"  # a cut-off response is read for its last result, not its last number


def test_every_extraction_says_its_kind_and_why() -> None:
    for text in ("The answer is 18.", "", "\\boxed{1} \\boxed{2}", "3/4", "$3.50. $8.00. $12.50."):
        for protocol in ("default", "study-rules"):
            result = extract_answer(text, protocol)
            assert result.kind in ("answer", "no_answer", "conflicting", "unclear") and result.reason
            assert result.needs_review is (result.kind in ("conflicting", "unclear"))
