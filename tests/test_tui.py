"""The Textual app driven by Pilot on a real store: keys in, store and widgets checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static, TextArea

from kdtui.store import Store
from kdtui.tui.app import KdtuiApp
from kdtui.tui.screens.leaderboard import LeaderboardScreen
from kdtui.tui.screens.triage import TriageScreen
from tests.pilot_helpers import open_triage, settle, until

SIZE = (100, 30)


def status(app: KdtuiApp, widget_id: str) -> str:
    return str(app.screen.query_one(widget_id, Static).render())


def final_state(store: Store, run: str, item_id: str) -> list[tuple[object, ...]]:
    return store.query("SELECT final_value, triaged FROM predictions_final p JOIN runs r ON r.id = p.run_id "
                       "WHERE r.name = ? AND item_id = ?", [run, item_id]).rows


def accuracy(store: Store, run: str) -> float:
    return float(store.query("SELECT accuracy FROM leaderboard WHERE name = ?", [run]).rows[0][0])


async def test_leaderboard_lists_runs_sorted_and_compares_to_baseline(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, LeaderboardScreen)
        table = screen.query_one("#board", DataTable)
        assert table.row_count == 3
        assert [r.name for r in screen._ordered()] == ["base", "teacher-kd", "no-distil"]
        # provisional: 4 reviews pending (conflicting boxes carry no value until a person settles them)
        assert str(table.get_row_at(0)[1]) == "50.0%*"
        assert "* provisional" in status(app, "#lb-status")
        await pilot.press("b")  # base becomes the baseline
        await settle(pilot)
        rows = {r.name: r for r in screen.rows}
        assert rows["base"].delta == 0.0
        # McNemar pairs settled items only: q00, q03, q05, q08 (the rest are pending in one run or the other);
        # base is right on q00 and q05, no-distil on none: 2 discordant pairs, one way
        assert rows["no-distil"].paired == 4
        assert rows["no-distil"].delta == pytest.approx(-0.5)
        assert rows["no-distil"].p_value == pytest.approx(2 / 2**2)
        assert "McNemar on settled pairs" in status(app, "#lb-status")
        assert "baseline: base" in status(app, "#lb-status")
        await pilot.press("o")  # next sort column: 95% CI
        assert "sorted by 95% CI" in status(app, "#lb-status")
        await pilot.press("v")
        assert "grouped by strategy" in status(app, "#lb-status")


async def test_triage_decisions_persist_and_move_the_leaderboard(tui_store: Store) -> None:
    before = accuracy(tui_store, "base")
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_triage(pilot)
        assert len(screen.items) == 12
        first = screen.current
        assert first is not None and first.run_name == "base" and first.item_id == "q02"
        assert "gold: hidden" in str(screen.query_one("#candidates", Static).render())
        await pilot.press("i")
        assert "gold: 7" in str(screen.query_one("#candidates", Static).render())
        await pilot.press("1")  # accept candidate 1 (7: right)
        await settle(pilot)
        assert screen.current is not None and screen.current.item_id != "q02"
        assert "1 done / 11 remaining" in status(app, "#tr-status")
        await pilot.press("n")  # q04: no answer
        await settle(pilot)
        await pilot.press("e", "9", "enter")  # through the dialog: the screen resumes and reloads its queue
        await settle(pilot)
        assert "3 done / 9 remaining" in status(app, "#tr-status")  # the session's decisions still count
    log = tui_store.query("SELECT item_id, value, previous_value FROM triage ORDER BY id").rows
    assert log[0] == ("q02", 7.0, 7.0)
    assert log[1] == ("q04", None, 0.75)
    assert accuracy(tui_store, "base") >= before
    # a new app (as after a dropped SSH session) no longer queues decided items
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_triage(pilot)
        remaining = {(i.run_name, i.item_id) for i in screen.items}
        assert ("base", "q02") not in remaining and ("base", "q04") not in remaining


async def test_typed_value_and_undo_restore_previous_value(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_triage(pilot)
        target = screen.current
        assert target is not None
        await pilot.press("0", "1", "3", "enter")  # a leading 0/./- always types a value: 013 = 13
        await settle(pilot)
        final = final_state(tui_store, target.run_name, target.item_id)
        assert final == [(13.0, True)]
        await pilot.press("u")
        await settle(pilot)
        final = final_state(tui_store, target.run_name, target.item_id)
        assert final == [(target.value, False)]
        assert screen.current is not None and screen.current.item_id == target.item_id
        assert tui_store.query("SELECT count(*) FILTER (WHERE undone) FROM triage").rows == [(1,)]


async def test_leaderboard_reflects_a_decision_immediately(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, LeaderboardScreen)
        before = {r.name: r.correct for r in screen.rows}
        await pilot.press("f2")
        await settle(pilot)
        triage = app.screen
        assert isinstance(triage, TriageScreen) and triage.current is not None
        assert triage.current.item_id == "q02" and triage.current.gold == 7.0
        await pilot.press("e")  # typed value through the dialog: a wrong 8
        await pilot.press("8", "enter")
        await settle(pilot)
        await pilot.press("f1")
        # the leaderboard refreshes (on showing, and by its file watcher): wait for the new count, not a clock
        await until(pilot, lambda: {r.name: r.correct for r in screen.rows}["base"] == before["base"] - 1,
                    "the leaderboard to count the decision")


async def open_sql(pilot: Any) -> TextArea:
    """F4, settled; the console's editor."""
    await pilot.press("f4")
    await settle(pilot)
    editor: TextArea = pilot.app.screen.query_one("#editor", TextArea)
    return editor


