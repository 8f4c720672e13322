"""TUI plumbing under pressure: fast undo, failed writes, hidden screens, the SQL editor's focus."""

from __future__ import annotations

import duckdb
from textual import events
from textual.widgets import TextArea

from kdtui.store import Store
from kdtui.tui.app import KdtuiApp
from kdtui.tui.screens.leaderboard import LeaderboardScreen
from kdtui.tui.screens.sql import SqlScreen
from tests.helpers import prediction_rows
from tests.pilot_helpers import open_triage, settle, until

SIZE = (100, 30)


def log(store: Store) -> list[dict[str, object]]:
    return store.query("SELECT id, item_id, value, undone, undoes FROM triage ORDER BY id").records()


def in_force(store: Store) -> dict[str, object]:
    return {r["item_id"]: r["value"] for r in store.query("SELECT item_id, value FROM triage_effective").records()}


async def test_fast_undo_undoes_the_decision_just_made(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_triage(pilot)
        first, second = screen.items[0], screen.items[1]
        # Keys 10 ms apart: decide, decide, undo, undo, decide — faster than any write lands.
        for key in ("1", "n", "u", "u", "n"):
            await pilot.press(key)
            await pilot.pause(0.01)
        await settle(pilot)
        rows = log(tui_store)
        decided = [r for r in rows if not r["undone"]]
        undos = [r for r in rows if r["undone"]]
        assert [r["item_id"] for r in decided] == [first.item_id, second.item_id, first.item_id]
        # the first undo took back the second decision, the second undo the first: newest first
        assert [r["undoes"] for r in undos] == [decided[1]["id"], decided[0]["id"]]
        assert in_force(tui_store) == {first.item_id: None}
        assert screen.current is not None and screen.current.item_id == second.item_id
        assert "1 done / 11 remaining" in str(screen.query_one("#tr-status").render())


async def test_a_failed_write_puts_the_item_back(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_triage(pilot)
        target = screen.current
        assert target is not None
        app.store.sessions.busy_timeout = 0.5
        outside = duckdb.connect(str(tui_store.path), read_only=True)  # the write cannot get in
        try:
            await pilot.press("n")
            await until(pilot, lambda: any("not saved" in n.message for n in app._notifications), "the failure")
        finally:
            outside.close()
        assert not target.triaged and target.final_value == target.value  # back in the queue, as before
        assert screen.session == []
        assert log(tui_store) == []
        assert "0 done / 12 remaining" in str(screen.query_one("#tr-status").render())


async def test_hidden_screens_do_not_reload_on_store_writes(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        board = app.screen
        assert isinstance(board, LeaderboardScreen)
        triage = await open_triage(pilot)
        board_loads, triage_loads = board.loads, triage.loads
        run = tui_store.runs.start("written-meanwhile", "eval", {"model": "m"})
        tui_store.predictions.add(run, prediction_rows(5))
        await until(pilot, lambda: triage.loads > triage_loads, "the visible screen to reload", timeout=10)
        assert board.loads == board_loads and board.stale  # hidden: marked, not reloaded
        assert "written-meanwhile" not in {r.name for r in board.rows}
        await pilot.press("f1")
        await until(pilot, lambda: "written-meanwhile" in {r.name for r in board.rows}, "the leaderboard on show")
        assert board.loads == board_loads + 1 and not board.stale


async def test_leaderboard_keeps_the_selected_run_across_reloads(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        board = app.screen
        assert isinstance(board, LeaderboardScreen)
        await pilot.press("down", "down")
        chosen = board.selected_row()
        assert chosen is not None
        loads = board.loads
        tui_store.runs.start("another", "eval", {"model": "m"})
        tui_store.predictions.add(tui_store.runs.get("another").id, prediction_rows(3))  # type: ignore[union-attr]
        await until(pilot, lambda: board.loads > loads and len(board.rows) == 4, "the reload")
        selected = board.selected_row()
        assert selected is not None and selected.name == chosen.name


async def test_sql_editor_takes_keys_at_once_at_the_end(tui_store: Store) -> None:
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # As a terminal delivers them: F4 and the next keys in one burst, before the SQL screen exists.
        for key, char in [("f4", None), ("space", " "), ("L", "L"), ("I", "I"), ("M", "M"), ("I", "I"),
                          ("T", "T"), ("space", " "), ("1", "1")]:
            app.post_message(events.Key(key, char))
        await until(pilot, lambda: isinstance(app.screen, SqlScreen), "the SQL screen")
        await settle(pilot)
        editor = app.screen.query_one("#editor", TextArea)
        assert editor.text.endswith("ORDER BY accuracy DESC LIMIT 1")
        await pilot.press("f5")
        await settle(pilot)
        assert "1 rows" in str(app.screen.query_one("#sql-status").render())
