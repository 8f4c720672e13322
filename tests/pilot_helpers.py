"""Waiting for a Textual app's workers, messages and triage writes in Pilot tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def _busy(app: Any) -> bool:
    if any(worker.is_running for worker in app.workers):
        return True
    # triage writes in flight; a Training chart computed but not yet drawn
    return any(getattr(screen, "pending_writes", 0) or getattr(screen, "requested", 0) != getattr(screen, "applied", 0)
               for screen in app.screen_stack)


async def settle(pilot: Any, seconds: float = 0.3, timeout: float = 30.0) -> None:
    """Wait until no worker runs, no triage write is pending and no chart waits to be drawn, then let messages
    land."""
    deadline = time.monotonic() + timeout
    for _ in range(3):
        while _busy(pilot.app) and time.monotonic() < deadline:
            await pilot.pause(0.02)
        await pilot.pause(seconds / 3)


async def until(pilot: Any, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` between frames until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def open_triage(pilot: Any) -> Any:
    """Press F2 and wait for the triage queue; returns the TriageScreen."""
    from kdtui.tui.screens.triage import TriageScreen

    await pilot.press("f2")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, TriageScreen)
    return screen


async def every_screen(pilot: Any) -> Any:
    """Visit each screen by its F-key (kdtui/tui/keys.py), yielding (mode, screen) once it has loaded."""
    from kdtui.tui.keys import SCREEN_KEYS

    for key, mode in SCREEN_KEYS.items():
        await pilot.press(key)
        await settle(pilot)
        yield mode, pilot.app.screen
