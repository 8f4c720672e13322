"""A warm interpreter the worker forks CPU jobs from: torch, transformers and the recipes imported once.

A job process spends ~3 s of CPU importing torch and transformers before it does anything: on a laptop or CI
box with two cores, running the demo's nine jobs or a test suite's experiments, that is most of the cost of a
short job. The worker starts one zygote (``python -m kdtui.jobs.zygote``); the zygote imports everything a job
needs, says ``ready``, and then forks one child per request, which runs ``kdtui job exec …`` exactly as a fresh
process would: in its own process group (the worker signals the group), its output in the job's log, its own
environment and math threads.

Only jobs without GPUs are forked. CUDA cannot be used in a child forked from a process that initialised it, and
a GPU job's import is small beside its run, so it starts its own interpreter as before. The zygote never runs
anything itself and never starts a thread (a fork copies only the calling thread).

Protocol, one JSON object per line. The worker writes ``{"id", "argv", "env", "log"}``; the zygote answers
``{"id", "pid"}`` (or ``{"id", "error"}``), and ``{"ended": pid, "code": exit code}`` when a child exits. The
zygote leaves when its stdin closes (the worker stopped or died); children already running keep running.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

from kdtui.config.names import FORKED_JOB_NAME

# What a job imports before its first step: a child finds these loaded.
PRELOAD = ("torch", "transformers", "peft", "accelerate", "safetensors", "kdtui.cli.main", "kdtui.jobs.runner",
           "kdtui.recipes.capture", "kdtui.recipes.distill", "kdtui.recipes.evaluate")
JOB_COMM = FORKED_JOB_NAME.encode()


def _name_process(name: bytes) -> None:
    """Linux: the process's short name (``ps -o comm``, describe_pid), so a forked job is told from the zygote."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become ``kdtui job exec`` with the request's log, environment and arguments."""
    code = 1
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.set_wakeup_fd(-1)
        os.setpgid(0, 0)  # its own process group (the zygote sets it too, so it holds before the reply)
        _name_process(JOB_COMM)
        devnull = os.open(os.devnull, os.O_RDONLY)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)
        sys.stdout.reconfigure(write_through=True)  # type: ignore[union-attr]  # as PYTHONUNBUFFERED=1
        sys.stderr.reconfigure(write_through=True)  # type: ignore[union-attr]
        os.environ.clear()
        os.environ.update(request["env"])
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads and threads.isdigit():
            import torch

            torch.set_num_threads(int(threads))  # OpenMP read its variable when the zygote imported torch
        import random

        random.seed()  # a fresh state, not the zygote's copy
        import runpy

        sys.argv = ["kdtui", *request["argv"]]
        runpy.run_module("kdtui.cli", run_name="__main__", alter_sys=True)  # as `python -m kdtui.cli ARGV`
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            import atexit

            atexit._run_exitfuncs()  # as a fresh process ends: its libraries' exit hooks (loader workers, logs)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _send(message: dict[str, Any]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def serve() -> None:
    """Import, say ready, then fork a child per request until stdin closes."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector through the wakeup fd
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    _send({"ready": os.getpid()})
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.data == "child":
                os.read(wake_r, 4096)
                _reap()
                continue
            chunk = os.read(0, 65536)
            if not chunk:  # the worker is gone: leave (running children go on; a new worker adopts them)
                _reap()
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                _fork(json.loads(line))


def _fork(request: dict[str, Any]) -> None:
    try:
        pid = os.fork()
    except OSError as exc:
        _send({"id": request["id"], "error": str(exc)})
        return
    if pid == 0:
        _child(request)
    # The worker stops a job (and its dataloader children) by process group: the group exists before the worker
    # hears the pid, whichever of the two setpgid calls runs first. (The zygote's own session, started apart from
    # any terminal, is theirs too.)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    _send({"id": request["id"], "pid": pid})


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send({"ended": pid, "code": os.waitstatus_to_exitcode(status)})


class Zygote:
    """The worker's side: starts the zygote, asks it for children, and hears their exit codes.

    Any trouble (it will not start, it died, it did not answer) is an :class:`OSError` from :meth:`spawn`, and
    the executor starts that job as a fresh process instead.
    """

    READY_S = 300.0  # importing torch on a loaded two-core machine can take a minute
    REPLY_S = 30.0

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.exits: dict[int, int] = {}  # pid -> exit code, for children that ended
        self._replies: dict[int, dict[str, Any]] = {}
        self._ready = threading.Event()
        self._changed = threading.Condition()
        self._next_id = 0

    def start(self) -> None:
        """Start importing now (it takes seconds); :meth:`spawn` waits for it to be ready."""
        if self.running():
            return
        self._ready.clear()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "kdtui.jobs.zygote"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log, env=self.env,
                                            start_new_session=True)
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), name="kdtui-zygote", daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            message = json.loads(line)
            with self._changed:
                if "ready" in message:
                    self._ready.set()
                elif "ended" in message:
                    self.exits[int(message["ended"])] = int(message["code"])
                else:
                    self._replies[int(message["id"])] = message
                self._changed.notify_all()
        with self._changed:  # it is gone: nobody waits on it any longer
            self._ready.set()
            self._changed.notify_all()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self, argv: list[str], env: dict[str, str], log: Path) -> int:
        """The pid of a child running ``kdtui ARGV`` with ``env``, writing to ``log``."""
        self.start()
        process = self.process
        assert process is not None and process.stdin is not None
        if not self._ready.wait(self.READY_S) or process.poll() is not None:
            raise OSError(f"the job zygote is not running (see {self.log})")
        with self._changed:
            self._next_id += 1
            ident = self._next_id
        try:
            process.stdin.write((json.dumps({"id": ident, "argv": argv, "env": env, "log": str(log)}) + "\n").encode())
            process.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise OSError(f"the job zygote is gone ({exc})") from None
        with self._changed:
            if not self._changed.wait_for(lambda: ident in self._replies or process.poll() is not None,
                                          self.REPLY_S) or ident not in self._replies:
                raise OSError("the job zygote did not answer")
            reply = self._replies.pop(ident)
        if "pid" not in reply:
            raise OSError(f"the job zygote could not fork: {reply.get('error')}")
        return int(reply["pid"])

    def close(self) -> None:
        """Let it leave (children that still run keep running); waits a moment for it."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    serve()
