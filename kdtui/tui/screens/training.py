"""Training: distill runs live — overlaid loss curves with smoothing, log-y, zoom, and divergence marked.

The run table lists every distill run (state, step/total, latest loss, tokens/s, ETA, a loss trend);
space selects runs to overlay (each in a colour hashed from its name), ``p`` pins one on top. The main
chart draws the metrics matching a regex (``/``; default the loss and the eval loss as points), a
second row lr and grad norm of the pinned (or first) run. Reads are incremental (rows after the last
step seen) and happen only while the screen is shown; the maths lives in :mod:`kdtui.curves`.
"""

from __future__ import annotations

import csv
import time
from dataclasses import replace
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual_plot import HiResMode, PlotWidget

from kdtui.config.layout import StoreLayout
from kdtui.curves import (
    METRIC_GLYPHS,
    SMOOTHING_STEPS,
    X_AXES,
    Chart,
    RunSeries,
    View,
    chart,
    distinct_colours,
    minmax_downsample,
    pick_metrics,
    run_colour,
    sparkline,
)
from kdtui.render import as_text, duration, visible
from kdtui.store.reads import TrainingRun, training_curves, training_runs
from kdtui.tui.screens.base import StoreScreen
from kdtui.tui.screens.grid import ListTable

MAX_OVERLAID = 4
HIRES = (HiResMode.BRAILLE, HiResMode.HALFBLOCK, HiResMode.QUADRANT)  # one per metric, as METRIC_GLYPHS draws them
COLUMNS = ["", "run", "state", "step", "loss", "tok/s", "ETA", "loss trend"]


class CurvePlot(PlotWidget):
    """A plot saying when its size changed: curves are downsampled to its width, so a plot laid out again (a
    terminal resized, the short-terminal layout applied after the first draw) is drawn again."""

    class Resized(Message):
        pass

    def on_resize(self, _event: events.Resize) -> None:
        self.post_message(self.Resized())


