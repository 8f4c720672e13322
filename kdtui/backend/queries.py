"""Read models for the TUI and scripts: plain data out of the store, no Textual."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kdtui.backend.stats import mcnemar_exact
from kdtui.backend.store import Store


@dataclass
class LeaderRow:
    """One run on the leaderboard, with its comparison to the baseline run."""

    run_id: int
    name: str
    kind: str
    strategy: str
    prompt: str
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    pending: int
    delta: float | None = None
    p_value: float | None = None
    paired: int = 0


def leaderboard(store: Store, baseline: int | None = None) -> list[LeaderRow]:
    """Every evaluated run; with ``baseline``, accuracy differences and McNemar p-values."""
    result = store.query(
        "SELECT run_id, name, kind, coalesce(strategy, ''), coalesce(prompt, ''), n, correct, accuracy, "
        "ci_low, ci_high, pending_review FROM leaderboard ORDER BY accuracy DESC, name",
        read_only_check=False,
    )
    rows = [LeaderRow(*r) for r in result.rows]
    if baseline is None or baseline not in {r.run_id for r in rows}:
        return rows
    pairs = store.query(
        "SELECT b.run_id, count(*) AS paired, "
        "count(*) FILTER (WHERE b.final_correct AND NOT a.final_correct) AS only_b, "
        "count(*) FILTER (WHERE a.final_correct AND NOT b.final_correct) AS only_a, "
        "avg(b.final_correct::INT) - avg(a.final_correct::INT) AS delta "
        "FROM predictions_final a JOIN predictions_final b USING (item_id) "
        "WHERE a.run_id = ? AND b.run_id <> ? GROUP BY b.run_id",
        [baseline, baseline], read_only_check=False,
    )
    by_run = {r[0]: r for r in pairs.rows}
    for row in rows:
        if row.run_id == baseline:
            row.delta, row.p_value, row.paired = 0.0, 1.0, row.n
        elif row.run_id in by_run:
            _, paired, only_b, only_a, delta = by_run[row.run_id]
            row.delta, row.p_value, row.paired = delta, mcnemar_exact(only_a, only_b), paired
    return rows


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


TRIAGE_COLUMNS = ("p.run_id, r.name, p.item_id, p.question, p.response, p.value, p.final_value, p.gold, p.rule, "
                  "p.candidates, p.triaged")


def _triage_items(rows: list[tuple[Any, ...]]) -> list[TriageItem]:
    return [TriageItem(r[0], r[1], r[2], r[3] or "", r[4] or "", r[5], r[6], r[7], r[8] or "", list(r[9] or []),
                       bool(r[10])) for r in rows]


def triage_queue(store: Store, run: str | None = None, include_done: bool = False) -> list[TriageItem]:
    """Predictions that need review (all of them with ``include_done``), in a stable order."""
    where = ["p.needs_review"] if include_done else ["p.pending_review"]
    params: list[Any] = []
    if run:
        where.append("r.name = ?")
        params.append(run)
    result = store.query(
        f"SELECT {TRIAGE_COLUMNS} FROM predictions_final p JOIN runs r ON r.id = p.run_id "
        f"WHERE {' AND '.join(where)} ORDER BY p.run_id, p.item_id",
        params, read_only_check=False,
    )
    return _triage_items(result.rows)


def triage_item(store: Store, run_id: int, item_id: str) -> TriageItem | None:
    result = store.query(
        f"SELECT {TRIAGE_COLUMNS} FROM predictions_final p JOIN runs r ON r.id = p.run_id "
        "WHERE p.run_id = ? AND p.item_id = ?", [run_id, item_id], read_only_check=False)
    items = _triage_items(result.rows)
    return items[0] if items else None


def run_names(store: Store) -> list[str]:
    return [r[0] for r in store.query("SELECT name FROM runs ORDER BY name", read_only_check=False).rows]


@dataclass
class PredictionFilter:
    run: str | None = None
    correct: bool | None = None
    rule: str | None = None
    needs_review: bool | None = None


PREDICTION_LIST_COLUMNS = ["run", "item", "gold", "answer", "correct", "rule", "review", "tokens", "response"]


def predictions(store: Store, flt: PredictionFilter, limit: int = 5000) -> tuple[list[tuple[Any, ...]], bool]:
    """Rows for the predictions browser (capped at ``limit``) and whether more exist."""
    clauses = [("r.name = ?", flt.run or None), ("p.final_correct = ?", flt.correct),
               ("p.rule = ?", flt.rule or None), ("p.needs_review = ?", flt.needs_review)]
    active = [(sql, value) for sql, value in clauses if value is not None]
    where = ["TRUE", *(sql for sql, _ in active)]
    params: list[Any] = [value for _, value in active]
    result = store.query(
        "SELECT r.name, p.item_id, p.gold, p.final_value, p.final_correct, p.rule, p.pending_review, "
        "p.n_new_tokens, left(replace(p.response, chr(10), ' '), 80), p.run_id "
        f"FROM predictions_final p JOIN runs r ON r.id = p.run_id WHERE {' AND '.join(where)} "
        "ORDER BY r.name, p.item_id", params, max_rows=limit, read_only_check=False)
    return result.rows, result.truncated


def schema(store: Store) -> dict[str, list[tuple[str, str]]]:
    """Tables and views with their columns, for the SQL console's side list."""
    result = store.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position", read_only_check=False)
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in result.rows:
        out.setdefault(table, []).append((column, kind))
    return out
