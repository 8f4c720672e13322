"""The report's figures, drawn by matplotlib as SVG text to inline in one HTML page.

Text stays text (``svg.fonttype = none``: searchable, small), ids are salted with a fixed string and the date is
left out, so the same store gives the same page byte for byte.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdtui.store.reads import LeaderRow

COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
           "#64b5cd"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "kdtui", "font.size": 9})
    import matplotlib.pyplot as plt

    return plt


def _svg(figure: Any) -> str:
    """``figure`` as an ``<svg>`` element (the XML prolog and DOCTYPE dropped: it goes inside HTML)."""
    plt = _pyplot()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def leaderboard_figure(rows: Sequence[LeaderRow]) -> str:
    """Accuracy with its Wilson 95% interval per run, on a fixed 0-100% scale (runs added later never rescale
    it); a hollow point is provisional (reviews pending)."""
    plt = _pyplot()
    ordered = sorted(rows, key=lambda r: (r.accuracy, r.name))
    figure, axes = plt.subplots(figsize=(7.5, 0.35 * len(ordered) + 1.0))
    for y, row in enumerate(ordered):
        axes.plot([100 * row.ci_low, 100 * row.ci_high], [y, y], color="#4c72b0", linewidth=2)
        axes.plot([100 * row.accuracy], [y], "o", markersize=6, color="#4c72b0",
                  markerfacecolor="white" if row.pending else "#4c72b0")
    axes.set_yticks(range(len(ordered)), [row.name for row in ordered])
    axes.set_xlim(0, 100)
    axes.set_xticks(range(0, 101, 10))
    axes.set_xlabel("accuracy, % (Wilson 95% interval; hollow: reviews pending, counted at the automatic value)")
    axes.grid(axis="x", color="#dddddd")
    axes.set_axisbelow(True)
    return _svg(figure)


def training_figure(curves: dict[str, dict[str, list[tuple[float, float]]]], alpha: dict[str, float],
                    temperature: dict[str, float]) -> str:
    """Per distill run, the CE term and the KD term of its loss over steps, side by side: ``alpha·CE`` and
    ``(1-alpha)·D·T²`` as the loss adds them, so their sizes compare; eval loss where it was logged."""
    plt = _pyplot()
    figure, (ce_axes, kd_axes) = plt.subplots(1, 2, figsize=(10, 3.4))
    for index, (run, series) in enumerate(sorted(curves.items())):
        colour = COLOURS[index % len(COLOURS)]
        a, t = alpha.get(run, 1.0), temperature.get(run, 1.0)
        if series.get("ce"):
            steps, values = zip(*series["ce"], strict=True)
            ce_axes.plot(steps, [a * v for v in values], color=colour, label=run, linewidth=1.2)
        if series.get("eval_loss"):
            steps, values = zip(*series["eval_loss"], strict=True)
            ce_axes.plot(steps, values, "s--", color=colour, markersize=3, linewidth=0.8, label=f"{run} (eval loss)")
        if series.get("divergence") and a < 1.0:
            steps, values = zip(*series["divergence"], strict=True)
            kd_axes.plot(steps, [(1 - a) * v * t * t for v in values], color=colour, label=run, linewidth=1.2)
    ce_axes.set_title("CE term: α·CE (train), eval loss (dashed)")
    kd_axes.set_title("KD term: (1-α)·D·T²")
    for axes in (ce_axes, kd_axes):
        axes.set_xlabel("step")
        axes.grid(color="#eeeeee")
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
    return _svg(figure)


def entropy_figure(histograms: dict[str, list[float]], edges: Sequence[float] | None = None) -> str:
    """The teacher's per-token entropy distribution per capture (each capture's histogram, as a share of its
    tokens), one line each so several strategies compare on one plot."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 3.0))
    for index, (name, counts) in enumerate(sorted(histograms.items())):
        total = sum(counts) or 1
        xs = list(edges[: len(counts)]) if edges else list(range(len(counts)))
        axes.step(xs, [c / total for c in counts], where="post", color=COLOURS[index % len(COLOURS)], label=name)
    axes.set_xlabel("entropy, nats (bin start)" if edges else "entropy bin")
    axes.set_ylabel("share of tokens")
    axes.grid(color="#eeeeee")
    if histograms:
        axes.legend(fontsize=7)
    return _svg(figure)


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (NaN losses stay out of the plots)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
