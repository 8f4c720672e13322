"""Property tests: extraction never raises, on any text and on megabyte-sized adversarial inputs.

How fast those inputs go is measured in benchmarks/extract_adversarial_bench.py, not asserted here.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdtui.extract import Extraction, extract_answer

ADVERSARIAL = st.sampled_from(
    ["1", ",", "1,234", ".", "-", "/", " ", "\n", "\\boxed{", "{", "}", "\\frac{", "#", "####",
     "Step ", "answer is ", "twenty", "-one", "?", "$", "%", "18. ", "\x08oxed{"]
)
TEXT = st.one_of(
    st.text(max_size=2000),
    st.lists(ADVERSARIAL, max_size=400).map("".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT, st.sampled_from(["default", "seed"]))
def test_never_raises(text: str, protocol: str) -> None:
    _check(extract_answer(text, protocol), text)


def _check(result: Extraction, text: str) -> None:
    assert len(result.candidates) <= 9
    if result.span is not None:
        start, end = result.span
        assert 0 <= start < end <= len(text)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ADVERSARIAL, min_size=1, max_size=8).map("".join), st.sampled_from(["default", "seed"]))
def test_one_megabyte_repeats(unit: str, protocol: str) -> None:
    text = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]
    _check(extract_answer(text, protocol), text)


@pytest.mark.parametrize(
    "text",
    [
        "1" * 1_000_000,
        "1," * 500_000,
        "1 1/" * 250_000,
        "\\boxed{" * 140_000,
        "the answer is " * 70_000,
        "Step 1. " * 125_000,
        "18. " * 250_000,
        "".join(chr(0x4E00 + i % 20000) for i in range(1_000_000)),
    ],
    ids=["digits", "commas", "mixed", "boxes", "phrases", "steps", "loop", "cjk"],
)
@pytest.mark.parametrize("protocol", ["default", "seed"])
def test_adversarial_megabyte(text: str, protocol: str) -> None:
    _check(extract_answer(text, protocol), text)
