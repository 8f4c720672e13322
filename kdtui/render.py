"""Text shared by the CLI and the TUI: strings made safe to show, interval and bar drawings (no Textual).

Every string that comes from the store, a model or a file goes through :func:`visible`
(or :func:`as_text`) before Rich or Textual draws it: markup such as ``[/INST]`` is
never interpreted, and control characters cannot move the cursor, recolour the
terminal or reorder what is shown.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache

from rich.text import Text

SHOWN_CHARS = 20_000
# Characters that can change what a terminal shows without being seen, by Unicode category, not from a
# list: Cc controls, Cf format characters (zero-width, bidirectional, tags, soft hyphen...), Co private
# use, Cs surrogates, Zl/Zp line and paragraph separators. Tab and newline are kept. Each becomes one
# visible character, so spans found in the original text still line up.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
# Only characters outside printable ASCII are looked at: plain text costs one regex scan.
_SUSPECT = re.compile(r"[^\t\n\x20-\x7e]")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


@lru_cache(maxsize=4096)
def _shown(char: str) -> str:
    code = ord(char)
    category = unicodedata.category(char)
    if category not in _HIDDEN_CATEGORIES:
        return char
    if code < 0x20:
        return chr(0x2400 + code)  # the control pictures: ␛ for ESC, ␇ for BEL...
    if code == 0x7F:
        return "\u2421"  # ␡
    if category == "Cc":
        return "\u2426"  # C1 controls (CSI and friends) as ␦
    if code in _BIDI:
        return "\u21c6"  # ⇆: reordering what is shown
    if category in ("Zl", "Zp"):
        return "\u2424"  # ␤: a line break the terminal would not show as one
    if category in ("Co", "Cs"):
        return "\ufffd"  # private use and lone surrogates: no meaning to draw
    return "\u25cc"  # ◌: zero-width and other format characters


def _replace(match: re.Match[str]) -> str:
    return _shown(match.group())


def visible(value: object, limit: int | None = None) -> str:
    """``value`` as a string that draws exactly as written: hidden characters shown as symbols, cut at ``limit``."""
    text = "NULL" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit:,} more characters)"
    return _SUSPECT.sub(_replace, text)


def without_lone_surrogates(text: str) -> tuple[str, int]:
    """``text`` with each lone surrogate (from a JSON ``"\\ud800"``, which no UTF-8 file or database can
    hold) replaced by U+FFFD, and how many there were."""
    return _LONE_SURROGATE.subn("\ufffd", text)


def as_text(value: object, limit: int | None = None, style: str = "") -> Text:
    """:func:`visible` as a Rich ``Text``: never parsed as markup."""
    return Text(visible(value, limit), style=style)


def interval_bar(low: float, high: float, point: float, width: int = 20,
                 scale: tuple[float, float] = (0.0, 1.0)) -> str:
    """A 95% interval drawn in ``width`` cells over ``scale``: ─ for the interval, ● for the estimate.

    Rows drawn with one shared scale line up like a forest plot.
    """
    cells = [" "] * width
    lo, hi = scale
    span = (hi - lo) or 1.0

    def cell(x: float) -> int:
        return max(0, min(width - 1, int((x - lo) / span * width)))

    for i in range(cell(low), cell(high) + 1):
        cells[i] = "─"
    cells[cell(point)] = "●"
    return "▕" + "".join(cells) + "▏"


def interval_scale(lows: list[float], highs: list[float], step: float = 0.1) -> tuple[float, float]:
    """The shared scale of a column of interval bars: the intervals' span widened to whole ``step``s (10 points
    of accuracy), so it reads as a round range, named in the column's header, and stays put while runs that fit
    it come and go."""
    if not lows:
        return 0.0, 1.0
    low = max(0.0, math.floor(min(lows) / step + 1e-9) * step)
    high = min(1.0, math.ceil(max(highs) / step - 1e-9) * step)
    return (low, high) if high > low else (max(0.0, low - step), min(1.0, high + step))


def histogram_bar(fraction: float, width: int = 30) -> str:
    """A horizontal bar of ``fraction`` (0..1) of ``width`` cells, in eighths."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if rest == 0 else " ▏▎▍▌▋▊▉"[rest])


def duration(seconds: float | None) -> str:
    """``1h02m`` or ``3m07s`` ('' when unknown): ETAs and elapsed times in tables and progress lines."""
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_value(value: float | None) -> str:
    """An answer as a person writes it: 36 not 36.0, 0.5, 1.5e+20; None is "no answer"."""
    if value is None:
        return "no answer"
    return f"{value:g}" if abs(value) < 1e15 else f"{value:.6g}"


def elide_middle(text: str, width: int) -> str:
    """``text`` in ``width`` characters, cut in the middle: a run name keeps its experiment (the start) and its
    strategy (the end), which is what tells runs apart."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[len(text) - tail:]
