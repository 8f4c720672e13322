"""Read models: typed rows out of the store for the CLI, the TUI and scripts.

Every row is built from column names (``_build``), never positions, so a column
added to a view cannot shift a field.  The leaderboard has one path, used by
``kdtui leaderboard`` and the TUI alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kdtui.config.names import CAPTURE_RUN_PREFIX
from kdtui.stats import mcnemar_exact
from kdtui.store.liveness import live_state
from kdtui.store.runs import RunRecord
from kdtui.store.store import QueryResult, Store

T = TypeVar("T")


def _build(cls: type[T], result: QueryResult | list[dict[str, Any]]) -> list[T]:
    """Dataclass rows from a result (or its records) whose column names are the dataclass's field names."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    records = result.records() if isinstance(result, QueryResult) else result
    return [cls(**{k: v for k, v in record.items() if k in names}) for record in records]


# ---------------------------------------------------------------------- leaderboard

@dataclass
class LeaderRow:
    """One run on the leaderboard, with its comparison to the baseline run.

    ``accuracy`` counts pending reviews at their automatic value, so while ``pending`` > 0 it
    is provisional: the truth lies between ``acc_if_pending_wrong`` and ``acc_if_pending_right``.
    In the settled view, ``n``, ``correct``, ``accuracy`` and the interval are over settled items only.
    """

    run_id: int
    name: str
    kind: str
    status: str
    strategy: str
    prompt: str
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    pending: int
    acc_if_pending_wrong: float
    acc_if_pending_right: float
    no_answer_share: float = 0.0  # settled items with no answer: how often the model never committed
    settled: bool = False
    delta: float | None = None
    p_value: float | None = None
    paired: int = 0  # items both runs settled, on which McNemar was computed

    @property
    def provisional(self) -> bool:
        return self.pending > 0 and not self.settled


def leaderboard(store: Store, baseline: int | None = None, settled: bool = False) -> list[LeaderRow]:
    """Every evaluated run, best first; with ``baseline``, accuracy differences and McNemar p-values.

    ``settled``: accuracy and interval over the items no review is pending on. McNemar always
    pairs settled items only (a pending item has no settled answer to compare), by question.
    """
    counts = ("n_settled AS n, correct_settled AS correct, coalesce(settled_accuracy, 0) AS accuracy, "
              "coalesce(settled_ci_low, 0) AS ci_low, coalesce(settled_ci_high, 1) AS ci_high" if settled else
              "n, correct, accuracy, ci_low, ci_high")
    rows = _build(LeaderRow, store.query(
        "SELECT run_id, name, kind, status, coalesce(strategy, '') AS strategy, coalesce(prompt, '') AS prompt, "
        f"{counts}, pending_review AS pending, acc_if_pending_wrong, acc_if_pending_right, no_answer_share, "
        "? AS settled "
        "FROM leaderboard ORDER BY accuracy DESC, name", [settled]))
    if baseline is None or baseline not in {r.run_id for r in rows}:
        return rows
    pairs = store.query(
        "SELECT b.run_id, count(*) AS paired, "
        "count(*) FILTER (WHERE b.final_correct AND NOT a.final_correct) AS only_b, "
        "count(*) FILTER (WHERE a.final_correct AND NOT b.final_correct) AS only_a, "
        "avg(b.final_correct::INT) - avg(a.final_correct::INT) AS delta "
        "FROM predictions_final a JOIN predictions_final b USING (item_key) "
        "WHERE a.run_id = ? AND b.run_id <> ? AND NOT a.pending_review AND NOT b.pending_review "
        "GROUP BY b.run_id", [baseline, baseline]).records()
    by_run = {r["run_id"]: r for r in pairs}
    for row in rows:
        if row.run_id == baseline:
            row.delta, row.p_value, row.paired = 0.0, 1.0, row.n - (0 if settled else row.pending)
        elif row.run_id in by_run:
            pair = by_run[row.run_id]
            row.delta, row.paired = pair["delta"], pair["paired"]
            row.p_value = mcnemar_exact(pair["only_a"], pair["only_b"])
    return rows


# ---------------------------------------------------------------------------- triage

