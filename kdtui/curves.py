"""Training curves for drawing: smoothing, downsampling that keeps spikes, robust ranges, gaps. Pure numpy.

* :func:`ema` is a debiased exponential moving average (TensorBoard's and W&B's), computed on the
  full series before any downsampling, so the picture does not change with zoom. Missing values
  (NaN/inf) are skipped: the average carries over them and they stay gaps.
* :func:`minmax_downsample` keeps each pixel column's minimum and maximum, in order, so a spike
  is never averaged or sampled away (TensorBoard's random 1000-sample cap drops them).
* :func:`robust_range` frames the bulk of the data by its interquartile range; points outside
  are clamped to the edge and reported, never silently dropped.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
SMOOTHING_STEPS = (0.0, 0.6, 0.9, 0.99, 0.999)
PALETTE = ("#4ea1ff", "#ff7b54", "#7bd88f", "#e9c46a", "#c77dff", "#2ec4b6", "#ff5d8f", "#a3a3a3",
           "#f4a261", "#90e0ef")


def run_colour(name: str) -> str:
    """A stable colour per run name (the same in every session and on every screen)."""
    return PALETTE[int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(PALETTE)]


def distinct_colours(names: list[str]) -> dict[str, str]:
    """A colour per run drawn together, never two alike: each run keeps its own (``run_colour``) unless an
    earlier one took it, then the next free one. With more runs than colours, colours repeat in order."""
    taken: dict[str, str] = {}
    for name in dict.fromkeys(names):
        own = run_colour(name)
        free = [c for c in PALETTE if c not in taken.values()]
        taken[name] = own if own in free or not free else free[(PALETTE.index(own)) % len(free)]
    return taken


# How a metric's line is drawn, so two metrics of one run (one colour) stay apart: braille dots for the first,
# half blocks for the second, quadrants for the third. Eval losses are ◆ points; clamped points ▲ above, ▼ below.
METRIC_GLYPHS = ("⠒", "▀", "▚")


def ema(values: FloatArray, beta: float, block: int | None = None) -> FloatArray:
    """Debiased EMA: s_t = sum_i beta^(t-i) (1-beta) y_i / sum_i beta^(t-i) (1-beta) [y_i observed].

    Vectorised in blocks short enough that beta^-block stays finite, carrying the state across blocks
    (linear time, no Python loop per point). NaN/inf inputs are skipped and stay NaN in the output.
    """
    y = np.asarray(values, dtype=np.float64)
    if beta <= 0 or y.size == 0:
        return y.copy()
    seen = np.isfinite(y)
    x = np.where(seen, y, 0.0)
    m = seen.astype(np.float64)
    if block is None:
        block = max(1, min(y.size, int(600 / -math.log(beta))))  # beta^-block <= e^600
    out = np.empty_like(y)
    num = den = 0.0
    for start in range(0, y.size, block):
        xs, ms = x[start:start + block], m[start:start + block]
        k = np.arange(1, xs.size + 1, dtype=np.float64)
        grow = beta ** -k  # beta^(-k), k = 1..len
        # num_t = beta^t num_0 + (1-beta) sum_{i<=t} beta^(t-i) x_i, for t = 1..len within the block
        num_t = beta ** k * (num + (1 - beta) * np.cumsum(xs * grow))
        den_t = beta ** k * (den + (1 - beta) * np.cumsum(ms * grow))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + block] = num_t / den_t
        num, den = float(num_t[-1]), float(den_t[-1])
    out[~seen] = np.nan
    return out


def minmax_downsample(x: FloatArray, y: FloatArray, columns: int, lo: float | None = None,
                      hi: float | None = None) -> tuple[FloatArray, FloatArray]:
    """At most 2 points per column over [lo, hi]: each column's min and max, in the order they occur.

    ``x`` must be sorted. Non-finite ``y`` are left out (draw gaps with :func:`segments` first).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y)
    if lo is not None:
        keep &= x >= lo
    if hi is not None:
        keep &= x <= hi
    x, y = x[keep], y[keep]
    if x.size <= 2 * columns or columns <= 0:
        return x, y
    left, right = float(x[0]), float(x[-1])
    edges = np.searchsorted(x, np.linspace(left, right, columns + 1)[1:-1])
    starts = np.unique(np.concatenate([[0], edges]))
    starts = starts[starts < x.size]
    idx = np.arange(x.size)
    # index of the min and of the max inside each column
    y_min = np.minimum.reduceat(y, starts)
    y_max = np.maximum.reduceat(y, starts)
    column = np.repeat(np.arange(starts.size), np.diff(np.append(starts, x.size)))
    first_min = np.full(starts.size, x.size)
    first_max = np.full(starts.size, x.size)
    np.minimum.at(first_min, column[y == y_min[column]], idx[y == y_min[column]])
    np.minimum.at(first_max, column[y == y_max[column]], idx[y == y_max[column]])
    picks = np.sort(np.unique(np.concatenate([first_min, first_max])))
    return x[picks], y[picks]


