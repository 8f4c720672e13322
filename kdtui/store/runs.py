"""The ``runs`` table: one row per evaluation, capture or distillation, with its lifecycle."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdtui.errors import KdtuiError
from kdtui.store.liveness import live_state, process_start

if TYPE_CHECKING:
    from kdtui.store.store import Store

STATUSES = ("running", "done", "failed", "interrupted")


@dataclass
class RunRecord:
    """One run as stored; ``state`` is its status, or "lost" when its process is gone."""

    id: int
    name: str
    kind: str
    status: str
    state: str
    config: dict[str, Any]
    identity: dict[str, Any] | None
    error: str | None
    pid: int | None
    host: str | None
    heartbeat: float | None
    warnings: dict[str, int]


RUN_COLUMNS = "id, name, kind, status, config, identity, error, pid, pid_start, host, heartbeat, warnings"


def _record(row: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=int(row["id"]), name=row["name"], kind=row["kind"], status=row["status"],
        state=live_state(row["status"], row["pid"], row["pid_start"], row["host"], row["heartbeat"]),
        config=dict(json.loads(row["config"] or "{}")),
        identity=json.loads(row["identity"]) if row["identity"] else None,
        error=row["error"], pid=row["pid"], host=row["host"], heartbeat=row["heartbeat"],
        warnings=dict(json.loads(row["warnings"])) if row["warnings"] else {},
    )


class RunsRepo:
    """Create, resume, beat and finish runs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, name: str) -> RunRecord | None:
        rows = self.store.query(f"SELECT {RUN_COLUMNS} FROM runs WHERE name = ?", [name]).records()
        return _record(rows[0]) if rows else None

    def all(self) -> list[RunRecord]:
        return [_record(r) for r in self.store.query(f"SELECT {RUN_COLUMNS} FROM runs ORDER BY id").records()]

    def names(self) -> list[str]:
        return [r["name"] for r in self.store.query("SELECT name FROM runs ORDER BY name").records()]

    def start(self, name: str, kind: str, config: dict[str, Any], identity: dict[str, Any] | None = None) -> int:
        """Mark run ``name`` running in this process (created if new); returns its id."""
        payload = json.dumps(config, sort_keys=True, default=str)
        ident = None if identity is None else json.dumps(identity, sort_keys=True, default=str)
        who = [os.getpid(), process_start(os.getpid()), socket.gethostname(), time.time()]
        with self.store.write() as con:
            row = con.execute("SELECT id, kind FROM runs WHERE name = ?", [name]).fetchone()
            if row is not None:
                run_id, stored_kind = int(row[0]), str(row[1])
                if stored_kind != kind:
                    raise KdtuiError(f"run {name!r} exists as a {stored_kind} run; choose another --run name")
                con.execute(
                    "UPDATE runs SET status = 'running', error = NULL, pid = ?, pid_start = ?, host = ?, "
                    "heartbeat = ?, identity = coalesce(?, identity), updated_at = current_timestamp WHERE id = ?",
                    [*who, ident, run_id])
                return run_id
            created = con.execute(
                "INSERT INTO runs (kind, name, config, status, pid, pid_start, host, heartbeat, identity) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?) RETURNING id",
                [kind, name, payload, *who, ident]).fetchone()
            assert created is not None
            return int(created[0])

    def heartbeat(self, run_id: int, timeout: float | None = None) -> None:
        with self.store.write(timeout=timeout) as con:
            con.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", [time.time(), run_id])

    def finish(self, run_id: int, status: str, error: str | None = None, timeout: float | None = None,
               warnings: dict[str, int] | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self.store.write(timeout=timeout) as con:
            con.execute("UPDATE runs SET status = ?, error = ?, heartbeat = ?, warnings = ?, "
                        "updated_at = current_timestamp WHERE id = ?",
                        [status, error, time.time(), json.dumps(warnings) if warnings else None, run_id])
