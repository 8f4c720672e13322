"""TUI responsiveness on a big store: 1M predictions, 10k of them needing review.

    python benchmarks/tui_bench.py [--predictions 1000000] [--review 10000] [--keys 50] [--screenshots DIR]

Targets (issue 4): first screen <= 1.5 s; keypress to next item in triage <= 100 ms.
Training screen (issue 12): one redraw of 4 overlaid runs x 200,000 steps <= 150 ms (smoothing, min/max
downsampling per column, robust range and the plot widget's update, then the frame that paints it); the maths
runs in a thread (issue 24), so the UI thread is never blocked more than 100 ms by one (measured as the
largest gap between ticks of a 2 ms ticker on the event loop); incremental refresh = reading the rows after
the last step seen plus the redraw.
Baseline (issue 8, wave 1 measured on this machine): first screen 362 ms, 3 ms per triage key;
the "vs wave 1" column is this run divided by it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path

from kdtui.store import Store
from kdtui.tui.app import KdtuiApp
from kdtui.tui.screens.triage import TriageScreen


def build(root: Path, predictions: int, review: int, runs: int = 10) -> Store:
    store = Store(root)
    per_run = predictions // runs
    every = max(1, predictions // review)
    for r in range(runs):
        run_id = store.runs.start(f"run-{r}", "eval", {"model": "m", "prompt": "plain", "strategy": f"s{r % 4}"})
        with store.write() as con:
            con.execute(
                "INSERT INTO predictions (run_id, item_id, question, gold, prompt, response, n_new_tokens, "
                "finish_reason, value, rule, needs_review, correct, candidates) "
                "SELECT ?, 'q' || lpad(i::VARCHAR, 7, '0'), 'How many apples does Janet have?', 18, 'p', "
                "'She has 9 * 2 = 18 apples. ## Step 2: check', 40, 'length', "
                "CASE WHEN i % 3 = 0 THEN 17 ELSE 18 END, 'last_number', "
                "(i + ?) % ? = 0, i % 3 <> 0, [18.0, 17.0, 9.0] FROM range(?) t(i)",
                [run_id, r, every, per_run],
            ).fetchall()
    return store


async def measure(root: Path, keys: int, shots: Path | None) -> tuple[float, float, list[float], list[float]]:
    start = time.perf_counter()
    app = KdtuiApp(root)
    if shots:
        app.sub_title = "store/kdtui.duckdb"  # not the temporary folder's path
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#board")
        while getattr(table, "row_count", 0) == 0:
            await pilot.pause(0.01)
        first_screen = time.perf_counter() - start
        if shots:
            app.save_screenshot(str(shots / "leaderboard.svg"))
        start = time.perf_counter()
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, TriageScreen)
        while not screen.items:
            await pilot.pause(0.01)
        queue_load = time.perf_counter() - start
        if shots:
            app.save_screenshot(str(shots / "triage.svg"))
        # Latency = key press until the next item is drawn into the widgets (the
        # screen paints on the next frame). Keys come 50 ms apart, a fast typist;
        # every press writes a decision to the store in a worker meanwhile.
        shown: list[float] = []
        show_item = screen.show_item

        def timed_show_item() -> None:
            show_item()
            shown.append(time.perf_counter())

        screen.show_item = timed_show_item  # type: ignore[method-assign]
        latencies, round_trips = [], []
        for _ in range(keys):
            count = len(shown)
            start = time.perf_counter()
            await pilot.press("1")
            while len(shown) == count:
                await pilot.pause(0.001)
            latencies.append(shown[count] - start)
            round_trips.append(time.perf_counter() - start)
            await pilot.pause(0.05)
        for name, key in (("predictions", "f3"), ("sql", "f4")):
            await pilot.press(key)
            await pilot.pause(1.0)
            if key == "f4":
                await pilot.press("f5")
                await pilot.pause(1.5)
            if shots:
                app.save_screenshot(str(shots / f"{name}.svg"))
        await app.workers.wait_for_complete()
    return first_screen, queue_load, latencies, round_trips


def build_training(store: Store, runs: int, steps: int) -> None:
    """``runs`` distill runs of ``steps`` optimiser steps each, written by DuckDB itself (fast)."""
    for r in range(runs):
        run_id = store.runs.start(f"distill-{r}", "distill", {"preset": "study", "capture": f"c{r}"})
        add_training_steps(store, run_id, 0, steps, steps)
        store.runs.finish(run_id, "done")


def add_training_steps(store: Store, run_id: int, first: int, count: int, total: int) -> None:
    with store.write() as con:
        con.execute(
            "INSERT INTO train_metrics (run_id, split, step, total_steps, loss, ce, divergence, lr, grad_norm, "
            "tokens, tokens_per_s, elapsed_s) SELECT ?, 'train', i, ?, 4 * exp(-i / 50000) + 0.5 + random() * 0.3, "
            "5.0, 0.1, 1e-3, 1 + random(), i * 512, 5000, i * 0.1 FROM range(?, ?) t(i)",
            [run_id, total, first + 1, first + count + 1]).fetchall()


async def measure_training(root: Path, shots: Path | None, repeats: int = 5) -> dict[str, float]:
    """The Training screen: first load; a redraw from request to painted; the longest the UI thread was blocked
    during a redraw (a ticker on the event loop every 2 ms: the largest gap between its ticks); the chart maths
    alone (what the UI thread did before it moved to a thread); an incremental refresh."""
    from kdtui.curves import chart, pick_metrics
    from kdtui.tui.screens.training import TrainingScreen

    app = KdtuiApp(root)
    if shots:
        app.sub_title = "store/kdtui.duckdb"
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        start = time.perf_counter()
        await pilot.press("f7")
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        while screen.drawn is None or len(screen.selected) < 4 or not screen.drawn.series:
            await pilot.pause(0.005)
        first = time.perf_counter() - start
        redraws, stalls, maths = [], [], []
        for _ in range(repeats):  # request to painted, with nothing else asking for the UI thread
            start = time.perf_counter()
            screen.redraw()
            while screen.applied != screen.requested:
                await asyncio.sleep(0.002)  # not pilot.pause: its wait for idle is UI-thread work the chart waits on
            await pilot.pause()  # the frame that paints it
            redraws.append(time.perf_counter() - start)
            runs = [screen.series[i] for i in screen.selected]
            start = time.perf_counter()
            chart(runs, screen.view, pick_metrics(screen.view.metric_filter), columns=120)
            maths.append(time.perf_counter() - start)
        for _ in range(repeats):  # the UI thread's longest stall, beside a ticker that wants it every 2 ms
            ticks: list[float] = []
            stop = asyncio.Event()

            async def ticker(ticks: list[float] = ticks, stop: asyncio.Event = stop) -> None:
                while not stop.is_set():
                    ticks.append(time.perf_counter())
                    await asyncio.sleep(0.002)

            task = asyncio.create_task(ticker())
            await asyncio.sleep(0.01)
            screen.redraw()
            while screen.applied != screen.requested:
                await pilot.pause(0.002)
            await pilot.pause()
            stop.set()
            await task
            stalls.append(max(b - a for a, b in itertools.pairwise(ticks)))
        refreshes = []
        store = app.store
        for i in range(repeats):
            for run_id in screen.selected:
                add_training_steps(store, run_id, 200_000 + i * 100, 100, 200_000 + repeats * 100)
            count = screen.applied
            start = time.perf_counter()
            screen.reload()
            while screen.applied == count:
                await pilot.pause(0.002)
            await pilot.pause()
            refreshes.append(time.perf_counter() - start)
        if shots:
            app.save_screenshot(str(shots / "training.svg"))
    return {"first": first, "redraw": statistics.median(redraws), "stall": statistics.median(stalls),
            "maths": statistics.median(maths), "refresh": statistics.median(refreshes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--review", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--screenshots", type=Path)
    parser.add_argument("--training-steps", type=int, default=200_000, help="steps per run on the Training screen")
    args = parser.parse_args()
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        start = time.perf_counter()
        store = build(root, args.predictions, args.review)
        built = time.perf_counter() - start
        pending = store.query("SELECT count(*) FROM predictions WHERE needs_review").rows[0][0]
        first, queue, latencies, round_trips = asyncio.run(measure(root, args.keys, args.screenshots))
        decided = store.query("SELECT count(*) FROM triage").rows[0][0]
        train_root = Path(tmp) / "train-store"
        build_training(Store(train_root), 4, args.training_steps)
        training = asyncio.run(measure_training(train_root, args.screenshots))
    p50 = statistics.median(latencies)
    p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))]
    print(f"store: {args.predictions:,} predictions, {pending:,} needing review (built in {built:.1f}s); "
          f"{decided} decisions written during the run")
    print(f"{'measure':48s} {'value':>9s} {'target':>8s} {'ratio':>7s} {'vs wave 1':>10s}")
    for label, value, target, wave1 in (("time to first screen (leaderboard)", first, 1.5, 0.362),
                                        ("triage queue load (10k items)", queue, None, None),
                                        ("keypress to next item, median", p50, 0.1, 0.003),
                                        ("keypress to next item, p95", p95, 0.1, None),
                                        ("  incl. Pilot's wait for idle, median", statistics.median(round_trips),
                                         None, None),
                                        (f"training: first load, 4 x {args.training_steps:,} steps",
                                         training["first"], None, None),
                                        ("training: redraw, request to painted, median", training["redraw"], 0.15,
                                         None),
                                        ("training: longest UI-thread stall in a redraw", training["stall"], 0.1,
                                         None),
                                        ("  chart maths (in a thread; was on the UI)", training["maths"], None,
                                         None),
                                        ("training: incremental refresh (+100 steps/run)", training["refresh"],
                                         None, None)):
        ratio = f"{value / target:.2f}" if target else ""
        versus = f"{value / wave1:.2f}x" if wave1 else ""
        print(f"{label:48s} {value * 1000:7.0f}ms {'' if target is None else f'{target * 1000:.0f}ms':>8s} "
              f"{ratio:>7s} {versus:>10s}")


if __name__ == "__main__":
    main()
