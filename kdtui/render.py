"""Text shared by the CLI and the TUI: strings made safe to show, interval and bar drawings (no Textual).

Every string that comes from the store, a model or a file goes through :func:`visible`
(or :func:`as_text`) before Rich or Textual draws it: markup such as ``[/INST]`` is
never interpreted, and control characters cannot move the cursor, recolour the
terminal or reorder what is shown.
"""

from __future__ import annotations

from rich.text import Text

# One replacement character per character, so spans found in the original text still line up.
_CONTROL_PICTURES = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)} | {0x7F: "\u2421"}
_C1 = dict.fromkeys(range(0x80, 0xA0), "\u2426")  # C1 controls (CSI and friends) as ␦
_INVISIBLE = dict.fromkeys([0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF], "\u25cc")  # zero-width as ◌
_BIDI = dict.fromkeys([0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)], "\u21c6")  # as ⇆
_TABLE = str.maketrans(_CONTROL_PICTURES | _C1 | _INVISIBLE | _BIDI)
SHOWN_CHARS = 20_000


def visible(value: object, limit: int | None = None) -> str:
    """``value`` as a string that draws exactly as written: controls shown as symbols, cut at ``limit``."""
    text = "NULL" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit:,} more characters)"
    return text.translate(_TABLE)


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
