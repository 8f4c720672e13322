"""What every store-backed screen shares: error messages, the app handle, reloads on change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.message import Message
from textual.screen import Screen

if TYPE_CHECKING:
    from kdtui.app import KdtuiApp


class StoreScreen(Screen[None]):
    """A screen that reads the store in workers and reloads when the store changes."""

    class Failed(Message):
        """A worker's store call failed; the message is already one line for the user."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    @property
    def kdtui(self) -> KdtuiApp:
        return self.app  # type: ignore[return-value]

    def reload(self) -> None:
        """Start fetching this screen's data (in a worker)."""

    def watch_store(self) -> None:
        self.watch(self.kdtui, "store_version", self._store_changed, init=False)

    def _store_changed(self, _version: int) -> None:
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def show_error(self, error: str) -> None:
        self.kdtui.report_error(error)

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self.show_error(message.error)
