"""What every store-backed screen shares: fetching in a worker, errors as notifications, reloads.

A screen reads the store with :meth:`StoreScreen.fetch`: the call runs in a
thread worker, and its result comes back by message to a handler on the UI
thread (a ``KdtuiError`` becomes a notification).  When the store changes, only
the visible screen reloads; hidden ones are marked stale and reload when shown.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from textual import on
from textual.message import Message
from textual.screen import Screen
from textual.worker import get_current_worker

from kdtui.errors import KdtuiError, log_crash

if TYPE_CHECKING:
    from kdtui.tui.app import KdtuiApp

T = TypeVar("T")


class StoreScreen(Screen[None]):
    """A screen that reads the store in workers and reloads when the store changes while it is shown."""

    class Failed(Message):
        """A worker's store call failed; the message is already one line for the user."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class Fetched(Message):
        """A worker's result, to be handed to ``done`` on the UI thread."""

        def __init__(self, result: Any, done: Callable[[Any], Awaitable[None] | None]) -> None:
            super().__init__()
            self.result, self.done = result, done

    def __init__(self) -> None:
        super().__init__()
        self.stale = False
        self.loads = 0  # how many reloads the store's changes caused (tests read it)

    @property
    def kdtui(self) -> KdtuiApp:
        return self.app  # type: ignore[return-value]

    def fetch(self, call: Callable[[], T], done: Callable[[T], Awaitable[None] | None], *, group: str,
              exclusive: bool = True, error_prefix: str = "") -> None:
        """Run ``call`` (a blocking store read) in a worker; ``done(result)`` runs on the UI thread."""

        def work() -> None:
            try:
                result = call()
            except KdtuiError as exc:
                self.post_message(self.Failed(f"{error_prefix}{exc}"))
                return
            except Exception as exc:  # a bug: say so in one line, keep the traceback
                self.post_message(self.Failed(f"{error_prefix}internal error: {log_crash(exc)}"))
                return
            if not get_current_worker().is_cancelled:  # a newer fetch of the same group replaced this one
                self.post_message(self.Fetched(result, done))

        self.run_worker(work, thread=True, group=group, exclusive=exclusive, exit_on_error=False)

    @on(Fetched)
    async def _fetched(self, message: Fetched) -> None:
        outcome = message.done(message.result)
        if inspect.isawaitable(outcome):
            await outcome

    def reload(self) -> None:
        """Start fetching this screen's data (in a worker)."""

    def watch_store(self) -> None:
        self.watch(self.kdtui, "store_version", self._store_changed, init=False)

    def _store_changed(self, _version: int) -> None:
        if self.is_current:
            self.loads += 1
            self.reload()
        else:
            self.stale = True  # reloaded when shown again, not while nobody looks

    def on_screen_resume(self) -> None:
        if self.stale:
            self.stale = False
            self.loads += 1
            self.reload()

    def show_error(self, error: str) -> None:
        self.kdtui.report_error(error)

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self.show_error(message.error)


class RowFilter:
    """`/` on a list screen: keep the rows whose text contains what was typed (any case); empty shows all.

    The screen keeps its rows as read and calls :meth:`shown` when it draws them, so the filter holds through
    every refresh; :meth:`filter_note` is the status line's word on it, so a filter is never on unseen.
    """

    row_filter: str = ""

    def action_filter(self) -> None:
        from kdtui.tui.screens.dialogs import InputScreen

        def chosen(value: str | None) -> None:
            if value is not None:
                self.row_filter = value.strip()
                self.refilter()

        self.app.push_screen(  # type: ignore[attr-defined]
            InputScreen("Show rows containing (empty: all rows)", value=self.row_filter), chosen)

    def shown(self, rows: list[T], text: Callable[[T], str]) -> list[T]:
        needle = self.row_filter.lower()
        return [r for r in rows if needle in text(r).lower()] if needle else rows

    def filter_note(self, shown: int, total: int) -> str:
        return f" · / {self.row_filter!r}: {shown} of {total}" if self.row_filter else ""

    def refilter(self) -> None:
        """Draw the rows again with the filter (the screen's own)."""
