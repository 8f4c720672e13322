"""One key language (kdtui/tui/keys.py): no screen or dialog gives a global key another meaning, ``?`` lists the
keys of every screen, and ``q`` closes a dialog or quits."""

from __future__ import annotations

import inspect
from typing import Any

from textual.binding import Binding
from textual.screen import Screen

from kdtui.tui.keys import GLOBAL_ACTIONS, SCREEN_KEYS, key_conflicts
from tests.pilot_helpers import every_screen, open_triage, settle, until


def _screen_classes() -> list[type[Screen[Any]]]:
    import kdtui.tui.screens as package
    from kdtui.tui.screens import (
        captures,
        dialogs,
        jobs,
        leaderboard,
        predictions,
        sql,
        training,
        triage,
        triage_history,
    )

    modules = [captures, dialogs, jobs, leaderboard, predictions, sql, training, triage, triage_history]
    assert {m.__name__.rsplit(".", 1)[1] for m in modules} >= {p.stem for p in _screen_files(package)}
    return [cls for module in modules for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, Screen) and cls.__module__ == module.__name__]


def _screen_files(package: Any) -> list[Any]:
    from pathlib import Path

    folder = Path(package.__file__).parent
    return [p for p in folder.glob("*.py") if p.stem not in ("__init__", "base", "grid", "triage_writer")]


def test_no_screen_gives_a_global_key_another_meaning() -> None:
    classes = _screen_classes()
    assert len(classes) >= 10  # seven screens and the dialogs: the walk found them
    for cls in classes:
        assert key_conflicts(list(cls.BINDINGS)) == [], cls.__name__
    # and the check itself sees a conflict when one is made
    assert key_conflicts([Binding("q", "refresh", "Refresh"), ("question_mark", "gold")]) == \
        ["q: refresh", "question_mark: gold"]
    assert key_conflicts([Binding("escape,q", "close", "Close")]) == []


def test_a_letter_means_one_thing_on_every_screen() -> None:
    """Screen keys, too: `r` refreshes wherever it is bound (retry is R), `s`, `p`, `e` and `m` have one meaning
    each. A key bound on several screens runs the same action on all of them."""
    meanings: dict[str, dict[str, str]] = {}
    for cls in [c for c in _screen_classes() if c.__module__ != "kdtui.tui.screens.dialogs"]:
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding), (cls.__name__, binding)
            for key in (k.strip() for k in binding.key.split(",")):
                meanings.setdefault(key, {})[cls.__name__] = binding.action.split("(")[0]
    mixed = {key: where for key, where in meanings.items() if len(set(where.values())) > 1}
    # escape closes or cancels whatever is in front; enter opens what the cursor is on: one meaning, many verbs
    assert set(mixed) <= {"escape", "enter"}, mixed
    assert {"r"} <= {key for key, where in meanings.items() if len(where) > 1}  # the check sees shared keys


def test_the_global_keys_are_bound_on_the_app() -> None:
    from kdtui.tui.app import KdtuiApp

    bound = {b.key: b.action for b in KdtuiApp.BINDINGS if isinstance(b, Binding)}
    assert bound == GLOBAL_ACTIONS
    assert set(SCREEN_KEYS.values()) == set(KdtuiApp.MODES)


async def test_question_mark_lists_the_keys_of_every_screen(tui_store: Any) -> None:
    from textual.widgets import HelpPanel

    from kdtui.tui.app import KdtuiApp

    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=(120, 40)) as pilot:
        async for mode, screen in every_screen(pilot):
            if mode == "sql":
                screen.query_one("#results").focus()  # in the editor, `?` is text
                await pilot.pause()
            await pilot.press("question_mark")
            await until(pilot, lambda s=screen: bool(s.query(HelpPanel)), f"the key panel on {mode}")
            # every key of the screen is in the panel (Enter may show as the focused grid's own, which it is)
            listed = set(screen.active_bindings)
            own = {k.strip() for b in type(screen).BINDINGS if isinstance(b, Binding) and b.show
                   for k in b.key.split(",")}
            assert own and own <= listed, (mode, own - listed)
            assert {"question_mark", "q", "f1"} <= listed, mode
            await pilot.press("question_mark")
            await until(pilot, lambda s=screen: not s.query(HelpPanel), f"the key panel to close on {mode}")


async def test_q_closes_a_dialog_then_quits(tui_store: Any) -> None:
    from kdtui.tui.app import KdtuiApp
    from kdtui.tui.screens.dialogs import InputScreen

    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_triage(pilot)
        await pilot.press("slash")  # the run filter: a dialog whose input takes `q` as text
        await until(pilot, lambda: isinstance(app.screen, InputScreen), "the run filter")
        await pilot.press("q")
        assert isinstance(app.screen, InputScreen)  # typed, not a key
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "the filter to close")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to quit")
    assert app.return_code == 0


