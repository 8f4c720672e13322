"""Is a recorded process still the one that was recorded? The one definition of "lost", for runs and jobs.

A process is named by its pid and its start time (``/proc/PID/stat``): a pid alone may have been reused by
another process since. A record that is "running" is lost when, on this host, its process is gone, or when its
heartbeat is older than ``LOST_AFTER_S`` (another host, whose processes cannot be seen from here). The SQL view
``runs_live`` applies the heartbeat half, all SQL can see; ``live_state`` applies both; the worker daemon asks
``alive`` of the processes it started.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

# A run's seconds without a heartbeat before it shows as "lost" (runs beat every 10 s).
LOST_AFTER_S = 60


def process_start(pid: int) -> float | None:
    """The process's start time (clock ticks after boot, from /proc), or None where it is gone or /proc is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return float(stat[stat.rindex(")") + 2:].split()[19])


def alive(pid: int | None, start: float | None) -> bool:
    """Whether process ``pid`` lives and is the one that started at ``start`` (None: any start)."""
    if pid is None:
        return False
    if not Path("/proc/self/stat").exists():  # no /proc (macOS): the pid alone, as well as can be told
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    now = process_start(pid)
    if now is None or (start is not None and now != start):
        return False
    try:  # a zombie (dead, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def live_state(status: str, pid: int | None, pid_start: float | None, host: str | None,
               heartbeat: float | None, now: float | None = None) -> str:
    """``status``, or "lost" for a running record whose process is gone (this host) or silent too long."""
    if status != "running":
        return status
    if pid is not None and host == socket.gethostname() and not alive(pid, pid_start):
        return "lost"
    if heartbeat is None or (time.time() if now is None else now) - heartbeat > LOST_AFTER_S:
        return "lost"
    return status