def segments(x: FloatArray, y: FloatArray) -> list[tuple[FloatArray, FloatArray]]:
    """The runs of finite values between gaps (a NaN/inf breaks the line instead of bridging it)."""
    finite = np.isfinite(np.asarray(y, dtype=np.float64))
    if finite.all():
        return [(x, y)] if len(x) else []
    breaks = np.flatnonzero(np.diff(finite.astype(np.int8)))
    bounds = np.concatenate([[0], breaks + 1, [finite.size]])
    return [(x[a:b], y[a:b]) for a, b in itertools.pairwise(bounds) if finite[a]]


def first_divergence(x: FloatArray, y: FloatArray) -> float | None:
    """The x of the first NaN/inf value: where a run diverged."""
    bad = np.flatnonzero(~np.isfinite(np.asarray(y, dtype=np.float64)))
    return float(x[bad[0]]) if bad.size else None


@dataclass(frozen=True)
class Range:
    """A y-range for drawing and how many points it clamps at each edge."""

    low: float
    high: float
    clamped_low: int
    clamped_high: int


def robust_range(values: FloatArray, whisker: float = 3.0) -> Range | None:
    """[q1 - w*IQR, q3 + w*IQR] clipped to the data; None without finite data."""
    y = np.asarray(values, dtype=np.float64)
    y = y[np.isfinite(y)]
    if y.size == 0:
        return None
    q1, q3 = np.percentile(y, [25, 75])
    spread = q3 - q1
    low, high = max(float(y.min()), q1 - whisker * spread), min(float(y.max()), q3 + whisker * spread)
    if high <= low:  # flat data: a little room around it
        pad = abs(low) * 0.05 or 1.0
        low, high = low - pad, high + pad
    return Range(low, high, int((y < low).sum()), int((y > high).sum()))


def clamp(y: FloatArray, bounds: Range) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """``y`` clamped into ``bounds`` and the mask of the points that were (to mark them at the edge)."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        outside = (y < bounds.low) | (y > bounds.high)
    return np.clip(y, bounds.low, bounds.high), outside


def sparkline(values: FloatArray, width: int = 16) -> str:
    """A one-line block sparkline of the series' last trend (min/max per cell keeps spikes visible)."""
    bars = "▁▂▃▄▅▆▇█"
    y = np.asarray(values, dtype=np.float64)
    y = y[np.isfinite(y)]
    if y.size == 0:
        return ""
    cells = np.array_split(y, min(width, y.size))
    level = np.array([c.mean() for c in cells])
    low, high = float(level.min()), float(level.max())
    if high - low < 1e-12:
        return bars[3] * len(cells)
    return "".join(bars[int((v - low) / (high - low) * (len(bars) - 1))] for v in level)


# --------------------------------------------------------------------------- charts

TRAIN_COLUMNS = ("step", "tokens", "elapsed_s", "loss", "ce", "divergence", "kl_bucketed", "kl_full", "lr",
                 "grad_norm")
METRICS = ("loss", "ce", "divergence", "kl_bucketed", "kl_full", "eval_loss")
X_AXES = {"step": "step", "tokens": "tokens", "time": "elapsed_s"}