async def test_tab_reaches_every_control_of_predictions_and_sql(tui_store: Any) -> None:
    """F3: Tab cycles the grid and its four filters (the grid's own Tab used to move its cursor instead). F4: Tab
    indents in the editor, as in any code editor; shift+Tab leaves it for the schema and the results."""
    from kdtui.tui.app import KdtuiApp

    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=(100, 30)) as pilot:

        async def cycle(key: str, presses: int) -> list[str | None]:
            seen = []
            for _ in range(presses):
                seen.append(app.focused.id if app.focused is not None else None)
                await pilot.press(key)
                await pilot.pause()
            return seen

        await pilot.press("f3")
        await settle(pilot)
        app.screen.query_one("#predictions").focus()
        await pilot.pause()
        assert await cycle("tab", 6) == ["predictions", "f-run", "f-correct", "f-rule", "f-review", "predictions"]
        await pilot.press("f4")
        await settle(pilot)
        assert app.focused is not None and app.focused.id == "editor"
        assert set(await cycle("shift+tab", 4)) == {"editor", "schema", "results"}


async def test_every_list_takes_j_k_g_and_shift_g(tui_store: Any) -> None:
    """j/k move down/up and g/G jump to the first/last row, on the leaderboard (Textual's table) and on
    predictions (the fast grid); the leaderboard's grouping moved to `v` so `g` means the same in every list."""
    from kdtui.tui.app import KdtuiApp

    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=(120, 40)) as pilot:
        for key, table_id in (("f1", "#board"), ("f3", "#predictions")):
            await pilot.press(key)
            await settle(pilot)
            table: Any = app.screen.query_one(table_id)
            await until(pilot, lambda t=table: t.row_count >= 3, f"rows in {table_id}")
            table.focus()
            await pilot.pause()
            last = table.row_count - 1
            for press, row in (("G", last), ("g", 0), ("j", 1), ("j", 2), ("k", 1)):
                await pilot.press(press)
                await until(pilot, lambda t=table, r=row: t.cursor_coordinate.row == r, f"{press} on {table_id}")
        await pilot.press("f1")
        await settle(pilot)
        screen: Any = app.screen
        app.screen.query_one("#board").focus()
        grouped = screen.grouped
        await pilot.press("v")
        await until(pilot, lambda: screen.grouped != grouped, "v to group by strategy")


async def test_slash_filters_every_list_and_says_so(tui_store: Any) -> None:
    """`/` on the leaderboard and on Jobs keeps the rows containing the text, through refreshes, and the status
    line names the filter; an empty filter shows everything again. On F3 it moves to the filters."""
    from textual.widgets import DataTable, Select, Static

    from kdtui.jobs.graph import JobSpec
    from kdtui.tui.app import KdtuiApp

    tui_store.jobs.enqueue([JobSpec(name, name, "eval", {}, 0, "g") for name in ("alpha", "beta", "alphabet")])
    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        board = app.screen.query_one("#board", DataTable)
        assert board.row_count == 3
        await pilot.press("slash")
        await pilot.press(*"teach", "enter")
        await until(pilot, lambda: board.row_count == 1, "the leaderboard filtered")
        status = app.screen.query_one("#lb-status", Static)
        assert "/ 'teach': 1 of 3" in str(status.render())
        await pilot.press("r")  # a refresh keeps the filter
        await settle(pilot)
        assert board.row_count == 1
        await pilot.press("slash", "ctrl+u", "enter")  # emptied: every row again
        await until(pilot, lambda: board.row_count == 3, "every run again")
        assert "of 3" not in str(status.render())
        await pilot.press("f8")
        await settle(pilot)
        jobs = app.screen.query_one("#jobs", DataTable)
        await until(pilot, lambda: jobs.row_count == 3, "the jobs")
        await pilot.press("slash")
        await pilot.press(*"alpha", "enter")
        await until(pilot, lambda: jobs.row_count == 2, "the jobs filtered")
        assert [j.name for j in app.screen.jobs] == ["alpha", "alphabet"]  # type: ignore[attr-defined]
        await pilot.press("f3")
        await settle(pilot)
        await pilot.press("slash")
        await until(pilot, lambda: app.focused is app.screen.query_one("#f-run", Select), "the run filter")


async def test_every_focusable_control_is_reached_by_keyboard(tui_store: Any) -> None:
    """On every screen, shift+Tab (which leaves the SQL editor, where Tab indents) cycles through every
    focusable control: nothing needs a mouse."""
    from kdtui.tui.app import KdtuiApp

    app = KdtuiApp(tui_store.root)
    async with app.run_test(size=(120, 40)) as pilot:
        async for mode, screen in every_screen(pilot):
            chain = [w for w in screen.focus_chain if w.display]
            assert chain, mode
            reached = []
            for _ in range(len(chain) + 1):
                await pilot.press("shift+tab")
                await pilot.pause(0.02)
                reached.append(app.focused)
            missing = [w.id or type(w).__name__ for w in chain if w not in reached]
            assert not missing, (mode, missing)
