"""The run lifecycle every recipe runs inside: its runs row, heartbeat, stop flag and writers.

    with run_lifecycle(store, cfg, name=..., kind="eval", logs=logs) as run:
        for batch in ...:
            if run.should_stop(): break
            run.predictions.add(rows)

On the way out the context decides the status — ``done``, ``interrupted`` (Ctrl-C,
SIGTERM, should_stop) or ``failed`` with the error's first line — flushes the
writers, and records it.  None of that can hide the original error: a status that
cannot be written goes to the spill file beside any unsaved rows, and a process
that dies without a word stops beating and shows as "lost".
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from kdtui.config.base import RecipeConfig, resume_changes
from kdtui.errors import KdtuiError, first_line
from kdtui.store import StoreAccess
from kdtui.store.writer import SPILL_PENDING, PredictionWriter, append_spill, spill_path

HEARTBEAT_S = 10.0
FINISH_TIMEOUT_S = 30.0


class RunContext:
    """What a recipe's loop sees of its run."""

    def __init__(self, store: StoreAccess, run_id: int, name: str, logs: Path,
                 external_stop: Callable[[], bool] | None) -> None:
        self.store, self.run_id, self.name, self.logs = store, run_id, name, logs
        self.predictions = PredictionWriter(store, run_id, name, logs)
        self._external_stop = external_stop
        self.stop_requested = threading.Event()
        self.interrupted = threading.Event()  # Ctrl-C arrived, even if a library swallowed the exception
        self.stopped = False  # the loop ended early because it was asked to
        self.warnings: dict[str, int] = {}

    def warn(self, key: str, count: int = 1) -> None:
        """Count something the run's reader should know (kept in runs.warnings)."""
        if count:
            self.warnings[key] = self.warnings.get(key, 0) + count

    def should_stop(self) -> bool:
        """True once SIGTERM or Ctrl-C arrived or the caller asked; the loop then ends at the next batch."""
        if self.stop_requested.is_set() or self.interrupted.is_set() or \
                (self._external_stop is not None and self._external_stop()):
            self.stopped = True
        return self.stopped


def check_identity(store: StoreAccess, name: str, kind: str, cfg: RecipeConfig) -> None:
    """Refuse to resume run ``name`` with a setup that measures something else."""
    previous = store.runs.get(name)
    if previous is None:
        return
    if previous.kind != kind:
        raise KdtuiError(f"run {name!r} exists as a {previous.kind} run; choose another --run name")
    old = previous.identity
    if old is None:  # a run from before identities: compare the fields its config has
        old = {k: previous.config.get(k) for k in cfg.identity() if k in previous.config}
    changes = resume_changes(old, cfg)
    if changes:
        raise KdtuiError(f"run {name!r} exists with a different setup ({', '.join(changes)}); "
                         "choose another --run name to compare")


def _beat(ctx: RunContext, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        try:
            ctx.store.runs.heartbeat(ctx.run_id, timeout=HEARTBEAT_S / 2)
        except Exception:  # a busy store skips a beat; "lost" needs six missed ones
            continue


@contextmanager
def _stop_signals(ctx: RunContext) -> Iterator[None]:
    """SIGTERM asks the loop to stop after its batch; Ctrl-C interrupts at once and is also remembered.

    DuckDB checks for signals inside its calls and can swallow the KeyboardInterrupt that Python's own
    handler raises there, so the run would go on; the flag makes the loop stop at the next batch anyway.
    Main thread only (elsewhere the caller stops the loop); an ignored SIGINT (a background job) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        ctx.stop_requested.set()

    def on_int(_signum: int, _frame: FrameType | None) -> None:
        ctx.interrupted.set()
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, on_term)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if previous_int is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous_int)


@contextmanager
def run_lifecycle(store: StoreAccess, cfg: RecipeConfig, *, name: str, kind: str, logs: Path,
                  should_stop: Callable[[], bool] | None = None) -> Iterator[RunContext]:
    """Run a recipe's loop as run ``name`` of ``kind``; see the module docstring."""
    check_identity(store, name, kind, cfg)
    config: dict[str, Any] = cfg.model_dump()
    run_id = store.runs.start(name, kind, config, cfg.identity())
    ctx = RunContext(store, run_id, name, logs, should_stop)
    beating = threading.Event()
    beat = threading.Thread(target=_beat, args=(ctx, beating), name=f"heartbeat-{run_id}", daemon=True)
    beat.start()
    status, error, in_flight = "done", None, False
    try:
        with _stop_signals(ctx):
            yield ctx
        if ctx.interrupted.is_set():
            raise KeyboardInterrupt  # the loop stopped for a Ctrl-C something on the way swallowed
        if ctx.stopped:
            status, error = "interrupted", "stopped on request"
    except KeyboardInterrupt:
        status, error, in_flight = "interrupted", "interrupted by the user", True
        raise
    except BaseException as exc:
        status, error, in_flight = "failed", first_line(exc)[:500], True
        raise
    finally:
        beating.set()
        beat.join()  # a heartbeat still inside DuckDB at interpreter exit aborts the process
        spill = ctx.predictions.close()
        if spill is not None and status == "done":
            status, error = "interrupted", f"{spill}: {SPILL_PENDING}"
        try:
            store.runs.finish(run_id, status, error, timeout=FINISH_TIMEOUT_S, warnings=ctx.warnings)
        except Exception:
            # The store is out of reach: the status waits beside the rows for `kdtui store recover`.
            spill = spill or spill_path(logs, name)
            append_spill(spill, [{"run": name, "status": status, "error": error, "warnings": ctx.warnings}])
        if spill is not None and not in_flight:  # never replace the error already on its way out
            raise KdtuiError(f"the store stayed busy ({ctx.predictions.last_error or 'locked'}); unsaved results "
                             f"are in {spill}: run `kdtui store recover` when the store is free")
