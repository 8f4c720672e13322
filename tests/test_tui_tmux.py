"""End to end: the real `kdtui` in tmux, triaging three items by keyboard, then the DuckDB file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdtui.store import Store
from tests.tui_store import build_store

# A long end-to-end path (`make test-fast` leaves it out), and one that needs tmux.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _wait_for(session: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")


def _alive(session: str) -> bool:
    return subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0


def test_triage_three_items_in_tmux(tmp_path: Path) -> None:
    store = build_store(tmp_path / "store")
    session = f"kdtui-test-{tmp_path.name}"[:40]
    command = f"{sys.executable} -m kdtui.cli --store {store.root}"
    _tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", command)
    try:
        _wait_for(session, "sorted by acc")
        _tmux("send-keys", "-t", session, "F2")
        _wait_for(session, "0 done / 12 remaining")
        _tmux("send-keys", "-t", session, "1")
        _wait_for(session, "1 done / 11 remaining")
        _tmux("send-keys", "-t", session, "n")
        _wait_for(session, "2 done / 10 remaining")
        _tmux("send-keys", "-t", session, "e")
        _wait_for(session, "Answer value")
        _tmux("send-keys", "-t", session, "42", "Enter")
        _wait_for(session, "3 done / 9 remaining")
        _tmux("send-keys", "-t", session, "C-q")  # quitting waits for the triage writer: nothing is lost
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _alive(session):
            time.sleep(0.2)
        assert not _alive(session), "ctrl+q should quit the app"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    rows = Store(store.root).query("SELECT item_id, value FROM triage ORDER BY id").rows
    assert [r[1] for r in rows] == [7.0, None, 42.0]
    assert len({r[0] for r in rows}) == 3
