"""``kdtui extract`` end to end: real files in, JSON lines and a summary out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

KDTUI = [sys.executable, "-m", "kdtui.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KDTUI, *args], capture_output=True, text=True, timeout=60)


def test_extract_adds_fields_and_summarises(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": 1, "response": "The answer is \\boxed{18}", "gold": 18, "adjudicated": 18},
        # cut off after a result that does not say it is what was asked: a person decides
        {"id": 2, "question": "How many eggs does Janet sell?", "response": "## Step 1: a\n9 * 2 = 18\n## Step 2: b",
         "gold": 18, "adjudicated": 2},
        {"id": 3, "response": "no idea", "gold": 5, "adjudicated": -1},
    ]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = _run("extract", str(src), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in written] == [1, 2, 3]
    assert [r["value"] for r in written] == [18, 18, None]
    assert [r["needs_review"] for r in written] == [False, True, False]
    assert written[0]["rule"] == "boxed"
    assert written[1]["candidates"][0] == 18
    assert "responses:        3" in proc.stderr
    assert "needs review:     1/3 (33.3%)" in proc.stderr
    assert "no answer:        1/3 (33.3%)" in proc.stderr
    assert [r["kind"] for r in written] == ["answer", "unclear", "no_answer"]
    assert "accuracy (gold):  2/3 (66.7%)" in proc.stderr
    assert "agreement (adj.): 2/3 (66.7%)" in proc.stderr
    assert "not flagged:    2/2 (100.0%)" in proc.stderr


def test_extract_seed_protocol_to_stdout(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "-5"}) + "\n", encoding="utf-8")
    proc = _run("extract", str(src), "--protocol", "seed", "--field", "text")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["value"] == 5


def test_malformed_line_names_its_number_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"response": "18"}\n{"response": oops}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = _run("extract", str(src), "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"kdtui: error: {src}:2: not valid JSON")
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_field_and_missing_file(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"answer": "18"}\n', encoding="utf-8")
    proc = _run("extract", str(src))
    assert proc.returncode == 2
    assert "no text field 'response' (fields: answer); choose one with --field" in proc.stderr
    proc = _run("extract", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2
    assert "no such input file" in proc.stderr