class RunSeries:
    """One run's curves in memory, grown incrementally from the rows a refresh brings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.train: dict[str, FloatArray] = {c: np.empty(0) for c in TRAIN_COLUMNS}
        self.eval: dict[str, FloatArray] = {"step": np.empty(0), "loss": np.empty(0)}

    @property
    def last_step(self) -> int:
        steps = self.train["step"]
        return int(steps[-1]) if steps.size else 0

    def extend(self, train: dict[str, FloatArray], evals: dict[str, FloatArray] | None = None) -> None:
        """Append new rows; a step at or before the last one (a resumed run's replay) replaces from there on."""
        self.train = _append(self.train, train, TRAIN_COLUMNS)
        if evals is not None:
            self.eval = _append(self.eval, evals, ("step", "loss"))

    def axis(self, x_axis: str) -> FloatArray:
        return self.train[X_AXES[x_axis]]

    def column(self, metric: str) -> tuple[FloatArray, FloatArray]:
        """(steps, values) of a metric; eval_loss lives on its own steps."""
        if metric == "eval_loss":
            return self.eval["step"], self.eval["loss"]
        return self.train["step"], self.train[metric]


def _append(old: dict[str, FloatArray], new: dict[str, FloatArray], names: tuple[str, ...]) -> dict[str, FloatArray]:
    incoming = {n: np.asarray(new.get(n, np.full(len(new.get("step", [])), np.nan)), dtype=np.float64)
                for n in names}
    if incoming["step"].size == 0:
        return old
    keep = old["step"] < incoming["step"][0]
    return {n: np.concatenate([old[n][keep], incoming[n]]) for n in names}


@dataclass
class View:
    """How the training chart is drawn; every key of the screen changes one field."""

    smoothing: float = 0.6
    x_axis: str = "step"
    log_y: bool = False
    metric_filter: str = "^(loss|eval_loss)$"
    window: float | None = None  # width of the x window; None shows everything
    offset: float = 0.0          # how far the window's right edge sits before the newest point
    follow: bool = True          # keep the newest point in view while a run trains


@dataclass
class Drawn:
    """One line or set of points as handed to the plot widget (tests assert on these)."""

    run: str
    metric: str
    kind: str  # raw (faint, behind), smooth, points (eval), above / below (clamped to the top / bottom edge)
    colour: str
    x: FloatArray
    y: FloatArray


@dataclass
class Chart:
    series: list[Drawn]
    x_range: tuple[float, float] | None
    y_range: Range | None
    diverged: list[tuple[str, float]]  # (run, x where it went NaN/inf)
    metrics: list[str]


def chart(runs: list[RunSeries], view: View, metrics: list[str], columns: int = 200) -> Chart:
    """Everything one redraw needs: smoothed on full series, windowed, downsampled per column, clamped."""
    x_all = [r.axis(view.x_axis) for r in runs if r.train["step"].size]
    if not x_all:
        return Chart([], None, None, [], metrics)
    x_max = max(float(np.nanmax(x)) for x in x_all)
    x_min = min(float(np.nanmin(x)) for x in x_all)
    hi = x_max - (0.0 if view.follow else view.offset)
    lo = x_min if view.window is None else max(x_min, hi - view.window)
    series: list[Drawn] = []
    diverged: list[tuple[str, float]] = []
    colours = distinct_colours([r.name for r in runs])
    for run in runs:
        axis = run.axis(view.x_axis)
        steps_all = run.train["step"]
        colour = colours[run.name]
        for metric in metrics:
            steps, raw = run.column(metric)
            if raw.size == 0 or (not np.isfinite(raw).any() and metric != "loss"):
                continue
            x = axis if metric != "eval_loss" else np.interp(steps, steps_all, axis)
            if metric == "loss":
                where = first_divergence(x, raw)
                if where is not None:
                    diverged.append((run.name, where))
            if metric == "eval_loss":
                y = _transform(raw, view.log_y)
                px, py = minmax_downsample(x, y, columns, lo, hi)
                series.append(Drawn(run.name, metric, "points", colour, px, py))
                continue
            smooth = ema(raw, view.smoothing) if view.smoothing > 0 else raw
            for kind, values in ((("raw", raw),) if view.smoothing > 0 else ()) + (("smooth", smooth),):
                y = _transform(values, view.log_y)
                for sx, sy in segments(x, y):
                    px, py = minmax_downsample(sx, sy, columns, lo, hi)
                    if px.size:
                        series.append(Drawn(run.name, metric, kind, colour, px, py))
    framed = [s.y for s in series if s.kind in ("smooth", "points")]
    bounds = robust_range(np.concatenate(framed)) if framed else None
    if bounds is not None:
        marks: list[Drawn] = []
        for s in series:
            s.y, outside = clamp(s.y, bounds)
            if outside.any() and s.kind != "raw":
                high = outside & (s.y >= bounds.high)
                for kind, mask in (("above", high), ("below", outside & ~high)):
                    if mask.any():
                        marks.append(Drawn(s.run, s.metric, kind, s.colour, s.x[mask], s.y[mask]))
        series += marks
    return Chart(series, (lo, hi), bounds, diverged, metrics)


def _transform(values: FloatArray, log_y: bool) -> FloatArray:
    if not log_y:
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(values), np.nan)


def pick_metrics(pattern: str) -> list[str]:
    """Metrics whose name matches a regular expression (an invalid one matches as plain text)."""
    import re

    try:
        compiled = re.compile(pattern)
    except re.error:
        compiled = re.compile(re.escape(pattern))
    return [m for m in METRICS if compiled.search(m)]
