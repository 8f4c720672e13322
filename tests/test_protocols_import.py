"""The study's code replayed exactly, re-extraction that keeps human decisions, and imported runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from kdtui.extract import StudyCascade, extract_answer, extract_answers
from kdtui.store import Store
from kdtui.store.reads import leaderboard
from tests.helpers import kdtui, one_line_error


def test_study_cascade_equals_the_study_code_on_every_dev_row(shared_data: Path) -> None:
    rows = [json.loads(line) for line in (shared_data / "seed-responses" / "dev.jsonl").read_text().splitlines()]
    for name in ("no-distil", "no-distil-fine-tune"):
        run = [r for r in rows if r["set"] == name]  # one run, in its file order
        for row, got in zip(run, extract_answers([r["study_text"] for r in run], "study"), strict=True):
            if row["study_auto"] is None:
                assert got.needs_review and got.value is None, row["id"]
            else:
                assert (got.value, got.needs_review) == (row["study_auto"], False), row["id"]
                assert got.rule == row["study_rule"], row["id"]


def test_study_cascade_bugs_are_reproduced() -> None:
    cascade = StudyCascade()
    # "the answer is" before any response reached the last-number rule: the notebook had nothing to read
    assert cascade("Step 1 gives 5\nso the answer is 12 apples").needs_review
    # a last-number response leaves its numbers behind ...
    assert cascade("We get 3 then 7, so 9").value == 9.0
    # ... and the next answer phrase reads the first of them, not its own number (the stale variable)
    stale = cascade("Adding 2 and 40, the answer is 42.")
    assert (stale.value, stale.rule) == (3.0, "answer_phrase")
    capital = cascade("Adding 40 and 2.\nThe answer is 42.")  # capitalised: not the phrase; the last number
    assert (capital.value, capital.rule) == (42.0, "last_number")
    assert cascade("5, then 5\nmore").rule == "last_number"  # "5," differs from "5" on the first line
    assert cascade("oxed{ 1,234 } done").value == 1234.0
    assert cascade("Well, we know nothing").needs_review  # a lone comma is the study's "number"
    assert extract_answer("Step 1 gives 5\nso the answer is 12", "study").needs_review  # no run before it


def test_seed_is_an_alias_of_study_rules() -> None:
    text = "First 3 and 4.\nThe final answer is 7, surely 8"
    assert extract_answer(text, "seed") == extract_answer(text, "study-rules")


def _triage_store(root: Path) -> tuple[Store, int]:
    store = Store(root)
    run = store.runs.start("r", "eval", {"model": "m"})
    rows = [dict(item_id=f"test/{i}", question=f"q{i}", gold=7.0, prompt="p", response=text, n_new_tokens=1,
                 finish_reason="eos", value=None, rule="none", needs_review=True, correct=False, candidates=[])
            for i, text in enumerate(["The answer is 7.", "\\boxed{7} or 8", "It is 6."])]
    store.predictions.add(run, rows)
    store.runs.finish(run, "done")
    return store, run


def test_reextract_keeps_triage_decisions(tmp_path: Path) -> None:
    store, run = _triage_store(tmp_path / "store")
    store.triage.decide(run, "test/2", 7.0)  # a human says item 2's answer is 7
    proc = kdtui("reextract", "r", "--protocol", "default", "--store", str(store.root))
    assert proc.returncode == 0, proc.stderr
    assert "3 responses re-extracted with default" in proc.stdout and "triage decisions kept" in proc.stdout
    final = {r["item_id"]: (r["value"], r["final_value"], r["protocol"]) for r in store.query(
        "SELECT item_id, value, final_value, protocol FROM predictions_final ORDER BY item_id").records()}
    assert final["test/0"] == (7.0, 7.0, "default")
    assert final["test/2"] == (6.0, 7.0, "default")  # new automatic 6, the decision 7 still in force
    assert [r.correct for r in leaderboard(store)] == [3]
    kinds = store.query("SELECT kind, reason FROM predictions ORDER BY item_id").records()
    assert [k["kind"] for k in kinds] == ["answer", "answer", "answer"] and all(k["reason"] for k in kinds)
    one_line_error(kdtui("reextract", "nope", "--store", str(store.root)), "no run 'nope'")


def test_import_lm_eval_samples_and_study_csv(tmp_path: Path) -> None:
    samples = tmp_path / "samples_gsm8k_2024.jsonl"
    samples.write_text("\n".join(json.dumps({
        "doc_id": i, "doc": {"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"},
        "target": f"{2 * i}", "arguments": [], "resps": [[f"The answer is {2 * i + (i == 2)}."]],
        "filtered_resps": [f"{2 * i}"]}) for i in range(4)) + "\n", encoding="utf-8")
    store = tmp_path / "store"
    proc = kdtui("import", str(samples), "--run", "lm-eval-run", "--store", str(store), "--logs", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "imported 4 predictions as run 'lm-eval-run'" in proc.stdout and "accuracy 75.0%" in proc.stdout
    study = tmp_path / "no-distil.csv"
    with study.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "Unnamed: 0", "question", "answer", "model_answer", "extracted_answer", "model_ex1"])
        writer.writerow([0, 0, "What is 0 + 0?", "#### 0", "0", 0.0, 0.0])
        writer.writerow([1, 1, "What is 1 + 1?", "#### 2", "I think 3", 2.0, 3.0])
        writer.writerow([2, 2, "Other question", "#### 5", "Well, hmm", 5.0, 5.0])
    proc = kdtui("import", str(study), "--run", "study-run", "--protocol", "study", "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    runs = {r.name: r for r in leaderboard(Store(store))}
    assert (runs["study-run"].n, runs["study-run"].correct, runs["study-run"].pending) == (3, 1, 1)
    assert Store(store).runs.get("study-run").kind == "import"  # type: ignore[union-attr]
    # the same questions pair across the two imports: 2 items in common ("What is 0 + 0?", "What is 1 + 1?")
    lm = next(r for r in leaderboard(Store(store), baseline=runs["study-run"].run_id) if r.name == "lm-eval-run")
    assert lm.paired == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "response": "r"}) + "\n", encoding="utf-8")
    one_line_error(kdtui("import", str(bad), "--run", "bad", "--store", str(store)), r"missing field\(s\) gold")
    assert Store(store).runs.get("bad") is None  # nothing registered for a file that could not be read


@pytest.mark.parametrize("protocol", ["default", "study-rules", "study"])
def test_extract_cli_takes_every_protocol(tmp_path: Path, protocol: str) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"response": "We get 3, then 9"}) + "\n", encoding="utf-8")
    proc = kdtui("extract", str(data), "--protocol", protocol)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rule"] in ("last_number", "first_line", "result")