@dataclass
class TriageItem:
    """A prediction waiting for (or given) a human decision."""

    run_id: int
    run_name: str
    item_id: str
    question: str
    response: str
    value: float | None
    final_value: float | None
    gold: float | None
    rule: str
    candidates: list[float] = field(default_factory=list)
    triaged: bool = False
    kind: str = ""  # what extraction read: answer, no_answer, conflicting, unclear
    reason: str = ""  # why, in a few words


TRIAGE_SELECT = ("SELECT p.run_id, r.name AS run_name, p.item_id, coalesce(p.question, '') AS question, "
                 "coalesce(p.response, '') AS response, p.value, p.final_value, p.gold, "
                 "coalesce(p.rule, '') AS rule, coalesce(p.candidates, []) AS candidates, p.triaged, "
                 "coalesce(p.kind, '') AS kind, coalesce(p.reason, '') AS reason "
                 "FROM predictions_final p JOIN runs r ON r.id = p.run_id")


def triage_queue(store: Store, run: str | None = None, include_done: bool = False) -> list[TriageItem]:
    """Predictions that need review (all of them with ``include_done``), in a stable order."""
    where = ["p.needs_review"] if include_done else ["p.pending_review"]
    params: list[Any] = []
    if run:
        where.append("r.name = ?")
        params.append(run)
    return _build(TriageItem, store.query(
        f"{TRIAGE_SELECT} WHERE {' AND '.join(where)} ORDER BY p.run_id, p.item_id", params))


def triage_item(store: Store, run_id: int, item_id: str) -> TriageItem | None:
    items = _build(TriageItem, store.query(f"{TRIAGE_SELECT} WHERE p.run_id = ? AND p.item_id = ?",
                                           [run_id, item_id]))
    return items[0] if items else None


@dataclass
class TriageEntry:
    """One row of the append-only triage log: a decision, or the undo of one."""

    decision_id: int
    decided_at: Any  # a datetime
    run_id: int
    run_name: str
    item_id: str
    value: float | None  # the decision's answer (None: no answer); for an undo, None
    previous_value: float | None  # what was in force before this row
    is_undo: bool
    undoes: int | None
    in_force: bool  # this decision is the one in force for its item now


def triage_history(store: Store, run: str | None = None, limit: int = 1000) -> list[TriageEntry]:
    """The triage log, newest first: every decision and undo, and which decision is in force per item."""
    where, params = ("WHERE r.name = ?", [run]) if run else ("", [])
    return _build(TriageEntry, store.query(
        "SELECT t.id AS decision_id, t.decided_at, t.run_id, r.name AS run_name, t.item_id, t.value, "
        "t.previous_value, t.undone AS is_undo, t.undoes, e.decision_id IS NOT NULL AS in_force "
        "FROM triage t JOIN runs r ON r.id = t.run_id "
        "LEFT JOIN triage_effective e ON e.decision_id = t.id "
        f"{where} ORDER BY t.id DESC LIMIT ?", [*params, limit]))


# ------------------------------------------------------------------------ predictions

@dataclass
class PredictionFilter:
    run: str | None = None
    correct: bool | None = None
    rule: str | None = None
    needs_review: bool | None = None


@dataclass
class PredictionRow:
    """One line of the predictions browser."""

    run: str
    item: str
    gold: float | None
    answer: float | None
    correct: bool
    rule: str | None
    review: bool
    tokens: int | None
    response: str
    run_id: int


PREDICTION_LIST_COLUMNS = ["run", "item", "gold", "answer", "correct", "rule", "review", "tokens", "response"]


def predictions(store: Store, flt: PredictionFilter, limit: int = 5000) -> tuple[list[PredictionRow], bool]:
    """Rows for the predictions browser (capped at ``limit``) and whether more exist."""
    clauses = [("r.name = ?", flt.run or None), ("p.final_correct = ?", flt.correct),
               ("p.rule = ?", flt.rule or None), ("p.needs_review = ?", flt.needs_review)]
    active = [(sql, value) for sql, value in clauses if value is not None]
    where = ["TRUE", *(sql for sql, _ in active)]
    result = store.query(
        "SELECT r.name AS run, p.item_id AS item, p.gold, p.final_value AS answer, p.final_correct AS correct, "
        "p.rule, p.pending_review AS review, p.n_new_tokens AS tokens, "
        "left(replace(coalesce(p.response, ''), chr(10), ' '), 80) AS response, p.run_id "
        f"FROM predictions_final p JOIN runs r ON r.id = p.run_id WHERE {' AND '.join(where)} "
        # ids in natural order (/2 before /10): the text before a trailing number, then the number
        "ORDER BY r.name, regexp_replace(p.item_id, '[0-9]+$', ''), "
        "TRY_CAST(regexp_extract(p.item_id, '[0-9]+$') AS HUGEINT) NULLS FIRST, p.item_id",
        [value for _, value in active], max_rows=limit)
    return _build(PredictionRow, result), result.truncated


