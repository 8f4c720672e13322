"""`kdtui serve` answers on loopback with the app's page."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.tui_store import build_store


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_binds_loopback_and_serves_the_page(tmp_path: Path) -> None:
    port = _free_port()
    store = build_store(tmp_path / "store").root
    proc = subprocess.Popen([sys.executable, "-m", "kdtui.cli", "serve", "--store", str(store),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, body, link = time.monotonic() + 60, "", None
        while time.monotonic() < deadline:
            try:
                assert proc.stderr is not None
                link = link or re.search(r"(http://127\.0\.0\.1:\d+/\?token=[\w-]+)", proc.stderr.readline())
                if link is None:
                    continue
                opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
                with opener.open(link.group(1), timeout=2) as response:  # the link's redirect sets the cookie
                    body = response.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert "kdtui" in body
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert link is not None and f"http://127.0.0.1:{port}/?token=" in link.group(1)
