"""Honest numbers: one tolerance rule in Python and SQL, provisional accuracy, settled-only McNemar,
pairing by question, no "-0.0"."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from kdtui.extract import answers_match, sql_answers_match
from kdtui.store import Store
from kdtui.store.reads import leaderboard
from tests.helpers import kdtui


def _sql_match(a: float | None, b: float | None) -> bool:
    return bool(duckdb.connect().execute(f"SELECT {sql_answers_match('$1::DOUBLE', '$2::DOUBLE')}", [a, b])
                .fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize(("a", "b", "same"), [
    (1_450_001.0, 1_450_000.0, False), (1_449_999.0, 1_450_000.0, False), (2_880_001.0, 2_880_000.0, False),
    (1_450_000.00001, 1_450_000.0, True), (18.0, 18.00009, True), (18.0, 18.5, False), (1 / 3, 0.3333333, True),
    (None, None, True), (None, 3.0, False), (float("inf"), float("inf"), False), (-0.0, 0.0, True),
])
def test_one_tolerance_in_python_and_sql(a: float | None, b: float | None, same: bool) -> None:
    assert answers_match(a, b) is same
    assert _sql_match(a, b) is same


def test_tolerance_parity_on_random_pairs() -> None:
    rng = random.Random(5)
    pairs = []
    for _ in range(300):
        gold = rng.choice([rng.randint(0, 3_000_000), rng.uniform(-1e4, 1e4)])
        pairs.append((gold + rng.choice([0.0, 1.0, -1.0, 1e-5, 2e-4, gold * 1e-10, gold * 1e-7]), float(gold)))
    # every pair in one query: a connection per pair was most of this test's time
    con = duckdb.connect()
    con.execute("CREATE TABLE pairs (i INTEGER, value DOUBLE, gold DOUBLE)")
    con.executemany("INSERT INTO pairs VALUES (?, ?, ?)", [(i, v, g) for i, (v, g) in enumerate(pairs)])
    in_sql = [bool(r[0]) for r in con.execute(
        f"SELECT {sql_answers_match('value', 'gold')} FROM pairs ORDER BY i").fetchall()]
    assert len(in_sql) == len(pairs)
    for (value, gold), sql_says in zip(pairs, in_sql, strict=True):
        assert answers_match(value, gold) == sql_says, (value, gold)


def _row(item: str, question: str, gold: float, value: float, review: bool = False) -> dict[str, Any]:
    return dict(item_id=item, question=question, gold=gold, prompt="p", response=str(value), n_new_tokens=1,
                finish_reason="eos", value=value, rule="first_line", needs_review=review,
                correct=answers_match(value, gold), candidates=[value])


def test_pending_reviews_make_accuracy_provisional_with_bounds(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    run = store.runs.start("r", "eval", {"model": "m"})
    # 10 items: 4 settled right, 2 settled wrong, 4 pending (2 of them right at their automatic value)
    rows = [_row(f"q{i}", f"question {i}", 1.0, 1.0 if i < 4 else 2.0) for i in range(6)]
    rows += [_row(f"q{i}", f"question {i}", 1.0, 1.0 if i < 8 else 2.0, review=True) for i in range(6, 10)]
    store.predictions.add(run, rows)
    [row] = leaderboard(store)
    assert row.provisional and row.pending == 4
    assert row.accuracy == pytest.approx(0.6)  # 4 settled + 2 pending right at their automatic value
    assert (row.acc_if_pending_wrong, row.acc_if_pending_right) == (pytest.approx(0.4), pytest.approx(0.8))
    [settled] = leaderboard(store, settled=True)
    assert (settled.n, settled.correct, settled.provisional) == (6, 4, False)
    assert settled.accuracy == pytest.approx(4 / 6)
    store.triage.decide(run, "q8", 1.0)  # a reviewer settles one pending item as right
    [after] = leaderboard(store)
    assert (after.pending, after.acc_if_pending_wrong, after.acc_if_pending_right) == \
        (3, pytest.approx(0.5), pytest.approx(0.8))


def test_mcnemar_pairs_settled_items_by_question(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    base = store.runs.start("base", "eval", {"model": "m"})
    other = store.runs.start("other", "eval", {"model": "m"})
    questions = [f"How many apples in basket {i}?" for i in range(8)]
    # base: ids from one source; other: the same questions under another source's ids, plus
    # one item whose id collides with base's but asks something else (another dataset's "test/0")
    store.predictions.add(base, [_row(f"test/{i}", q, 1.0, 2.0) for i, q in enumerate(questions)])
    store.predictions.add(other, [_row(f"local/{i}", q, 1.0, 1.0, review=i == 7) for i, q in enumerate(questions)]
                          + [_row("test/0", "A different question", 1.0, 1.0)])
    rows = {r.name: r for r in leaderboard(store, baseline=base)}
    # 7 settled pairs (item 7 is pending in `other`), all right in other and wrong in base
    assert rows["other"].paired == 7
    assert rows["other"].p_value == pytest.approx(2 / 2**7)
    assert rows["other"].delta == pytest.approx(1.0)


def test_no_negative_zero_anywhere(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    run = store.runs.start("zero", "eval", {"model": "m"})
    store.predictions.add(run, [_row(f"q{i}", f"q{i}", 1.0, 2.0) for i in range(10)])
    [row] = leaderboard(store)
    assert row.ci_low == 0.0 and str(row.ci_low) == "0.0"
    proc = kdtui("leaderboard", "--store", str(store.root))
    assert proc.returncode == 0 and "-0.0" not in proc.stdout and "0.0%–27.8%" in proc.stdout


def test_predictions_record_protocol_and_version(tiny_model: Path, tmp_path: Path) -> None:
    from kdtui import __version__
    from kdtui.config.eval import EvalConfig
    from kdtui.recipes.evaluate import run_eval

    store = Store(tmp_path / "store")
    run_eval(EvalConfig(model=str(tiny_model), data="synthetic", limit=2, max_new_tokens=2, run="v",
                        protocol="seed"), store, tmp_path / "logs")
    rows = store.query("SELECT DISTINCT protocol, kdtui_version FROM predictions").records()
    assert rows == [{"protocol": "seed", "kdtui_version": __version__}]