class TrainingScreen(StoreScreen):
    """Live training curves of distill runs."""

    # Under 34 rows (80x24 over SSH): the run table shrinks and the lr / grad-norm row goes, so the main plot
    # keeps the height; the legend is always a line under the plot, never a box over the curves.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

    BINDINGS = [
        Binding("space", "toggle_run", "Overlay"),
        Binding("P", "pin", "Pin"),
        Binding("m", "smoothing", "Smooth"),
        Binding("l", "log_y", "Log-y", show=False),  # l, x, f and the zoom keys: in `?` and the status line
        Binding("x", "x_axis", "X axis", show=False),
        Binding("slash", "filter", "Metrics"),
        Binding("f", "follow", "Follow", show=False),
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom in", show=False),
        Binding("minus", "zoom(2)", "Zoom out", show=False),
        Binding("left_square_bracket", "pan(1)", "Pan back", show=False),
        Binding("right_square_bracket", "pan(-1)", "Pan on", show=False),
        Binding("0", "reset_zoom", "All", show=False),
        Binding("ctrl+s", "export('csv')", "Export"),
        Binding("E", "export('parquet')", "Export parquet", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view = View()
        self.runs: list[TrainingRun] = []
        self.series: dict[int, RunSeries] = {}
        self.selected: list[int] = []  # run ids overlaid, in selection order
        self.pinned: int | None = None
        self.drawn: Chart | None = None  # what the last redraw plotted (tests read it)
        self.requested = 0  # charts asked for: one computing while another is asked is dropped when it lands
        self.applied = 0  # the request the plots show (== requested: the chart is current)
        self.label_cells = 0  # the widest y label drawn so far (see redraw)
        self.drawn_sizes: tuple[tuple[int, int], ...] = ()  # the plots' sizes at the last redraw
        self._user_chose = False  # until a key says otherwise, the newest runs are overlaid as they appear

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Training — loading…", id="train-status", classes="status")
        table: DataTable[Any] = ListTable(id="train-runs", cursor_type="row", zebra_stripes=True)
        yield table
        yield Input(placeholder="metrics regex, e.g. loss|ce|divergence|eval (enter applies)", id="train-filter")
        yield CurvePlot(id="train-chart")
        yield Static(id="train-legend")
        with Horizontal(id="train-small"):
            yield CurvePlot(id="train-lr")
            yield CurvePlot(id="train-grad")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#train-runs", DataTable).add_columns(*COLUMNS)
        self.query_one("#train-filter", Input).display = False
        for plot_id, label in (("#train-chart", "loss"), ("#train-lr", "lr"), ("#train-grad", "grad norm")):
            self.query_one(plot_id, PlotWidget).set_ylabel(label)
        self.watch_store()
        self.load()

    # ----------------------------------------------------------------- loading

    def load(self) -> None:
        """Fetch the run list and, for every overlaid run, the rows after its last step seen."""
        store = self.kdtui.store
        after = {run_id: (s.last_step if (s := self.series.get(run_id)) else 0) for run_id in self._wanted()}

        def read() -> tuple[list[TrainingRun], dict[int, dict[str, Any]]]:
            runs = training_runs(store)
            wanted = after or {r.run_id: 0 for r in runs[:MAX_OVERLAID]}
            return runs, {run_id: training_curves(store, run_id, step) for run_id, step in wanted.items()}

        self.fetch(read, self._loaded, group="training")

    def _wanted(self) -> list[int]:
        return list(dict.fromkeys(self.selected + ([self.pinned] if self.pinned is not None else [])))

    def _loaded(self, result: tuple[list[TrainingRun], dict[int, dict[str, Any]]]) -> None:
        runs, increments = result
        self.runs = runs
        names = {r.run_id: r.name for r in runs}
        if not self._user_chose and runs:  # the newest runs overlaid by default, new ones joining as they start
            newest = [r.run_id for r in runs[:MAX_OVERLAID]]
            if newest != self.selected:
                self.selected = newest
                missing = [i for i in newest if i not in increments and i not in self.series]
                if missing:
                    self.load()  # their rows come with the next read
        for run_id, parts in increments.items():
            series = self.series.setdefault(run_id, RunSeries(names.get(run_id, str(run_id))))
            series.extend(parts["train"], parts["eval"])
        self._fill_table()
        self.redraw()

    def reload(self) -> None:
        self.load()

    # ------------------------------------------------------------------ drawing

    def _fill_table(self) -> None:
        table = self.query_one("#train-runs", DataTable)
        keep = table.cursor_row
        table.clear()
        names = {r.run_id: r.name for r in self.runs}
        drawn = distinct_colours([names[i] for i in self._draw_order() if i in names])  # as the chart colours them
        for run in self.runs:
            mark = "◆" if run.run_id == self.pinned else ("●" if run.run_id in self.selected else "○")
            colour = drawn.get(run.name, run_colour(run.name))
            series = self.series.get(run.run_id)
            trend = sparkline(series.train["loss"]) if series is not None else ""
            step = f"{run.step or 0}/{run.total_steps or '?'}"
            table.add_row(Text(mark, style=colour), as_text(run.name), as_text(run.state), step,
                          "" if run.loss is None else f"{run.loss:.4f}",
                          "" if run.tokens_per_s is None else f"{run.tokens_per_s:,.0f}", duration(run.eta_s),
                          Text(trend, style=colour), key=str(run.run_id))
        if self.runs:
            table.move_cursor(row=min(keep, len(self.runs) - 1))  # the cursor stays where it was

    def _draw_order(self) -> list[int]:
        """Overlaid runs in drawing order: the pinned one last, on top."""
        return [i for i in self.selected if i != self.pinned] + ([self.pinned] if self.pinned is not None else [])

    def _plot_sizes(self) -> tuple[tuple[int, int], ...]:
        return tuple((p.size.width, p.size.height) for p in self.query(CurvePlot))

    @on(CurvePlot.Resized)
    def _resized(self) -> None:
        if self.requested and self.drawn_sizes != self._plot_sizes():
            self.redraw()

    class Computed(Message):
        """A chart computed off the UI thread, for the request numbered ``generation``."""

        def __init__(self, generation: int, drawn: Chart, small: list[tuple[Any, Any] | None], colour: str) -> None:
            super().__init__()
            self.generation, self.drawn, self.small, self.colour = generation, drawn, small, colour

    def redraw(self) -> None:
        """Rebuild the charts from the series in memory (no store access). The maths (smoothing, min/max
        downsampling and ranges over every step of every overlaid run: ~170 ms at 4 x 200,000 steps) runs in a
        thread; the UI thread only hands the few points per column to the plots. A request made while one is
        computing supersedes it: only the newest is drawn."""
        runs = [self.series[i] for i in self._draw_order() if i in self.series]
        self.drawn_sizes = self._plot_sizes()
        self.requested += 1
        width = max(self.query_one("#train-chart", PlotWidget).size.width, 40)
        small_widths = [max(self.query_one(p, PlotWidget).size.width, 20) for p in ("#train-lr", "#train-grad")]
        self._compute(self.requested, runs, replace(self.view), width, small_widths)

    @work(thread=True, group="train-draw")
    def _compute(self, generation: int, runs: list[RunSeries], view: View, width: int,
                 small_widths: list[int]) -> None:
        drawn = chart(runs, view, pick_metrics(view.metric_filter), columns=width)
        small: list[tuple[Any, Any] | None] = []
        last = runs[-1] if runs else None
        for column, columns in zip(("lr", "grad_norm"), small_widths, strict=True):
            if last is None or last.train["step"].size == 0:
                small.append(None)
                continue
            small.append(minmax_downsample(last.axis(view.x_axis), last.train[column], columns))
        self.post_message(self.Computed(generation, drawn, small, run_colour(last.name) if last else ""))

    @on(Computed)
    def _apply(self, message: Computed) -> None:
        if message.generation != self.requested:
            return  # a newer request is on its way
        self.drawn = drawn = message.drawn
        self.applied = message.generation
        main = self.query_one("#train-chart", PlotWidget)
        main.clear()
        lines = [m for m in drawn.metrics if m != "eval_loss"]
        pinned_name = self.series[self.pinned].name if self.pinned in self.series else None
        for s in drawn.series:
            pinned = s.run == pinned_name
            mode = HIRES[lines.index(s.metric) % len(HIRES)] if s.metric in lines else HiResMode.BRAILLE
            if s.kind == "raw":
                main.plot(s.x, s.y, line_style=f"dim {s.colour}", hires_mode=mode)
            elif s.kind == "smooth":
                main.plot(s.x, s.y, line_style=f"{'bold ' if pinned else ''}{s.colour}", hires_mode=mode)
            elif s.kind == "points":
                main.scatter(s.x, s.y, marker="◆", marker_style=s.colour)
            else:  # clamped to the top or bottom edge: marked, never dropped
                main.scatter(s.x, s.y, marker="▲" if s.kind == "above" else "▼", marker_style=f"bold {s.colour}")
        for run, where in drawn.diverged:
            main.add_v_line(where, line_style="bold red", label=f"{run} diverged")
        if drawn.x_range is not None:
            main.set_xlimits(*drawn.x_range)
        if drawn.y_range is not None:
            main.set_ylimits(drawn.y_range.low, drawn.y_range.high)
        main.set_xlabel({"step": "step", "tokens": "tokens seen", "time": "seconds"}[self.view.x_axis])
        # textual-plot writes the label over the last one without clearing it ("gloss, eval_lossoss"): a label
        # centred in the widest width used so far overwrites every cell an earlier one took.
        label = ("log10 " if self.view.log_y else "") + ", ".join(drawn.metrics)
        self.label_cells = max(self.label_cells, len(label))
        main.set_ylabel(label.center(self.label_cells))
        self.query_one("#train-legend", Static).update(self._legend(drawn, lines))
        for plot_id, points in zip(("#train-lr", "#train-grad"), message.small, strict=True):
            plot = self.query_one(plot_id, PlotWidget)
            plot.clear()
            if points is not None and points[0].size:
                plot.plot(points[0], points[1], line_style=message.colour, hires_mode=HiResMode.BRAILLE)
        self._status(drawn)
        if self.drawn_sizes != self._plot_sizes():  # laid out again while it was computed: draw at the new size
            self.redraw()

    @staticmethod
    def _legend(drawn: Chart, lines: list[str]) -> Text:
        """One line under the plot: each run's colour, each metric's glyph, the eval and clamp marks."""
        text = Text(" ")
        runs = list(dict.fromkeys((s.run, s.colour) for s in drawn.series))
        for name, colour in runs:
            text.append("● ", style=colour)
            text.append(visible(name) + "  ")
        for index, metric in enumerate(lines):
            text.append(f"{METRIC_GLYPHS[index % len(METRIC_GLYPHS)] * 2} {metric}  ", style="bold")
        if any(s.kind == "points" for s in drawn.series):
            text.append("◆ eval_loss  ", style="bold")
        if any(s.kind in ("above", "below") for s in drawn.series):
            text.append("▲▼ clamped to the edge", style="bold")
        return text

    def _status(self, drawn: Chart) -> None:
        view = self.view
        parts = [f"{len(self.runs)} runs", f"smooth {view.smoothing:g} (m)", f"x {view.x_axis} (x)",
                 f"log-y {'on' if view.log_y else 'off'} (l)", f"/{view.metric_filter}/",
                 "follow (f)" if view.follow else "paused (f)"]
        if view.window is not None:
            parts.append(f"window {view.window:g}")
        if drawn.y_range is not None and (drawn.y_range.clamped_low or drawn.y_range.clamped_high):
            parts.append(f"▲▼ {drawn.y_range.clamped_low + drawn.y_range.clamped_high} points clamped to the edge")
        parts += [f"{run} diverged at {view.x_axis} {where:g}" for run, where in drawn.diverged]
        if not self.runs:
            parts = ["no distill runs yet · kdtui distill --student PATH --capture NAME --run NAME starts one"]
        self.query_one("#train-status", Static).update(as_text(" · ".join(parts)))

    # -------------------------------------------------------------------- keys

    def _cursor_run(self) -> TrainingRun | None:
        table = self.query_one("#train-runs", DataTable)
        if not self.runs or table.cursor_row < 0:
            return None
        return self.runs[min(table.cursor_row, len(self.runs) - 1)]

    def action_toggle_run(self) -> None:
        run = self._cursor_run()
        if run is None:
            return
        self._user_chose = True
        if run.run_id in self.selected:
            self.selected.remove(run.run_id)
        else:
            self.selected.append(run.run_id)
        self.load()  # a newly overlaid run needs its rows

    def action_pin(self) -> None:
        """Draw the run under the cursor on top of the others (P again unpins)."""
        run = self._cursor_run()
        if run is not None:
            self._user_chose = True
            self.pinned = None if self.pinned == run.run_id else run.run_id
            self.load()

    def action_smoothing(self) -> None:
        steps = SMOOTHING_STEPS
        self.view.smoothing = steps[(steps.index(self.view.smoothing) + 1) % len(steps)] \
            if self.view.smoothing in steps else steps[0]
        self.redraw()

    def action_log_y(self) -> None:
        self.view.log_y = not self.view.log_y
        self.redraw()

    def action_x_axis(self) -> None:
        axes = list(X_AXES)
        self.view.x_axis = axes[(axes.index(self.view.x_axis) + 1) % len(axes)]
        self.view.window, self.view.offset = None, 0.0  # a window in steps means nothing in seconds
        self.redraw()

    def action_follow(self) -> None:
        self.view.follow = not self.view.follow
        if self.view.follow:
            self.view.offset = 0.0
        self.redraw()

    def action_zoom(self, factor: float) -> None:
        if self.drawn is None or self.drawn.x_range is None:
            return
        lo, hi = self.drawn.x_range
        self.view.window = max((self.view.window or (hi - lo)) * factor, 1e-9)
        self.redraw()

    def action_pan(self, direction: int) -> None:
        if self.view.window is None:
            return
        self.view.follow = False
        self.view.offset = max(0.0, self.view.offset + direction * self.view.window / 4)
        self.redraw()

    def action_reset_zoom(self) -> None:
        self.view.window, self.view.offset, self.view.follow = None, 0.0, True
        self.redraw()

    def action_filter(self) -> None:
        box = self.query_one("#train-filter", Input)
        box.display = True
        box.value = self.view.metric_filter
        box.focus()

    @on(Input.Submitted, "#train-filter")
    def _filter_set(self, event: Input.Submitted) -> None:
        self.view.metric_filter = event.value or "^loss$"
        event.input.display = False
        self.query_one("#train-runs", DataTable).focus()
        self.redraw()

    def action_export(self, fmt: str) -> None:
        """Write the series on screen (after smoothing and windowing) next to the store."""
        if self.drawn is None or not self.drawn.series:
            self.notify("nothing drawn to export", severity="warning")
            return
        folder = StoreLayout(self.kdtui.store.root).exports
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"training-{time.strftime('%Y%m%d-%H%M%S')}.{fmt}"
        rows = [(s.run, s.metric, s.kind, float(x), float(y)) for s in self.drawn.series
                for x, y in zip(s.x, s.y, strict=True)]
        header = ["run", "metric", "kind", self.view.x_axis, "value"]
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({h: [r[i] for r in rows] for i, h in enumerate(header)}), path)
        else:
            with path.open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                writer.writerows(rows)
        self.notify(f"exported {len(rows)} points to {path}", markup=False)
