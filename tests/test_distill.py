"""The distillation recipe on tiny real models: losses against the formulas, the notebooks' step, resume,
refusals, NaN, and metrics that survive a busy store."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from kdtui.config.capture import CaptureConfig
from kdtui.config.distill import DistillConfig
from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError
from kdtui.kd.examples import aligned_items, captured_examples, literal_items
from kdtui.kd.losses import KDConfig
from kdtui.kd.step import TargetHidden, aligned_loss, load_head
from kdtui.recipes.capture import run_capture
from kdtui.recipes.distill import run_distill
from kdtui.store import Store
from tests.helpers import kdtui, wait_for
from tests.tiny import build_tiny_llama

REPO = Path(__file__).resolve().parents[1]
ALPHA, T = 0.6093348343631224, 5.942267335064758


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher with the student's tokenizer but other weights, so KL is far from 0."""
    return build_tiny_llama(tmp_path_factory.mktemp("teacher"), seed=11)


def capture(store: Store, teacher: Path, name: str, **options: Any) -> dict[str, Any]:
    # hidden by default: exact at the study's T (a top-k capture there is refused by the fidelity gate)
    cfg = CaptureConfig.model_validate({"name": name, "teacher": str(teacher), "data": "synthetic", "limit": 6,
                                        "device": "cpu", "examples_per_shard": 4, "format": "hidden"} | options)
    return run_capture(cfg, store, logs=store.root / "logs")


def distill_cfg(student: Path, run: str, **options: Any) -> DistillConfig:
    flags = {"run": run, "student": str(student), "device": "cpu", "lora_dropout": 0.0} | options
    return DistillConfig.from_sources(flags)


