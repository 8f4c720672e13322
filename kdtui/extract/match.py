"""The one rule for "same answer", in Python and in SQL; light enough for the store's schema to import
without the extraction cascade (``kdtui sql`` never extracts)."""

from __future__ import annotations

import math

# GSM8K golds are integers; decimals are money at most (two places).  A relative
# tolerance also absorbs float noise from fractions such as 1/3.
# The one rule for "same answer", used by Python here and by SQL (``sql_answers_match``):
# within 1e-4, or within float rounding of large values. A relative tolerance of 1e-6
# would call 1,450,001 equal to GSM8K's 1,450,000; 1e-9 only absorbs binary rounding.
ABS_TOLERANCE = 1e-4
REL_TOLERANCE = 1e-9


def answers_match(a: float | None, b: float | None) -> bool:
    """True when two answers are the same number.

    Both None (no answer) match each other; otherwise both must be finite and
    equal within ``ABS_TOLERANCE`` or ``REL_TOLERANCE`` (so ``18.00 == 18`` and
    ``1/3 == 0.3333333``, while ``18.5 != 18``).
    """
    if a is None or b is None:
        return a is None and b is None
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)


def sql_answers_match(a: str, b: str) -> str:
    """The SQL form of :func:`answers_match` for two numeric expressions (NULL only matches NULL)."""
    return (f"(CASE WHEN ({a}) IS NULL OR ({b}) IS NULL THEN ({a}) IS NULL AND ({b}) IS NULL "
            f"WHEN NOT (isfinite({a}) AND isfinite({b})) THEN FALSE "
            f"ELSE abs(({a}) - ({b})) <= greatest({REL_TOLERANCE!r} * greatest(abs({a}), abs({b})), "
            f"{ABS_TOLERANCE!r}) END)")
