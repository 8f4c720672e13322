"""Triage writes, one at a time, in the order the keys were pressed.

A decision is recorded in the screen's own stack the moment its key is pressed;
this writer then appends it (or an undo) to the store's triage log on a single
thread, so an undo can never overtake the decision it undoes.  Each finished
operation is reported back with its error, if any, so the screen can put a
decision that failed back in the queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kdtui.errors import KdtuiError, log_crash
from kdtui.store import Store


@dataclass(eq=False)
class Decision:
    """One decision of this session, known locally before the store has it."""

    run_id: int
    item_id: str
    value: float | None
    previous: tuple[bool, float | None]  # (triaged, final value) shown before the decision
    decision_id: int | None = None  # set once written
    failed: bool = False


@dataclass(eq=False)
class Op:
    """A decision to write, or an undo of one (``decision``) or of whatever is in force for an item."""

    kind: str  # "decide" or "undo"
    run_id: int
    item_id: str
    decision: Decision | None = None
    restored: float | None = field(default=None)  # the value in force after an undo


Done = Callable[[Op, str | None], None]


class SerialWriter:
    """A thread that performs :class:`Op` s in submission order; ``done(op, error)`` is called after each."""

    def __init__(self, store: Store, done: Done) -> None:
        self.store, self.done = store, done
        self.ops: queue.Queue[Op | None] = queue.Queue()
        self._pending = 0
        self.submitted = 0  # operations ever submitted: a read begun before the last one may not show it
        self._lock = threading.Lock()
        # Not a daemon: a decision made just before quitting is still written.
        self.thread = threading.Thread(target=self._loop, name="triage-writer", daemon=False)
        self.thread.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def submit(self, op: Op) -> None:
        with self._lock:
            self._pending += 1
            self.submitted += 1
        self.ops.put(op)

    def close(self, timeout: float = 30.0) -> None:
        """Finish what was submitted, then stop."""
        self.ops.put(None)
        self.thread.join(timeout)

    def _loop(self) -> None:
        while (op := self.ops.get()) is not None:
            error = None
            try:
                self._perform(op)
            except KdtuiError as exc:
                error = str(exc)
            except Exception as exc:  # a bug: one line for the screen, the traceback in crash.log
                error = f"internal error: {log_crash(exc)}"
            with self._lock:
                self._pending -= 1
            self.done(op, error)

    def _perform(self, op: Op) -> None:
        triage = self.store.triage
        if op.kind == "decide":
            assert op.decision is not None
            op.decision.decision_id = triage.decide(op.run_id, op.item_id, op.decision.value)
            return
        if op.decision is not None:  # an undo of this session's decision
            if op.decision.decision_id is None:
                return  # its write failed: nothing reached the store to undo
            op.restored = triage.undo(op.decision.decision_id)
            return
        in_force = triage.in_force(op.run_id, op.item_id)
        if in_force is None:
            raise KdtuiError(f"{op.item_id} has no decision to undo")
        op.restored = triage.undo(in_force)