def train_rows(store: Store, run: str) -> list[dict[str, Any]]:
    record = store.runs.get(run)
    assert record is not None
    return store.train_metrics.curve(record.id)


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("fmt", ["dense", "hidden"])
def test_study_preset_loss_equals_the_dense_formula(tiny_model: Path, teacher: Path, tmp_path: Path,
                                                    fmt: str) -> None:
    """Aligned KD through the fused path equals alpha*CE + (1-alpha)*KL(s||t)*T^2 computed densely."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store = Store(tmp_path / "store")
    manifest = capture(store, teacher, "c", mode="answer", format=fmt)
    _, examples = captured_examples(store.root, "c")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    from kdtui.data.strategies import Strategy

    items = aligned_items(manifest, examples[:3], tokenizer, T, 1024, Strategy.model_validate(manifest["strategy"]))
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    head = load_head(store.root, manifest) if fmt == "hidden" else None
    loss, stats, n = aligned_loss(TargetHidden(model), model, items, KDConfig(alpha=ALPHA, temperature=T,
                                                                                divergence="reverse_kl"), head)

    teacher_model = AutoModelForCausalLM.from_pretrained(teacher, dtype=torch.float32)
    ce_sum, kl_sum, count = 0.0, 0.0, 0
    for item, example in zip(items, examples[:3], strict=True):
        logits = model(input_ids=torch.tensor([item.input_ids])).logits[0]
        student = logits[item.target_pos:item.target_pos + item.n_targets]
        full = teacher_model(input_ids=torch.tensor([example.context])).logits[0]
        t_logits = full[example.target_start - 1:example.target_start - 1 + item.n_targets]
        labels = torch.tensor(item.labels)
        ce_sum += float(F.cross_entropy(student, labels, reduction="sum").detach())
        s_logp, t_logp = F.log_softmax(student / T, -1), F.log_softmax(t_logits / T, -1)
        kl_sum += float((s_logp.exp() * (s_logp - t_logp)).sum().detach())
        count += item.n_targets
    assert n == count
    expected = (ALPHA * ce_sum + (1 - ALPHA) * kl_sum * T**2) / count
    assert math.isclose(float(loss), expected, rel_tol=1e-4), (float(loss), expected)  # fp16 storage
    assert stats.kl_full > 1e-4  # a different teacher: the full KL is known and not 0


NOTEBOOK_PROMPTS = {  # llama-3.1-405b-6bpw/inference_gsm8k*.ipynb: the prefix before each question
    "base": "",
    "teacher": "As a teacher, guide your student through solving the question below. Provide a clear, simple "
               "explanation for someone unfamiliar with the problem. ",
}


def _socratic_pair(folder: Path, n: int = 6) -> tuple[Path, Path]:
    """GSM8K-shaped main and socratic files: the same questions, socratic solutions with sub-questions."""
    from kdtui.data import synthetic

    problems = synthetic.generate(n, seed=5)
    main, socratic = folder / "main.jsonl", folder / "socratic.jsonl"
    main.write_text("".join(json.dumps({"question": p.question, "answer": p.answer}) + "\n" for p in problems))
    socratic.write_text("".join(json.dumps({"question": p.question, "answer": "How much is it? ** " + p.answer})
                                + "\n" for p in problems))
    return main, socratic


@pytest.mark.parametrize("strategy", ["base", "teacher"])
def test_study_literal_equals_the_notebook_step(tiny_model: Path, teacher: Path, tmp_path: Path,
                                                strategy: str) -> None:
    """Two steps of the recipe's study-literal preset equal a transcription of the notebooks' code, which
    reads its own inputs: the teacher's logits over prefix + question (no BOS, every position, saved in fp16),
    questions and socratic labels from the file, KnowledgeDistillationLoss and train_model (batch 1, file
    order). Nothing of kdtui's capture or examples code is used on the transcription's side."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    main, socratic = _socratic_pair(tmp_path)
    store = Store(tmp_path / "store")
    capture(store, teacher, "all", data=str(main), mode="prompt", span="all", bos=False, format="dense",
            value_dtype="float16", strategy=strategy, batch_size=1)
    cfg = distill_cfg(tiny_model, "lit", preset="study-literal", capture="all", data=str(socratic), max_steps=2,
                      seed=3)
    assert cfg.data_config == "socratic"  # the preset's; lora_dropout 0 here, so the runs compare exactly
    run_distill(cfg, store, tmp_path / "logs")
    ours = [row["loss"] for row in train_rows(store, "lit")]

    # -- the transcription: the teacher notebook's get_logits, then distill.ipynb's train_model step
    rows = [json.loads(line) for line in socratic.read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    teacher_model = AutoModelForCausalLM.from_pretrained(teacher, dtype=torch.float32)
    with torch.no_grad():
        teacher_logits_L = []
        for row in rows:
            ids = tokenizer(NOTEBOOK_PROMPTS[strategy] + row["question"], add_special_tokens=False,
                            return_tensors="pt")["input_ids"]  # ExLlamaV2Tokenizer.encode: no BOS
            teacher_logits_L.append(teacher_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
                                    .half())  # saved as the forward returned it, in half precision
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                             target_modules=["q_proj", "v_proj", "k_proj", "o_proj"],
                                             task_type="CAUSAL_LM"))
    lora = [p for n, p in model.named_parameters() if "lora" in n]
    base = [p for n, p in model.named_parameters() if "lora" not in n]
    optimizer = torch.optim.SGD([{"params": base, "weight_decay": 0.0}, {"params": lora, "weight_decay": 1e-2}],
                                lr=5e-6, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=len(teacher_logits_L))
    theirs = []
    model.train()
    for batch_idx in range(2):
        inputs = tokenizer([rows[batch_idx]["question"]], truncation=True, padding=True, max_length=256,
                           return_tensors="pt")
        labels = tokenizer([rows[batch_idx]["answer"]], truncation=True, padding=True, max_length=256,
                           return_tensors="pt")["input_ids"]
        student_logits = model(**inputs).logits
        batch_teacher_logits = teacher_logits_L[batch_idx].float()
        seq_len = min(student_logits.size(1), labels.size(1), batch_teacher_logits.size(1))
        student_logits = student_logits[:, :seq_len, :].reshape(-1, student_logits.size(-1))
        labels = labels[:, :seq_len].reshape(-1)
        batch_teacher_logits = batch_teacher_logits[:, :seq_len, :].reshape(-1, student_logits.size(-1))
        loss_hard = torch.nn.CrossEntropyLoss()(student_logits, labels)
        teacher_log_probs = F.log_softmax(batch_teacher_logits / T, dim=1)
        student_probs = F.softmax(student_logits / T, dim=1)
        loss_soft = F.kl_div(teacher_log_probs, student_probs, reduction="batchmean", log_target=False) * T**2
        loss = ALPHA * loss_hard + (1.0 - ALPHA) * loss_soft
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        theirs.append(float(loss))
    assert len(ours) == 2
    for a, b in zip(ours, theirs, strict=True):
        assert abs(a - b) <= 1e-6, (ours, theirs)