async def test_sql_console_refuses_writes_and_runs_reads(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_sql(pilot)
        editor.text = "DELETE FROM runs"
        await pilot.press("f5")
        await settle(pilot)
        assert "refused: DELETE" in status(app, "#sql-status")
        assert tui_store.query("SELECT count(*) FROM runs").rows == [(3,)]
        editor.text = "SELECT name FROM runs ORDER BY name"
        await pilot.press("f5")
        await settle(pilot)
        assert "3 rows" in status(app, "#sql-status")
        await pilot.press("ctrl+up")
        assert editor.text == "DELETE FROM runs"  # history, newest last


async def test_a_failed_query_clears_the_grid_and_piles_up_no_toasts(tui_store: Store) -> None:
    """After an error the last result used to stay on screen as if it were this query's, and every error
    added a toast over the editor."""
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_sql(pilot)
        editor.text = "SELECT name FROM runs ORDER BY name"
        await pilot.press("f5")
        await until(pilot, lambda: "3 rows" in status(app, "#sql-status"), "the result")
        assert app.screen.query_one("#results").row_count == 3  # type: ignore[attr-defined]
        for typo in ("SELEC 1", "SELECT nope FROM runs"):
            editor.text = typo
            await pilot.press("f5")
            await until(pilot, lambda: "query failed" in status(app, "#sql-status")
                        or "error" in status(app, "#sql-status").lower(), "the error")
            await settle(pilot)
            assert app.screen.query_one("#results").row_count == 0  # type: ignore[attr-defined]
        assert not [n for n in app._notifications if n.severity == "error"]


async def test_long_query_can_be_cancelled(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await settle(pilot)
        app.screen.query_one("#editor", TextArea).text = (
            "SELECT count(*) FROM range(100000000000) a WHERE a.range % 7 = 3")
        await pilot.press("f5")
        await until(pilot, lambda: "running" in status(app, "#sql-status"), "the query to be running")
        await pilot.press("escape")
        await settle(pilot)
        assert "query cancelled" in status(app, "#sql-status")


async def test_predictions_browser_filters_and_opens_triage(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # drill into the first run (base)
        await settle(pilot)
        assert "Predictions · base · 10 rows" in status(app, "#pr-status")
        screen = app.screen
        grid = screen.query_one("#predictions")
        gold = [str(grid.get_cell_at(Coordinate(row, 2))) for row in range(grid.row_count)]  # type: ignore[attr-defined]
        assert gold and not any(cell.endswith(".0") for cell in gold), gold  # 7, not 7.0
        screen.filter.needs_review = True  # as the review Select does
        screen.load()
        await settle(pilot)
        assert "4 rows" in status(app, "#pr-status")
        await pilot.press("enter")
        await settle(pilot)
        assert "Question" in str(app.screen.query_one(Static).render())
        await pilot.press("escape")
        await pilot.press("t")
        await settle(pilot)
        triage = app.screen
        assert isinstance(triage, TriageScreen)
        assert triage.current is not None and triage.current.run_name == "base"


async def test_errors_show_as_notifications_not_crashes(tmp_path: Path) -> None:
    bad = tmp_path / "store"
    bad.mkdir()
    (bad / "kdtui.duckdb").write_bytes(b"not a database" * 50)
    app = KdtuiApp(bad)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert any("cannot open store" in n.message for n in app._notifications)


async def test_captures_screen_lists_captures_with_histograms(tiny_model: Path, tmp_path: Path) -> None:
    from kdtui.config.capture import CaptureConfig
    from kdtui.recipes.capture import run_capture

    store = Store(tmp_path / "store")
    for strategy in ("base", "teacher"):
        run_capture(CaptureConfig(name=f"tiny-{strategy}", teacher=str(tiny_model), strategy=strategy,
                                  data="synthetic", limit=3, k=16), store)
    app = KdtuiApp(store.root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        await settle(pilot)
        table = app.screen.query_one("#captures", DataTable)
        assert table.row_count == 2
        first = [str(c) for c in table.get_row_at(0)]
        assert first[0] == "tiny-base" and first[2] == "base" and first[4] == "top-16"
        assert first[9].strip()  # the entropy histogram is drawn
        kept = table.get_row_at(0)[8]
        assert isinstance(kept, Text) and "at T=1 · " in kept.plain and "at T=5.94" in kept.plain
        # top-16 of a near-uniform 400-token model keeps little at T = 5.94: shown in red, as distill refuses it
        assert any("red" in str(span.style) for span in kept.spans)
        assert "2 captures" in status(app, "#cap-status")


async def test_a_screenshot_goes_to_the_stores_screenshots_folder_and_says_where(tui_store: Store) -> None:
    """A headless server has no ~/Downloads: the palette's Screenshot saves under the store and names the file."""
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.action_screenshot()
        await until(pilot, lambda: any("screenshot saved" in n.message for n in app._notifications),
                    "the screenshot notice")
        saved = [p for p in (tui_store.root / "screenshots").iterdir() if p.suffix == ".svg"]
        assert len(saved) == 1 and saved[0].read_text(encoding="utf-8").lstrip().startswith("<svg")
        assert any(str(saved[0]) in n.message for n in app._notifications)


async def test_each_triage_item_opens_at_its_top_with_the_gold_hidden(tui_store: Store) -> None:
    """`i` reveals one item's gold, not the next one's (blind triage); a scrolled response does not leave the
    next item opened half-way down; g and G go to the first and last item, as in every list."""
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=(80, 16)) as pilot:
        screen = await open_triage(pilot)
        first = screen.current
        assert first is not None and len(screen.items) > 1
        await pilot.press("i")
        await settle(pilot)
        assert screen.show_gold and "gold: hidden" not in str(screen.query_one("#candidates").render())
        scroll = screen.query_one("#response-scroll")
        scroll.scroll_to(y=scroll.max_scroll_y, animate=False)
        await pilot.press("j")  # the next item
        await settle(pilot)
        assert screen.current is not None and screen.current.item_id != first.item_id
        assert not screen.show_gold and "gold: hidden (i)" in str(screen.query_one("#candidates").render())
        assert scroll.scroll_y == 0
        await pilot.press("i")
        await settle(pilot)
        assert screen.show_gold  # i still works on the new item
        await pilot.press("G")
        await settle(pilot)
        assert screen.index == len(screen.items) - 1 and not screen.show_gold
        await pilot.press("g")
        await settle(pilot)
        assert screen.current is not None and screen.current.item_id == first.item_id


async def test_the_triage_run_filter_takes_the_shown_completion_and_names_an_unknown_run(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_triage(pilot)
        await pilot.press("slash")
        await until(pilot, lambda: app.screen is not screen, "the filter box")
        await pilot.press("b", "a", "enter")  # "ba" shows "base" completed: Enter takes "base"
        await until(pilot, lambda: app.screen is screen and screen.run_filter == "base", "the completed filter")
        await settle(pilot)
        assert screen.current is None or screen.current.run_name == "base"
        await pilot.press("slash")
        await until(pilot, lambda: app.screen is not screen, "the filter box")
        await pilot.press("ctrl+u", *"nope", "enter")
        await until(pilot, lambda: any("no run 'nope'" in n.message for n in app._notifications), "the warning")
        assert screen.run_filter == "base"  # unchanged


async def test_a_drill_down_resets_the_filters_and_the_header_names_any_that_are_on(tui_store: Store) -> None:
    """A leftover "needs review" filter hid rows with no sign of it, and the run dropdown kept the last run."""
    from textual.widgets import Select

    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        board = app.screen
        await pilot.press("enter")  # the first run
        await settle(pilot)
        predictions = app.screen
        first = predictions.filter.run  # type: ignore[attr-defined]
        predictions.query_one("#f-review", Select).value = "yes"
        await until(pilot, lambda: "filtered: needs review" in status(app, "#pr-status"), "the filter shown")
        await pilot.press("f1")
        await until(pilot, lambda: app.screen is board, "the leaderboard")
        await pilot.press("down", "enter")  # another run
        await until(pilot, lambda: predictions.filter.run not in (None, first), "the drill-down")  # type: ignore[attr-defined]
        await settle(pilot)
        second = predictions.filter.run  # type: ignore[attr-defined]
        assert predictions.filter.needs_review is None  # type: ignore[attr-defined]
        assert "filtered" not in status(app, "#pr-status") and f"Predictions · {second} ·" in status(app, "#pr-status")
        assert predictions.query_one("#f-run", Select).value == second
        assert predictions.query_one("#f-review", Select).is_blank()


async def test_enter_on_a_sql_cell_shows_the_whole_value(tui_store: Store) -> None:
    """The grid cuts a cell to one line of at most 60 cells; Enter shows all of it, every line, and q closes it."""
    from textual.widgets import Static as StaticWidget

    from kdtui.tui.screens.dialogs import DetailScreen

    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_sql(pilot)
        editor.text = "SELECT 'first line ' || repeat('x', 100) || chr(10) || 'second line, the end' AS note, 7 AS n"
        await pilot.press("f5")
        await until(pilot, lambda: "1 rows" in status(app, "#sql-status"), "the result")
        grid = app.screen.query_one("#results")
        grid.focus()
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the cell's detail")
        shown = str(app.screen.query_one(StaticWidget).render())
        assert "x" * 100 in shown and "second line, the end" in shown
        assert "note · row 1" in str(app.screen.query_one("#detail-box").border_title)
        await pilot.press("q")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen), "the detail to close")


def test_long_names_are_cut_in_the_middle() -> None:
    from kdtui.render import elide_middle

    name = "study/eval/llama-3.1-8b/ai-to-ai"
    assert elide_middle(name, 60) == name
    cut = elide_middle(name, 20)
    assert len(cut) == 20 and cut.startswith("study/eval") and cut.endswith("/ai-to-ai") and "…" in cut
    assert elide_middle(name, 1) == "…" and elide_middle(name, 0) == ""


@pytest.mark.parametrize(("width", "whole"), [(80, False), (200, True)])
async def test_the_leaderboard_gives_run_names_the_width_it_has(tmp_path: Path, width: int, whole: bool) -> None:
    """At 80 columns a long run name is cut in the middle (experiment and strategy stay); at 200 it is whole."""
    from tests.helpers import prediction_rows

    store = Store(tmp_path / "store")
    name = "an-experiment-with-a-long-name/eval/llama-3.1-8b/ai-to-ai"
    run = store.runs.start(name, "eval", {"model": "m", "strategy": "ai-to-ai"})
    store.predictions.add(run, prediction_rows(4))
    store.runs.finish(run, "done")
    app = KdtuiApp(store.root)
    async with app.run_test(size=(width, 30)) as pilot:
        await settle(pilot)
        shown = str(app.screen.query_one("#board", DataTable).get_row_at(0)[0])
        assert (shown == name) is whole, shown
        assert shown.startswith("an-experim") and shown.endswith("/ai-to-ai"), shown


async def test_triage_history_lists_reopens_and_changes_a_decision(tui_store: Store) -> None:
    """h lists every decision and undo, newest first; Enter reopens a decided item (from an earlier session
    too), where a key changes the decision and u undoes it; each change is a new row of the log."""
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_triage(pilot)
        first, second = screen.items[0], screen.items[1]
        await pilot.press("1")  # q02: candidate 1
        await settle(pilot)
        await pilot.press("n")  # the next: no answer
        await settle(pilot)
    app = KdtuiApp(tui_store.root)  # a later session: `u` alone had nothing to undo here
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_triage(pilot)
        await pilot.press("h")
        await until(pilot, lambda: app.screen.__class__.__name__ == "TriageHistoryScreen", "the history")
        table = app.screen.query_one("#history", DataTable)
        assert table.row_count == 2
        assert [str(table.get_row_at(i)[3]) for i in range(2)] == [second.item_id, first.item_id]  # newest first
        assert str(table.get_row_at(0)[4]).startswith("no answer") and str(table.get_row_at(0)[5]) == "*"
        await pilot.press("j", "enter")  # the older one: q02
        await until(pilot, lambda: screen.current is not None and screen.current.item_id == first.item_id
                    and app.screen is screen, "the reopened item")
        assert "decided: " in str(screen.query_one("#candidates", Static).render())
        await pilot.press("e")
        await pilot.press("4", "2", "enter")  # changed: a new decision
        await settle(pilot)
        assert final_state(tui_store, first.run_name, first.item_id) == [(42.0, True)]
        await pilot.press("h")
        await until(pilot, lambda: app.screen.__class__.__name__ == "TriageHistoryScreen", "the history again")
        table = app.screen.query_one("#history", DataTable)
        assert table.row_count == 3 and str(table.get_row_at(0)[4]) == f"42 (was {first.candidates[0]:g})"
        assert str(table.get_row_at(2)[5]) == ""  # the first decision on q02 is no longer in force
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen and screen.current is not None
                    and screen.current.item_id == first.item_id, "q02 again")
        await pilot.press("u")  # undoes the decision in force (42): the one before it is in force again
        await settle(pilot)
        assert final_state(tui_store, first.run_name, first.item_id) == [(first.candidates[0], True)]
    log = tui_store.query("SELECT item_id, value, undone FROM triage ORDER BY id").rows
    assert [row[0] for row in log] == [first.item_id, second.item_id, first.item_id, first.item_id]
    assert log[-1][2] is True  # append-only: the undo is a row, nothing was rewritten


async def test_the_interval_bars_name_their_scale_and_keep_it(tui_store: Store) -> None:
    """The bars share one scale, widened to whole tens and named in the column's header; a run whose interval
    fits inside does not rescale them (a filter neither: the scale is every run's)."""
    from textual.widgets.data_table import ColumnKey

    from kdtui.render import interval_scale

    assert interval_scale([0.237, 0.168, 0.0], [0.763, 0.687, 0.278]) == (0.0, 0.8)
    assert interval_scale([0.30, 0.45], [0.40, 0.52]) == pytest.approx((0.3, 0.6))
    assert interval_scale([], []) == (0.0, 1.0)
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        board = app.screen.query_one("#board", DataTable)
        header = str(board.columns[ColumnKey("interval")].label)
        assert header == "0% ─ 80%"
        await pilot.press("slash", *"teach", "enter")
        await until(pilot, lambda: board.row_count == 1, "the filtered leaderboard")
        assert str(board.columns[ColumnKey("interval")].label) == header
