"""The training-curve maths: debiased EMA with gaps, spike-keeping downsampling, robust ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kdtui.curves import (
    RunSeries,
    View,
    chart,
    clamp,
    ema,
    first_divergence,
    minmax_downsample,
    pick_metrics,
    robust_range,
    run_colour,
    segments,
)


def reference_ema(values: list[float], beta: float) -> list[float]:
    """The textbook loop: TensorBoard's debiased EMA, skipping missing values."""
    num = den = 0.0
    out = []
    for y in values:
        if math.isfinite(y):
            num, den = beta * num + (1 - beta) * y, beta * den + (1 - beta)
            out.append(num / den)
        else:
            num, den = beta * num, beta * den
            out.append(math.nan)
    return out


@pytest.mark.parametrize("beta", [0.0, 0.6, 0.9, 0.99, 0.999])
def test_ema_equals_the_loop_across_blocks_and_gaps(beta: float) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(3, 1, 5000)
    y[[10, 11, 2500]] = np.nan
    ours = ema(y, beta, block=97)  # small blocks: the state must carry across them exactly
    expected = np.array(reference_ema(y.tolist(), beta)) if beta else y
    assert np.allclose(ours, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isnan(ours[[10, 11, 2500]]).all()


def test_ema_is_debiased_from_the_first_point() -> None:
    assert ema(np.array([5.0, 5.0, 5.0]), 0.99)[0] == pytest.approx(5.0)


def test_downsampling_keeps_every_spike() -> None:
    x = np.arange(200_000, dtype=float)
    y = np.ones_like(x)
    y[[1234, 150_001]] = [50.0, -40.0]
    px, py = minmax_downsample(x, y, 100)
    assert px.size <= 200 and 50.0 in py and -40.0 in py
    assert np.all(np.diff(px) > 0)  # still in order: a line can be drawn through them


def test_gaps_split_the_line_and_mark_the_divergence() -> None:
    x = np.arange(10, dtype=float)
    y = np.array([1, 1, np.nan, 1, 1, 1, np.inf, np.nan, 1, 1], dtype=float)
    assert [s[0].tolist() for s in segments(x, y)] == [[0, 1], [3, 4, 5], [8, 9]]
    assert first_divergence(x, y) == 2.0


def test_robust_range_clamps_outliers_and_counts_them() -> None:
    y = np.concatenate([np.linspace(1, 2, 1000), [1e6]])
    bounds = robust_range(y)
    assert bounds is not None and bounds.high < 10 and bounds.clamped_high == 1
    clamped, outside = clamp(y, bounds)
    assert outside.sum() == 1 and clamped.max() == bounds.high  # at the edge, not dropped


def test_chart_follows_the_view() -> None:
    run = RunSeries("r1")
    steps = np.arange(1, 1001, dtype=float)
    loss = 5 * np.exp(-steps / 300) + np.random.default_rng(1).normal(0, 0.2, 1000)
    run.extend({"step": steps, "tokens": steps * 100, "elapsed_s": steps / 10, "loss": loss, "lr": steps * 0 + 1,
                "grad_norm": steps * 0 + 1}, {"step": np.array([500.0, 1000.0]), "loss": np.array([2.0, 1.0])})
    metrics = pick_metrics("^(loss|eval_loss)$")
    raw = chart([run], View(smoothing=0.0), metrics)
    smooth = chart([run], View(smoothing=0.99), metrics)
    assert {s.kind for s in raw.series} == {"smooth", "points"}
    assert {s.kind for s in smooth.series} >= {"raw", "smooth", "points"}
    line = next(s for s in smooth.series if s.kind == "smooth")
    assert np.std(np.diff(line.y)) < np.std(np.diff(next(s for s in raw.series if s.kind == "smooth").y))
    tokens = chart([run], View(x_axis="tokens"), metrics)
    assert tokens.x_range == (100.0, 100_000.0)
    points = next(s for s in tokens.series if s.kind == "points")
    assert points.x.tolist() == [50_000.0, 100_000.0]  # eval steps mapped onto the tokens axis
    logged = chart([run], View(log_y=True, smoothing=0.0), ["loss"])
    assert logged.y_range is not None and logged.y_range.high < 1  # log10 of values below 10
    window = chart([run], View(window=100.0), ["loss"])
    assert window.x_range == (900.0, 1000.0)


def test_a_replayed_step_replaces_itself() -> None:
    run = RunSeries("r")
    run.extend({"step": np.array([1.0, 2.0, 3.0]), "loss": np.array([3.0, 2.0, 1.0])})
    run.extend({"step": np.array([3.0, 4.0]), "loss": np.array([1.5, 0.5])})  # resumed from step 2
    assert run.train["step"].tolist() == [1, 2, 3, 4] and run.train["loss"].tolist() == [3, 2, 1.5, 0.5]


def test_colours_are_stable_and_metric_filter_forgives_bad_regex() -> None:
    assert run_colour("study/ai-to-ai") == run_colour("study/ai-to-ai")
    assert pick_metrics("loss") == ["loss", "eval_loss"]
    assert pick_metrics("(") == []


def test_runs_drawn_together_never_share_a_colour() -> None:
    from kdtui.curves import PALETTE, distinct_colours

    names = [f"run-{i}" for i in range(40)]
    clash = next((a, b) for a in names for b in names if a < b and run_colour(a) == run_colour(b))
    colours = distinct_colours(list(clash))
    assert len(set(colours.values())) == 2 and colours[clash[0]] == run_colour(clash[0])
    assert len(set(distinct_colours(names[: len(PALETTE)]).values())) == len(PALETTE)


def test_points_clamped_above_and_below_are_marked_apart() -> None:
    from kdtui.curves import RunSeries, View, chart

    run = RunSeries("spiky")
    steps = np.arange(1, 201, dtype=np.float64)
    loss = np.full(200, 2.0) + np.sin(steps) * 0.01
    loss[50], loss[120] = 400.0, -300.0  # one spike up, one down
    run.extend({"step": steps, "loss": loss, "tokens": steps, "elapsed_s": steps}, {})
    drawn = chart([run], View(smoothing=0.0), ["loss"], columns=400)
    kinds = {s.kind: s for s in drawn.series}
    assert drawn.y_range is not None
    assert kinds["above"].x.tolist() == [51.0] and kinds["above"].y.tolist() == [drawn.y_range.high]
    assert kinds["below"].x.tolist() == [121.0] and kinds["below"].y.tolist() == [drawn.y_range.low]