def test_study_literal_takes_each_notebooks_lora_dropout() -> None:
    """base-KD/distill.ipynb has lora_dropout 0.2; ai-KD, teacher-KD and reverseKL-KD 0.1. A flag wins."""
    cfg = DistillConfig.from_sources({"run": "r", "student": "s", "preset": "study-literal", "capture": "c"})
    assert [cfg.effective_lora_dropout(s) for s in ("base", "teacher", "ai-to-ai", "confidence")] == \
        [0.2, 0.1, 0.1, 0.1]
    assert DistillConfig.from_sources({"run": "r", "student": "s", "capture": "c"}).effective_lora_dropout("base") \
        == 0.1  # the study preset: 0.1 for every strategy
    flagged = DistillConfig.from_sources({"run": "r", "student": "s", "preset": "study-literal", "capture": "c",
                                          "lora_dropout": 0.05})
    assert flagged.effective_lora_dropout("base") == 0.05


def test_study_literal_refuses_a_targets_capture(tiny_model: Path, teacher: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    manifest = capture(store, teacher, "t", format="dense")
    _, examples = captured_examples(store.root, "t")
    with pytest.raises(KdtuiError, match="--span all"):
        literal_items(manifest, examples, None, 256)


# ----------------------------------------------------------------------------- the run


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(tiny_model: Path, teacher: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = Store(store_dir)
    capture(store, teacher, "c", mode="answer")
    common = ["--student", str(tiny_model), "--capture", "c", "--device", "cpu", "--epochs", "40",
              "--checkpoint-every", "5", "--lr", "1e-3", "--lora-dropout", "0.1", "--seed", "5", "--batch-size", "2",
              "--grad-accum", "2", "--store", str(store_dir), "--logs", str(tmp_path / "logs")]
    whole = run_distill(DistillConfig.from_sources({
        "run": "whole", "student": str(tiny_model), "capture": "c", "device": "cpu", "epochs": 40,
        "checkpoint_every": 5, "lr": 1e-3, "lora_dropout": 0.1, "seed": 5, "batch_size": 2, "grad_accum": 2}),
        store, tmp_path / "logs")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "kdtui.cli", "distill", "--run", "cut", *common], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = StoreLayout(store_dir).run_folder("cut") / "checkpoints"
    try:
        wait_for(lambda: (checkpoints.is_dir() and any(p.name.startswith("step-") for p in checkpoints.iterdir()))
                 or proc.poll() is not None, 120, "a first checkpoint")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    killed_at = max(json.loads(line)["step"] for line in
                    (StoreLayout(store_dir).run_folder("cut") / "metrics.jsonl").read_text().splitlines())
    assert killed_at < whole.steps, "the run finished before it could be killed"
    refused = subprocess.run([sys.executable, "-m", "kdtui.cli", "distill", "--run", "cut", *common], cwd=REPO,
                             env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = subprocess.run([sys.executable, "-m", "kdtui.cli", "distill", "--run", "cut", "--resume", *common],
                             cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = train_rows(store, "whole"), train_rows(store, "cut")
    assert [r["step"] for r in b] == list(range(1, whole.steps + 1))  # every step once, none lost in the kill
    assert abs(a[-1]["loss"] - b[-1]["loss"]) <= 1e-4, (a[-1], b[-1])


def test_run_names_that_once_shared_a_folder_train_apart(tiny_model: Path, teacher: Path, tmp_path: Path) -> None:
    """'col/x' and 'col__x' each get their own folder and adapter; in a store from before the one-to-one layout,
    where 'col/x' lives in 'col__x', that folder is still 'col/x''s, and 'col__x' is refused naming it instead
    of being told to --resume the other run's checkpoint."""
    store = Store(tmp_path / "store")
    layout = StoreLayout(store.root)
    capture(store, teacher, "c")
    for run in ("col/x", "col__x"):
        run_distill(distill_cfg(tiny_model, run, capture="c", max_steps=1), store, tmp_path / "logs")
    folders = {run: layout.run_folder(run) for run in ("col/x", "col__x")}
    assert folders["col/x"] != folders["col__x"]
    for run, folder in folders.items():
        assert json.loads((folder / "adapter" / "kdtui.json").read_text())["run"] == run
        assert StoreLayout.run_of(folder.name) == run

    old = tmp_path / "old"  # the same run, as an older kdtui laid it out
    shutil.copytree(store.root, old)
    shutil.rmtree(old / "distill" / "col__x")
    (old / "distill" / folders["col/x"].name).rename(old / "distill" / "col__x")
    legacy = StoreLayout(old).run_folder("col/x")
    assert legacy == old / "distill" / "col__x" and (legacy / "adapter").is_dir()
    for resume in (False, True):
        with pytest.raises(KdtuiError, match=r"run 'col__x' would share .* with run 'col/x'"):
            run_distill(distill_cfg(tiny_model, "col__x", capture="c", max_steps=1, resume=resume), Store(old),
                        tmp_path / "logs")


def test_tokenizer_mismatch_is_refused(tiny_model: Path, teacher: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    store = Store(tmp_path / "store")
    capture(store, teacher, "c")
    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    model = AutoModelForCausalLM.from_pretrained(other)
    model.resize_token_embeddings(model.get_output_embeddings().weight.shape[0] + 8)
    model.save_pretrained(other)
    with pytest.raises(KdtuiError, match="another tokenizer"):
        run_distill(distill_cfg(other, "x", capture="c", max_steps=1), store, tmp_path / "logs")
    assert store.runs.get("x") is None  # refused before the run was registered


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_model: Path, teacher: Path,
                                                                    tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    capture(store, teacher, "c")
    cfg = distill_cfg(tiny_model, "nan", capture="c", optimizer="sgd", lr=1e30, momentum=0.0, epochs=30,
                      checkpoint_every=1, schedule="constant")
    with pytest.raises(KdtuiError, match=r"the loss became (nan|inf) at step (\d+); stopped with the last good "
                                         r"checkpoint .*step-"):
        run_distill(cfg, store, tmp_path / "logs")
    record = store.runs.get("nan")
    assert record is not None and record.status == "failed" and "the loss became" in (record.error or "")
    kept = sorted((StoreLayout(store.root).run_folder("nan") / "checkpoints").iterdir())
    weights = kept[-1] / "trainable.safetensors"
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(str(weights)).values())


def test_an_outside_reader_during_training_loses_no_metrics(tiny_model: Path, teacher: Path, tmp_path: Path) -> None:
    """A read-only DuckDB client opens the file mid-run: ingestion and the run's end wait, every step arrives."""
    import threading

    store = Store(tmp_path / "store")
    capture(store, teacher, "c")
    cfg = distill_cfg(tiny_model, "held", capture="c", epochs=4, checkpoint_every=100)
    metrics = StoreLayout(store.root).run_folder("held") / "metrics.jsonl"
    result: dict[str, Any] = {}
    held = threading.Event()
    # The run waits after its first step until the client holds the file: under load it could otherwise finish
    # before the client gets in (the flake this replaces). Order by events, not by speed.
    gate = lambda row: held.wait(120) if row["step"] == 1 else None  # noqa: E731
    worker = threading.Thread(target=lambda: result.update(r=run_distill(cfg, store, tmp_path / "logs",
                                                                         progress=gate)))
    # The outside client is started first (duckdb imported) and opens the file on a word from the test, so it
    # holds the store from the first step on, long before the run can end.
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time\nsys.stdin.readline()\n"
                               "while True:\n    try:\n"
                               "        c = duckdb.connect(sys.argv[1], read_only=True); break\n"
                               "    except duckdb.IOException: time.sleep(0.01)\n"
                               "print('held', flush=True); sys.stdin.read()", str(store.path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdin is not None and holder.stdout is not None
        worker.start()
        wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 1, 120, "the first step")
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "held"
        held_from = len(metrics.read_text().splitlines())
        held.set()
        wait_for(lambda: len(metrics.read_text().splitlines()) >= 24, 120, "every step in the metrics file")
        released = time.time()
        holder.stdin.close()
        holder.wait(timeout=30)
        worker.join(timeout=120)
    finally:
        held.set()
        holder.kill()
    run = store.runs.get("held")
    # Order, not speed: the run's end was recorded after the client let go (it was held at step 1 until the
    # client was in, so it cannot have ended before).
    assert run is not None and run.heartbeat is not None
    assert held_from < 24 and run.heartbeat >= released, (held_from, run.heartbeat, released)
    assert result["r"].steps == 24 and not result["r"].metrics_pending
    assert [r["step"] for r in train_rows(store, "held")] == list(range(1, 25))


def test_fine_tune_control_and_eval_of_the_adapter(tiny_model: Path, teacher: Path, tmp_path: Path) -> None:
    """The fine-tune preset trains on solutions alone; the adapter loads in `kdtui eval --adapter`, and a
    distilled student shows with its strategy on the leaderboard."""
    from kdtui.config.eval import EvalConfig
    from kdtui.recipes.evaluate import run_eval
    from kdtui.store.reads import leaderboard

    store = Store(tmp_path / "store")
    ft = run_distill(distill_cfg(tiny_model, "ft", preset="fine-tune", data="synthetic", limit=6, max_steps=2,
                                 eval_size=2, eval_every=2, batch_size=2), store, tmp_path / "logs")
    assert ft.adapter is not None and (ft.adapter / "adapter_config.json").is_file()
    # the schedule's eval at the last step is the final eval: computed and logged once
    lines = [json.loads(line) for line in (ft.folder / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if line["split"] == "eval"]
    assert [line["step"] for line in evals] == [2] and evals[0]["loss"] == ft.eval_loss is not None
    assert all(math.isnan(r["kl_full"] or math.nan) and r["divergence"] == 0 for r in train_rows(store, "ft"))
    capture(store, teacher, "c")
    kd = run_distill(distill_cfg(tiny_model, "kd", capture="c", max_steps=2), store, tmp_path / "logs")
    assert kd.adapter is not None
    result = run_eval(EvalConfig.model_validate({"model": str(tiny_model), "adapter": str(kd.adapter),
                                                 "data": "synthetic", "limit": 2, "max_new_tokens": 8,
                                                 "device": "cpu"}), store, tmp_path / "logs")
    assert result.run.endswith("+kd/plain")
    row = next(r for r in leaderboard(store) if r.name == result.run)
    assert row.strategy == "base"


def test_cli_distill_one_line_errors(tiny_model: Path, tmp_path: Path) -> None:
    for args, message in [
        (["distill", "--run", "r", "--student", str(tiny_model)], "give --capture NAME"),
        (["distill", "--run", "r", "--student", str(tiny_model), "--capture", "nope"], "no capture 'nope'"),
        (["distill", "--run", "r", "--student", str(tiny_model), "--preset", "fine-tune"], "give --data"),
        (["distill", "--run", "r", "--student", str(tmp_path / "missing"), "--capture", "c"], "no model at"),
        (["distill", "--run", "r", "--student", str(tiny_model), "--capture", "c", "--alpha", "2"], "--alpha"),
    ]:
        proc = kdtui(*args, "--store", str(tmp_path / "s"))
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_hidden_capture_reconstructs_the_teachers_logits(teacher: Path, tmp_path: Path, dtype: str) -> None:
    """h W^T from the stored head input equals the live teacher's logits within the storage rounding."""
    from kdtui.captures.inspect import hidden_fidelity

    store = Store(tmp_path / "store")
    manifest = capture(store, teacher, "h", mode="answer", format="hidden", value_dtype=dtype)
    assert manifest["head"]["file"] == "head.safetensors" and manifest["span"] == "targets"
    rows = hidden_fidelity(store.root, "h", str(teacher), "hf", sample=6, device="cpu")
    assert [r["temperature"] for r in rows] == [1.0, T]
    limit = 1e-6 if dtype == "float16" else 1e-4  # int8 with a per-token scale keeps ~2 decimal digits
    for row in rows:
        assert row["kl"] <= limit, rows
        assert row["max_abs_dlogit"] <= (1e-2 if dtype == "float16" else 0.1), rows
    hidden_bytes = manifest["shards"][0]["bytes"] / manifest["shards"][0]["n_tokens"]
    assert hidden_bytes < 64 * 2 + 200  # d = 64 fp16 values (+ ids and bookkeeping) per token, not V


@pytest.mark.slow
def test_two_processes_train_like_one_with_double_accumulation(tiny_model: Path, teacher: Path,
                                                                tmp_path: Path) -> None:
    """DDP over 2 CPU processes (gloo) gives the curve of 1 process accumulating 2 batches.

    `kdtui distill --launcher torchrun` (on GPUs `--launcher accelerate`; `accelerate launch --cpu` starts one
    process whatever --num_processes says); the recipe's Accelerator picks the distributed environment up.
    """
    store = Store(tmp_path / "store")
    capture(store, teacher, "c", mode="answer")
    run_distill(distill_cfg(tiny_model, "one", capture="c", grad_accum=2, max_steps=3, lr=1e-3, shuffle=False),
                store, tmp_path / "logs")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    launched = subprocess.run([sys.executable, "-m", "kdtui.cli", "distill", "--launcher", "torchrun",
                               "--num-processes", "2", "--run", "two", "--student", str(tiny_model), "--capture", "c",
                               "--device", "cpu", "--grad-accum", "1", "--max-steps", "3", "--lr", "1e-3",
                               "--no-shuffle", "--lora-dropout", "0", "--store", str(store.root), "--logs",
                               str(tmp_path / "logs")], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=600)
    assert launched.returncode == 0, launched.stderr[-2000:]
    one, two = train_rows(store, "one"), train_rows(store, "two")
    assert [r["step"] for r in two] == [1, 2, 3]  # one runs row, one metrics line per step: rank 0 writes
    for a, b in zip(one, two, strict=True):
        assert a["tokens"] == b["tokens"] and abs(a["loss"] - b["loss"]) <= 1e-5, (a, b)
