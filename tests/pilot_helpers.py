"""Waiting for a Textual app's workers and messages in Pilot tests."""

from __future__ import annotations

import time
from typing import Any


async def settle(pilot: Any, seconds: float = 0.3, timeout: float = 30.0) -> None:
    """Wait until no worker runs (cancelled ones included), then let messages land."""
    deadline = time.monotonic() + timeout
    for _ in range(3):
        while any(worker.is_running for worker in pilot.app.workers) and time.monotonic() < deadline:
            await pilot.pause(0.02)
        await pilot.pause(seconds / 3)
