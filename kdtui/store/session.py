"""Short locked sessions on the store's DuckDB file, and what to say while waiting for one.

Concurrency design
------------------
DuckDB takes an OS lock on its file: while one process has it open read-write, no
other process can open it at all; while any process (an outside ``duckdb`` client,
say) has it open read-only, nobody can open it read-write.  kdtui therefore never
keeps the file open.  Every access is a short session guarded by a cross-process
lock on a sibling file (``kdtui.duckdb.lock``, ``fcntl.flock``):

* writers take the lock exclusively, open read-write, run one transaction, close;
* readers take it shared, open read-only, query, close (many readers at once);
* a writer first passes an exclusive gate, so a stream of readers cannot starve it.

Outside clients do not know our lock, so DuckDB's own "Conflicting lock" is also
"busy", never fatal, and so is a lock file deleted under us (the inode check in
:func:`_flock`).  Whoever waits longer than :data:`REPORT_AFTER` seconds is told
who holds the store (the PID from ``/proc/locks`` or from DuckDB's message, with
its command line, and whether it is stopped), and again every
:data:`REPORT_EVERY` seconds.  After ``busy_timeout`` seconds :class:`StoreBusy`
is raised; writers of results keep their rows (see ``kdtui.store.writer``).
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from kdtui.config.layout import DB_NAME, StoreLayout
from kdtui.config.limits import SQL_TEMP_LIMIT, sql_memory_limit
from kdtui.config.names import FORKED_JOB_NAME
from kdtui.errors import KdtuiError, first_line

# A new store is written in DuckDB's 1.0 storage format, so every DuckDB client people have (the duckdb CLI
# 1.x on PyPI, DBeaver, R, older Python) can open it: "anyone can query it with SQL". A store created by an
# earlier kdtui keeps the format it was made with (DuckDB >= 2.0 only; `kdtui store` says which).
STORAGE_VERSION = "v1.0.0"

# Every read-only session runs with these settings, locked so SQL cannot undo them:
# no file system access beyond the store itself (COPY, ATTACH, read_csv, glob,
# import_database, log_query_path...), and no extension installed or loaded on the fly.
# Memory and scratch disk are capped, so a person's query cannot starve the jobs on the server.
# See docs/security.md. One config for all readers of a process, because DuckDB refuses
# a second connection to a file with a different configuration.
READ_CONFIG: dict[str, str | int | float | list[str]] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "memory_limit": sql_memory_limit(),
    "max_temp_directory_size": SQL_TEMP_LIMIT,
    "lock_configuration": True,
}
# `kdtui sql --allow-files` on a person's own terminal: local files readable, still locked.
READ_CONFIG_WITH_FILES: dict[str, str | int | float | list[str]] = READ_CONFIG | {"enable_external_access": True}
REPORT_AFTER = 3.0
REPORT_EVERY = 15.0
WaitReporter = Callable[[str], None]


class StoreBusy(KdtuiError):
    """The store stayed locked by another process for longer than the wait allowed."""


class NotAStore(KdtuiError):
    """The path is not a kdtui store (missing, a plain file, or a foreign DuckDB file)."""


def print_wait(message: str) -> None:
    """The default wait reporter: one line on stderr."""
    print(f"kdtui: {message}", file=sys.stderr, flush=True)


def lock_holders(path: Path) -> list[int]:
    """PIDs holding a lock on ``path`` (kdtui's flocks, DuckDB's POSIX locks) per ``/proc/locks`` (Linux);
    [] elsewhere."""
    try:
        inode = path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = []
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF" (a "->" in parts[1] marks a waiter;
        # open-file-description locks show pid -1)
        if len(parts) >= 6 and parts[1] in ("FLOCK", "POSIX") and parts[5].rsplit(":", 1)[-1] == str(inode):
            pids.append(int(parts[4]))
    return [p for p in dict.fromkeys(pids) if p > 0 and p != os.getpid()]


def store_holders(db: Path, lock: Path) -> str | None:
    """Who keeps the store busy, described: whoever has the DuckDB file itself open (DuckDB's own lock: an
    outside client, or a kdtui process inside its session) before those that hold only kdtui's lock, which
    may themselves be waiting for the first kind."""
    pids = lock_holders(db) or lock_holders(lock)
    return ", ".join(describe_pid(p) for p in pids) or None


def describe_pid(pid: int) -> str:
    """``pid 123 (kdtui eval --model m), stopped`` from /proc when it can be read."""
    text = f"pid {pid}"
    try:
        command = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                           .split())
        if Path(f"/proc/{pid}/comm").read_text().strip() == FORKED_JOB_NAME:
            command = "a kdtui job, forked by the worker"  # its command line is the zygote's
        if command:
            text += f" ({command[:80]})"
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            text += f", stopped: resume it with kill -CONT {pid}"
    except (OSError, IndexError):
        pass
    return text


_DUCKDB_PID = re.compile(r"\(PID (\d+)\)")
_BUSY_MARKERS = ("Conflicting lock", "Could not set lock", "different configuration than existing connections")


def _is_busy(exc: duckdb.Error) -> bool:
    return any(marker in str(exc) for marker in _BUSY_MARKERS)


class Waiter:
    """Backoff and reporting for one wait: who holds the store, told once and then now and then."""

    def __init__(self, path: Path, role: str, timeout: float, report: WaitReporter) -> None:
        self.path, self.role, self.report = path, role, report
        self.start = time.monotonic()
        self.deadline = self.start + timeout
        self.timeout = timeout
        self.delay = 0.001
        self.next_report = self.start + REPORT_AFTER
        self.holder = "another process"

    def sleep(self, holder: Callable[[], str | None]) -> None:
        """Wait a little, or raise :class:`StoreBusy` when the time is up.

        ``holder`` names who holds the store; it reads /proc, so it is asked only when there is
        something to say, not on every poll.
        """
        now = time.monotonic()
        if now >= self.deadline or now >= self.next_report:
            self.holder = holder() or self.holder
        if now >= self.deadline:
            raise StoreBusy(f"the store {self.path} stayed locked for {self.timeout:.0f}s by {self.holder}; "
                            "let that process finish (or stop it), then retry")
        if now >= self.next_report:
            self.report(f"waiting to {self.role} the store {self.path}: held by {self.holder} "
                        f"({now - self.start:.0f}s so far)")
            self.next_report = now + REPORT_EVERY
        time.sleep(self.delay * (0.5 + random.random()))
        self.delay = min(self.delay * 2, 0.05)


def _flock(path: Path, exclusive: bool, waiter: Waiter, holders: Callable[[], str | None]) -> int:
    """An fd of ``path`` holding a flock; re-opened if the file was deleted or replaced meanwhile.

    While waiting, ``holders`` names who keeps the store (:func:`store_holders`): whoever holds the
    gate is only another waiter.
    """
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            waiter.sleep(holders)
            continue
        try:
            same = os.fstat(fd).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # our lock is on a deleted inode: others would not see it


class Sessions:
    """Locked DuckDB sessions on ``root/kdtui.duckdb``."""

    def __init__(self, root: Path, busy_timeout: float, report: WaitReporter | None = None,
                 allow_files: bool = False) -> None:
        self.root = root
        self.read_config = READ_CONFIG_WITH_FILES if allow_files else READ_CONFIG
        self.path = StoreLayout(root).db
        self.lock_path = self.path.with_name(DB_NAME + ".lock")
        self.gate_path = self.path.with_name(DB_NAME + ".gate")
        self.busy_timeout = busy_timeout
        self.report = report or print_wait

    def check_folder(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise NotAStore(f"--store {self.root} is a file; point --store at the folder that holds {DB_NAME}")

    @contextmanager
    def session(self, write: bool, timeout: float | None = None,
                purpose: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """An open connection under the store lock (read-write and exclusive, or read-only and shared).

        ``purpose`` ("read" or "write") is what a wait message says the caller is waiting to do.
        """
        self.check_folder()
        self.root.mkdir(parents=True, exist_ok=True)
        waiter = Waiter(self.path, purpose or ("write" if write else "read"),
                        self.busy_timeout if timeout is None else timeout, self.report)
        def holders() -> str | None:
            return store_holders(self.path, self.lock_path)

        gate = _flock(self.gate_path, write, waiter, holders)
        try:
            lock = _flock(self.lock_path, write, waiter, holders)
        finally:
            os.close(gate)  # closing releases the flock
        try:
            con = self._connect(write, waiter)
            try:
                yield con
            finally:
                con.close()
        except duckdb.InterruptException:
            # Ctrl-C that reached DuckDB first comes back as its own error, which writers keep going
            # through: it is still Ctrl-C. (A console's own cancel is turned into "query cancelled" inside.)
            raise KeyboardInterrupt from None
        finally:
            os.close(lock)

    def _connect(self, write: bool, waiter: Waiter) -> duckdb.DuckDBPyConnection:
        while True:
            try:
                if write:
                    return duckdb.connect(str(self.path), config={"storage_compatibility_version": STORAGE_VERSION})
                return duckdb.connect(str(self.path), read_only=True, config=dict(self.read_config))
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_busy(exc):
                    raise KdtuiError(f"cannot open store {self.path}: {first_line(exc)}; "
                                     "check the file, or point --store at another folder") from None
                match = _DUCKDB_PID.search(str(exc))

                def holder(match: re.Match[str] | None = match) -> str:
                    who = describe_pid(int(match.group(1))) if match else "a DuckDB client in this process"
                    return f"{who} (an outside DuckDB client: close it to let kdtui in)"

                waiter.sleep(holder)
            except duckdb.InterruptException:
                raise KeyboardInterrupt from None  # Ctrl-C during the open: not a damaged store
            except duckdb.Error as exc:
                raise NotAStore(f"{self.path} is not a usable kdtui store ({first_line(exc)}); "
                                "point --store at another folder") from None
