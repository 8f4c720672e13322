"""Teacher capture on a tiny real model: round trips, exact tails, resume, corruption.

Memory use is measured in benchmarks/capture_bench.py, not asserted here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kdtui.captures.format import (
    CapturedExample,
    compress_topk,
    encode_shard,
    log_tail_of,
    pack_ids,
    read_shard,
    tail_mass,
    tempered_topk,
    unpack_ids,
    write_shard,
)
from kdtui.config.capture import CaptureConfig
from kdtui.errors import KdtuiError
from kdtui.models.teachers import load_teacher
from kdtui.recipes.capture import run_capture
from kdtui.store import Store
from kdtui.store.reads import captures

KDTUI = [sys.executable, "-m", "kdtui.cli"]


def _config(tiny_model: Path, **overrides: object) -> CaptureConfig:
    base: dict[str, object] = dict(name="c", teacher=str(tiny_model), data="synthetic", limit=5, k=8,
                                   examples_per_shard=2, batch_size=2, max_new_tokens=6, strategy="teacher")
    return CaptureConfig.model_validate(base | overrides)


def _examples(store: Store, manifest: dict) -> list:
    folder = store.root / "captures" / manifest["name"]
    out = []
    for entry in manifest["shards"]:
        out += read_shard(folder / entry["file"], entry).examples()
    return out


@pytest.mark.parametrize("mode", ["prompt", "answer", "generate"])
@pytest.mark.parametrize("fmt", ["topk", "dense"])
def test_every_mode_round_trips(tiny_model: Path, store_dir: Path, mode: str, fmt: str) -> None:
    store = Store(store_dir)
    manifest = run_capture(_config(tiny_model, name=f"{mode}-{fmt}", mode=mode, format=fmt), store)
    examples = _examples(store, manifest)
    assert [e.index for e in examples] == [0, 1, 2, 3, 4]
    assert manifest["n_tokens"] == sum(len(e.targets) for e in examples) > 0
    teacher = load_teacher("hf", str(tiny_model))
    for example in examples:
        # the targets are the context from target_start: a student can align on them
        assert example.context[example.target_start:] == example.targets
        logits = teacher.forward([example.context], [(example.target_start - 1, len(example.context) - 1)])[0]
        if mode == "answer":  # the reference solution ends with the teacher's EOS, as the fine-tune control's does
            assert example.targets[-1] == teacher.eos_id is not None
        if mode == "generate":
            greedy = logits.argmax(-1).tolist()
            assert greedy == example.targets  # teacher-forced replay of its own greedy output
            assert example.text == teacher.decode(example.targets)
        if fmt == "dense":
            assert example.logits is not None
            torch.testing.assert_close(example.logits.float(), logits.float(), atol=2e-3, rtol=1e-3)
        else:
            top = torch.topk(logits.float(), 8)
            assert np.array_equal(example.ids, top.indices.numpy())
            expected = top.values - torch.logsumexp(logits.float(), -1, keepdim=True)
            torch.testing.assert_close(example.logprobs.float(), expected, atol=4e-3, rtol=1e-3)
    row = store.query("SELECT mode, format, n_tokens, status FROM captures WHERE name = ?", [f"{mode}-{fmt}"]).rows
    assert row == [(mode, fmt, manifest["n_tokens"], "done")]


def test_tail_mass_from_the_stored_normaliser_is_exact(tiny_model: Path, store_dir: Path) -> None:
    store = Store(store_dir)
    cfg = _config(tiny_model, temperatures=[1.0, 5.942267335064758, 2.0])
    examples = _examples(store, run_capture(cfg, store))
    teacher = load_teacher("hf", str(tiny_model))
    for example in examples[:3]:
        logits = teacher.forward([example.context], [(example.target_start - 1, len(example.context) - 1)])[0]
        lognorm = torch.from_numpy(example.lognorm)
        for t_index, temperature in enumerate(cfg.temperatures):
            full = torch.softmax(logits.float() / temperature, -1)
            true_tail = 1 - full.gather(-1, torch.from_numpy(example.ids)).sum(-1)
            stored_tail = tail_mass(example.logprobs, lognorm, t_index, temperature)
            torch.testing.assert_close(stored_tail, true_tail, atol=2e-3, rtol=0)
            # the fp32 log tail stored since format 2 is exact, not just close
            torch.testing.assert_close(log_tail_of(example, t_index, temperature).exp(), true_tail.float(),
                                       atol=1e-6, rtol=1e-4)
            # and the tempered top-k probabilities themselves
            stored = tempered_topk(example.logprobs, lognorm, t_index, temperature).exp()
            torch.testing.assert_close(stored, full.gather(-1, torch.from_numpy(example.ids)), atol=1e-3, rtol=5e-3)


@pytest.mark.parametrize("vocab", [400, 65536, 128256, 262144])
def test_ids_pack_in_the_fewest_bits(vocab: int) -> None:
    ids = np.random.default_rng(0).integers(0, vocab, size=(37, 16))
    parts = pack_ids(ids, vocab)
    assert np.array_equal(unpack_ids(parts, ids.size).reshape(ids.shape), ids)
    bits = sum(p.nbytes for p in parts.values()) * 8 / ids.size
    assert bits <= {400: 16, 65536: 16, 128256: 17.1, 262144: 18.1}[vocab]


def _capture_args(tiny_model: Path, store_dir: Path) -> list[str]:
    return ["capture", "--teacher", str(tiny_model), "--name", "resume", "--data", "synthetic", "--limit", "24",
            "--k", "8", "--examples-per-shard", "3", "--batch-size", "2", "--mode", "generate",
            "--max-new-tokens", "24", "--store", str(store_dir)]


@pytest.mark.slow
def test_resume_after_sigkill_gives_identical_shards(tiny_model: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run([*KDTUI, *_capture_args(tiny_model, reference)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*KDTUI, *_capture_args(tiny_model, killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = killed / "captures" / "resume" / "manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and len(json.loads(manifest.read_text())["shards"]) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [c.state for c in captures(Store(killed))] == ["lost"]  # its process is gone: not "running"
    partial = len(json.loads(manifest.read_text())["shards"])
    assert 2 <= partial < 8, "the capture should have been killed part-way"
    again = subprocess.run([*KDTUI, *_capture_args(tiny_model, killed)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    ref_files = sorted((reference / "captures" / "resume").glob("shard-*.safetensors"))
    new_files = sorted((killed / "captures" / "resume").glob("shard-*.safetensors"))
    assert [p.name for p in ref_files] == [p.name for p in new_files] and len(ref_files) == 8
    for a, b in zip(ref_files, new_files, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert not list((killed / "captures" / "resume").glob("*.tmp"))
    assert [c.state for c in captures(Store(killed))] == ["done"]


def test_a_capture_has_one_state_from_its_manifest_and_its_process(tiny_model: Path, store_dir: Path) -> None:
    """The manifest alone says "running" for a capture that stopped or died; the store's state says what
    happened, the same in the screens (reads.captures) and in SQL (captures_live)."""
    store = Store(store_dir)
    stopped = run_capture(_config(tiny_model), store, should_stop=lambda: True)
    assert stopped["status"] == "running"  # the folder cannot tell a stopped capture from a live one
    assert [c.state for c in captures(store)] == ["interrupted"]
    assert store.query("SELECT state FROM captures_live").rows == [("interrupted",)]
    # a capture whose process is gone (SIGKILL: it never recorded an end) reads lost, not running
    with store.write() as con:
        con.execute("UPDATE runs SET status = 'running', pid = 2147483646, host = ?, heartbeat = epoch(now())",
                    [socket.gethostname()])
    assert [c.state for c in captures(store)] == ["lost"]
    run_capture(_config(tiny_model), store)
    assert [c.state for c in captures(store)] == ["done"]
    assert store.query("SELECT state FROM captures_live").rows == [("done",)]


def test_truncated_shard_is_named_in_a_clear_error(tiny_model: Path, store_dir: Path) -> None:
    store = Store(store_dir)
    manifest = run_capture(_config(tiny_model), store)
    shard = store.root / "captures" / "c" / manifest["shards"][1]["file"]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(KdtuiError, match=rf"corrupt capture shard .*{shard.name}.*checksum mismatch"):
        _examples(store, manifest)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([*KDTUI, "capture", "inspect", "c", "--against", str(tiny_model), "--sample", "5",
                           "--store", str(store_dir)], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"capture 'c' is damaged: {shard.name} has " in proc.stderr  # inspect checks sizes before anything


def test_tokenizer_mismatch_is_refused(tiny_model: Path, store_dir: Path, tmp_path: Path) -> None:
    import shutil

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_model, teacher)
    store = Store(store_dir)
    run_capture(_config(teacher, limit=2), store)
    # the teacher folder now carries a different tokenizer: same size, two tokens swapped
    tokenizer = json.loads((teacher / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.get)[10:12]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (teacher / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(KdtuiError, match="tokenizer mismatch for capture 'c'"):
        run_capture(_config(teacher, limit=4), store)
    from kdtui.captures.inspect import fidelity

    with pytest.raises(KdtuiError, match="tokenizer mismatch"):
        fidelity(store.root, "c", str(teacher))


def test_a_tiny_tail_survives_in_the_stored_log_tail() -> None:
    """Three dominant tokens and a tail of 1e-5: 1 - sum of fp16 values says 0, the stored log tail says 1e-5."""
    vocab = 2000
    probs = np.full(vocab, 1e-5 / (vocab - 3))
    probs[:3] = (1 - 1e-5) * np.array([0.5, 0.3, 0.2])
    logits = torch.tensor(np.log(probs), dtype=torch.float32)[None]
    packed = compress_topk(logits, 3, [1.0, 5.942267335064758])
    old_way = 1 - tempered_topk(packed["logprobs"].half(), packed["lognorm"], 0, 1.0).exp().sum(-1)
    assert float(old_way) <= 1e-3 and float(old_way) != pytest.approx(1e-5, rel=0.1)
    assert float(packed["log_tail"][0, 0].exp()) == pytest.approx(1e-5, rel=1e-3)
    tempered = torch.softmax(logits.double() / 5.942267335064758, -1)[0, 3:].sum()
    assert float(packed["log_tail"][0, 1].exp()) == pytest.approx(float(tempered), rel=1e-4)


def test_format_1_shards_stay_readable(tmp_path: Path) -> None:
    packed = compress_topk(torch.randn(4, 50), 5, [1.0, 2.0])
    example = CapturedExample(0, [1, 2, 3, 4, 5], 1, [2, 3, 4, 5], ids=packed["ids"].numpy(),
                              logprobs=packed["logprobs"], lognorm=packed["lognorm"].numpy(),
                              log_tail=packed["log_tail"].numpy(), entropy=packed["entropy"].numpy())
    tensors, meta = encode_shard([example], "topk", 50, "float16", {})
    del tensors["log_tail"]
    meta["format_version"] = "kdtui-capture/1"  # as written before the log tail was stored
    entry = write_shard(tmp_path / "shard-00000.safetensors", tensors, meta)
    [back] = read_shard(tmp_path / "shard-00000.safetensors", entry).examples()
    assert back.log_tail is None
    derived = log_tail_of(back, 1, 2.0).exp()  # falls back to 1 - sum, which is fine for this flat teacher
    torch.testing.assert_close(derived, packed["log_tail"][:, 1].exp(), atol=2e-3, rtol=0)


def test_two_replicas_merge_into_the_single_process_capture(tiny_model: Path, tmp_path: Path) -> None:
    """A capture split into 2 ranges of whole shards and merged equals the one-process capture, shard for shard."""
    from kdtui.captures.replicas import merge, replica_range

    assert replica_range(7, 2, 0, 2) == (0, 4) and replica_range(7, 2, 1, 2) == (4, 7)  # 4 shards: 2 + 2
    store = Store(tmp_path / "store")
    common = {"teacher": str(tiny_model), "data": "synthetic", "limit": 7, "examples_per_shard": 2, "k": 8,
              "device": "cpu", "mode": "answer"}
    single = run_capture(CaptureConfig.model_validate(common | {"name": "one"}), store)
    for replica in (1, 0):  # in any order: each is its own resumable capture
        run_capture(CaptureConfig.model_validate(common | {"name": "two", "replicas": 2, "replica": replica}), store)
    merged = merge(store.root, "two", 2)
    assert [s["sha256"] for s in merged["shards"]] == [s["sha256"] for s in single["shards"]]
    assert [s["file"] for s in merged["shards"]] == [s["file"] for s in single["shards"]]
    for key in ("n_examples", "n_tokens", "config", "tokenizer", "strategy", "format", "k"):
        assert merged[key] == single[key], key
    for entry in merged["shards"]:
        assert (store.root / "captures" / "two" / entry["file"]).read_bytes() == \
            (store.root / "captures" / "one" / entry["file"]).read_bytes()
    assert merge(store.root, "two", 2) == merged  # merging again (a retried job) changes nothing
    with pytest.raises(KdtuiError, match="replica 0 of capture 'three' is missing"):
        merge(store.root, "three", 2)


def test_the_token_boundary_rule_is_one_for_teacher_and_student() -> None:
    """A token straddling the boundary (before tokenises to [1, 2, 3], the whole to [1, 2, 9, ...]) is a
    target; position 0 never is; at least one target remains. The capture and the student's examples both
    cut with this function, so their positions align."""
    from kdtui.data.strategies import target_start
    from kdtui.kd.examples import split_ids

    assert target_start([1, 2, 3], [1, 2, 9, 4, 5]) == 2
    assert target_start([1, 2], [1, 2, 3, 4]) == 2
    assert target_start(None, [1, 2, 3]) == 1
    assert target_start([7], [1, 2, 3]) == 1  # nothing in common: still not position 0
    assert target_start([1, 2, 3], [1, 2, 3]) == 2  # all in common: the last token stays a target

    class Chars:  # a tokenizer with one id per character and a BOS of 0
        def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
            return {"input_ids": [0, *map(ord, text)]}

    ids, start = split_ids(Chars(), "Q: 2+2\n", "Q: 2+2\nA: 4")
    assert start == target_start([0, *map(ord, "Q: 2+2\n")], ids) == 8


def test_a_capture_resumes_by_the_rule_runs_resume_by(tiny_model: Path, store_dir: Path) -> None:
    """Resuming a capture with other settings is refused naming each change; a field a later kdtui added, at its
    default, is no change (the manifest of an older capture lacks it): the same rule as a run's resume."""
    store = Store(store_dir)
    cfg = _config(tiny_model)
    manifest = run_capture(cfg, store)
    with pytest.raises(KdtuiError, match=r"capture 'c' exists with different settings \(k: 8 -> 16\)"):
        run_capture(_config(tiny_model, k=16), store)
    fields = CaptureConfig.model_fields
    added_later = next(k for k, v in manifest["config"].items() if k in fields and v == fields[k].default)
    path = store.root / "captures" / "c" / "manifest.json"
    older = json.loads(path.read_text())
    del older["config"][added_later]
    path.write_text(json.dumps(older))
    assert run_capture(cfg, store)["n_examples"] == manifest["n_examples"]


def test_the_teacher_computes_logits_only_where_asked_and_they_are_the_full_forwards(tiny_model: Path) -> None:
    """Sequences of different lengths, spans starting at different places: the logits and head inputs the teacher
    returns for each span are the full forward's at those positions (the head skips only what no span needs)."""
    teacher = load_teacher("hf", str(tiny_model))
    sequences = [[5, 9, 13, 2, 7, 11, 4], [8, 3, 6, 12], [1, 2, 3, 4, 5, 6, 7, 8, 9]]
    spans = [(3, 6), (1, 3), (5, 8)]
    pairs = teacher.forward_hidden(sequences, spans)
    logits = teacher.forward(sequences, spans)
    for sequence, (a, b), (hidden, hidden_logits), alone in zip(sequences, spans, pairs, logits, strict=True):
        with torch.no_grad():
            out = teacher.model(input_ids=torch.tensor([sequence]), output_hidden_states=True)
        full, last = out.logits[0, a:b], out.hidden_states[-1][0, a:b]
        torch.testing.assert_close(alone, full, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(hidden_logits, full, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(hidden, last, atol=1e-4, rtol=1e-4)
