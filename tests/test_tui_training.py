"""The Training screen (F7) with Pilot: live growth from a real distill run, keys that change what is drawn,
the divergence marker, and cursors that survive reloads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.text import Text

from kdtui.config.capture import CaptureConfig
from kdtui.config.distill import DistillConfig
from kdtui.recipes.capture import run_capture
from kdtui.recipes.distill import run_distill
from kdtui.store import Store
from kdtui.tui.app import KdtuiApp
from kdtui.tui.screens.training import TrainingScreen
from tests.helpers import prediction_rows
from tests.pilot_helpers import settle, until
from tests.tui_store import seed_run

SIZE = (120, 40)


async def open_training(pilot: Any) -> TrainingScreen:
    await pilot.press("f7")
    screen = pilot.app.screen
    assert isinstance(screen, TrainingScreen)
    await until(pilot, lambda: screen.drawn is not None and bool(screen.runs), "the training screen to load")
    await current(pilot, screen)
    return screen


async def current(pilot: Any, screen: TrainingScreen) -> None:
    """Wait for the chart of the newest redraw (charts are computed in a thread and applied when they land)."""
    await until(pilot, lambda: screen.applied == screen.requested, "the newest chart")


def smooth_line(screen: TrainingScreen, run: str, metric: str = "loss") -> Any:
    assert screen.drawn is not None
    return next(s for s in screen.drawn.series if s.run == run and s.metric == metric and s.kind == "smooth")


async def test_keys_change_what_is_drawn(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    seed_run(store, "study/ai", 600)
    seed_run(store, "study/teacher", 400)
    app = KdtuiApp(store.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot)
        assert {s.run for s in screen.drawn.series} == {"study/ai", "study/teacher"}  # type: ignore[union-attr]
        before = smooth_line(screen, "study/ai").y.copy()
        assert any(s.kind == "raw" for s in screen.drawn.series)  # type: ignore[union-attr]  # faint, behind
        await pilot.press("m")
        await current(pilot, screen)  # 0.6 -> 0.9: smoother
        after = smooth_line(screen, "study/ai").y
        assert screen.view.smoothing == 0.9 and np.std(np.diff(after)) < np.std(np.diff(before))
        await pilot.press("l")
        await current(pilot, screen)
        logged = smooth_line(screen, "study/ai").y
        assert screen.view.log_y and logged.max() < 1  # log10 of losses below 10
        await pilot.press("x")
        await current(pilot, screen)
        assert screen.view.x_axis == "tokens" and smooth_line(screen, "study/ai").x.max() == 60_000
        await pilot.press("x")
        await current(pilot, screen)
        assert screen.view.x_axis == "time" and smooth_line(screen, "study/ai").x.max() == pytest.approx(60.0)
        await pilot.press("minus", "plus", "plus")  # zoom in twice from everything: the newest quarter
        await current(pilot, screen)
        lo, hi = screen.drawn.x_range  # type: ignore[union-attr]
        assert hi == pytest.approx(60.0) and hi - lo == pytest.approx((60.0 - 0.1) / 2)
        await pilot.press("slash")
        await pilot.press(*"ce", "enter")
        await current(pilot, screen)
        assert {s.metric for s in screen.drawn.series} == {"ce", "divergence"}  # type: ignore[union-attr]
        assert "/ce/" in str(screen.query_one("#train-status").render())


async def test_at_80x24_one_plot_takes_the_height_with_its_legend_under_it(tmp_path: Path) -> None:
    """Over SSH at 80x24: the lr / grad-norm row goes, the status line stays, the loss plot keeps the height,
    and the legend is a line under it naming each run in its own colour and each metric's glyph (a box over
    the plot hid half the curves)."""
    from textual.widgets import Static

    store = Store(tmp_path / "store")
    seed_run(store, "study/ai", 600)
    seed_run(store, "study/teacher", 400)
    app = KdtuiApp(store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_training(pilot)
        await until(pilot, lambda: "-short" in screen.classes, "the short layout")
        await settle(pilot)
        assert not screen.query_one("#train-small").display
        assert screen.query_one("#train-status").region.height == 1
        assert screen.query_one("#train-chart").region.height >= 12
        legend = screen.query_one("#train-legend", Static).content
        assert isinstance(legend, Text)
        assert "study/ai" in legend.plain and "study/teacher" in legend.plain and "⠒⠒ loss" in legend.plain
        colours = {str(span.style) for span in legend.spans if str(span.style).startswith("#")}
        assert len(colours) == 2  # two runs, two colours, whatever their names hash to
    app = KdtuiApp(store.root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await until(pilot, lambda: "-tall" in screen.classes, "the tall layout")
        assert screen.query_one("#train-small").display


async def test_a_nan_step_shows_the_divergence(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    seed_run(store, "diverging", 300, nan_at=250)
    app = KdtuiApp(store.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot)
        assert screen.drawn is not None and screen.drawn.diverged == [("diverging", 250.0)]
        assert "diverging diverged at step 250" in str(screen.query_one("#train-status").render())
        assert max(s.x.max() for s in screen.drawn.series if s.kind == "smooth") < 250  # a gap, not a line


async def test_the_curve_grows_while_a_distill_run_trains(tiny_model: Path, tmp_path: Path) -> None:
    """A real distill run in the background: the screen picks up its steps as they are ingested."""
    store = Store(tmp_path / "store")
    run_capture(CaptureConfig.model_validate({"name": "c", "teacher": str(tiny_model), "data": "synthetic",
                                              "limit": 6, "device": "cpu", "format": "hidden"}), store,
                logs=tmp_path / "logs")
    stop = threading.Event()
    cfg = DistillConfig.from_sources({"run": "live", "student": str(tiny_model), "capture": "c", "device": "cpu",
                                      "epochs": 400, "checkpoint_every": 10_000})
    worker = threading.Thread(target=lambda: run_distill(cfg, store, tmp_path / "logs", should_stop=stop.is_set))
    app = KdtuiApp(store.root)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("f7")
            screen = app.screen
            assert isinstance(screen, TrainingScreen)
            worker.start()
            await until(pilot, lambda: bool(screen.drawn and screen.drawn.series), "the first steps", timeout=60)
            first = screen.series[screen.selected[0]].last_step
            await until(pilot, lambda: screen.series[screen.selected[0]].last_step > first + 20,
                        "the curve to grow", timeout=60)
            assert screen.runs[0].name == "live" and screen.runs[0].state == "running"
    finally:
        stop.set()
        worker.join(timeout=120)


async def test_the_predictions_cursor_keeps_its_row_across_a_reload(tmp_path: Path) -> None:
    from tests.tui_store import build_store

    store = build_store(tmp_path / "store")
    app = KdtuiApp(store.root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f3")
        await settle(pilot)
        screen = app.screen
        await pilot.press("down", "down", "down")
        chosen = screen._selected()  # type: ignore[attr-defined]
        loads = screen.loads  # type: ignore[attr-defined]
        run = store.runs.start("written-meanwhile", "eval", {"model": "m"})
        store.predictions.add(run, prediction_rows(2))
        await until(pilot, lambda: screen.loads > loads, "the reload")  # type: ignore[attr-defined]
        await settle(pilot)
        now = screen._selected()  # type: ignore[attr-defined]
        assert now is not None and (now.run_id, now.item) == (chosen.run_id, chosen.item)


async def test_the_axis_label_is_redrawn_cleanly(tmp_path: Path) -> None:
    """Narrowing the metrics used to leave the old label's tail on screen ("gloss, eval_lossoss")."""
    store = Store(tmp_path / "store")
    seed_run(store, "study/ai", 300)
    app = KdtuiApp(store.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot)

        def label_row() -> str:
            margin = screen.query_one("#train-chart").query_one("#margin-top")
            return margin.render_line(0).text

        await pilot.press("slash")
        await pilot.press(*"loss|ce|divergence", "enter")
        await until(pilot, lambda: "divergence" in label_row(), "the long label")
        await pilot.press("slash")
        await pilot.press("ctrl+u", *"^ce$", "enter")
        await until(pilot, lambda: {s.metric for s in screen.drawn.series} == {"ce"},  # type: ignore[union-attr]
                    "the narrowed metrics")
        await settle(pilot)
        row = label_row()
        assert "ce" in row and "divergence" not in row and "loss" not in row, row
