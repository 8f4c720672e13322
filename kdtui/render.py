"""Text drawings shared by the CLI and the TUI (no Textual, no rich)."""

from __future__ import annotations


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