# ---------------------------------------------------------------------- runs, schema

def runs(store: Store) -> list[RunRecord]:
    """Every run with its live state ("lost" when its process is gone)."""
    return store.runs.all()


def run_names(store: Store) -> list[str]:
    return store.runs.names()


def schema(store: Store) -> dict[str, list[tuple[str, str]]]:
    """Tables and views with their columns, for the SQL console's side list."""
    out: dict[str, list[tuple[str, str]]] = {}
    for r in store.query("SELECT table_name, column_name, data_type FROM information_schema.columns "
                         "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").records():
        out.setdefault(r["table_name"], []).append((r["column_name"], r["data_type"]))
    return out


# -------------------------------------------------------------------------- captures

@dataclass
class CaptureRow:
    """One capture as the captures screen shows it."""

    name: str
    teacher: str
    strategy: str
    mode: str
    format: str
    k: int
    n_tokens: int | None
    bytes: int | None
    bytes_per_token: float | None
    mean_topk_mass: float | None
    entropy_hist: list[int] | None
    state: str  # done, running, interrupted, failed or lost (captures_live: the manifest and the process together)
    temperatures: list[float] | None = None
    kept_mass: list[float] | None = None  # mean tempered teacher mass kept, per stored temperature
    n_examples: int | None = None
    mean_entropy: float | None = None


def captures(store: Store) -> list[CaptureRow]:
    """Every capture with its state: captures_live's (the manifest and the heartbeat), and "lost" where the
    capture's process on this host is gone (the pid half of the rule, which SQL cannot apply)."""
    result = store.query(
        "SELECT c.name, c.teacher, c.strategy, c.mode, c.format, c.k, c.n_examples, c.n_tokens, c.bytes, "
        "c.bytes_per_token, c.mean_topk_mass, c.mean_entropy, c.entropy_hist, c.state, c.temperatures, c.kept_mass, "
        "r.pid, r.pid_start, r.host, r.heartbeat "
        "FROM captures_live c LEFT JOIN runs r ON r.name = ? || c.name ORDER BY c.name", [CAPTURE_RUN_PREFIX])
    records = result.records()
    for record in records:
        record["state"] = live_state(record["state"], record["pid"], record["pid_start"], record["host"],
                                     record["heartbeat"])
    return _build(CaptureRow, records)


# --------------------------------------------------------------------------- training

@dataclass
class TrainingRun:
    """One distill run as the training screen lists it."""

    run_id: int
    name: str
    state: str
    preset: str | None
    capture: str | None
    step: int | None
    total_steps: int | None
    loss: float | None
    tokens_per_s: float | None
    elapsed_s: float | None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at this session's pace (None when unknown or finished)."""
        if self.state != "running" or not self.step or not self.total_steps or not self.elapsed_s:
            return None
        return (self.total_steps - self.step) * self.elapsed_s / self.step


def training_runs(store: Store) -> list[TrainingRun]:
    """Distill runs, newest first, with their latest training step."""
    return _build(TrainingRun, store.query("""
        SELECT r.id AS run_id, r.name, r.state, json_extract_string(r.config, '$.preset') AS preset,
            json_extract_string(r.config, '$.capture') AS capture, m.step, m.total_steps, m.loss,
            m.tokens_per_s, m.elapsed_s
        FROM runs_live r
        LEFT JOIN (SELECT * FROM train_metrics WHERE split = 'train'
                   QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY step DESC) = 1) m ON m.run_id = r.id
        WHERE r.kind = 'distill' ORDER BY r.id DESC"""))


def training_curves(store: Store, run_id: int, after_step: int = 0) -> dict[str, dict[str, Any]]:
    """New train and eval rows of a run after ``after_step``, as numpy columns per split."""
    return {split: store.train_metrics.arrays(run_id, split, after_step) for split in ("train", "eval")}
