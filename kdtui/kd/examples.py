"""Training examples for the student, built from a teacher capture or from reference solutions.

Aligned KD (``study``): the teacher read ``strategy prefix + question (+ solution)`` and the capture
holds its distributions at the target tokens. The student reads the same targets after its own
context, the question *without* the strategy prefix, so logits at the student's position
``target_pos + j`` and the teacher's row ``j`` predict the same token ``labels[j]``.

Literal (``study-literal``): what the notebooks computed, bugs included: the student reads the bare
question (BOS, truncated to 256 tokens), the labels are the reference solution's ids *with* BOS and
*unshifted*, and the teacher rows are the first positions of its prompt (a ``--span all`` capture);
all three are cut to the shortest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtui.captures.format import CapturedExample, log_tail_of, read_shard, tempered_topk
from kdtui.captures.manifest import CaptureFolder
from kdtui.data.gsm8k import Problem, load_problems
from kdtui.data.strategies import Strategy, target_start
from kdtui.errors import KdtuiError


@dataclass
class TeacherRows:
    """The teacher's view of one example's target positions (one of the three forms is set)."""

    topk_ids: torch.Tensor | None = None      # [n, k] int64
    topk_logprobs: torch.Tensor | None = None  # [n, k] fp32, tempered at the run's T
    log_tail: torch.Tensor | None = None      # [n] fp32, tempered
    logits: torch.Tensor | None = None        # [n, V] (dense, T = 1)
    hidden: torch.Tensor | None = None        # [n, d] (hidden)

    def _slice(self, part: slice) -> TeacherRows:
        return TeacherRows(*(None if t is None else t[part] for t in (self.topk_ids, self.topk_logprobs,
                                                                      self.log_tail, self.logits, self.hidden)))

    def head(self, n: int) -> TeacherRows:
        """The first ``n`` rows."""
        return self._slice(slice(0, n))

    def tail(self, skip: int) -> TeacherRows:
        """Every row after the first ``skip``."""
        return self._slice(slice(skip, None))


@dataclass
class TrainItem:
    """One student sequence: ``input_ids``, where its predicted targets begin, the targets, the teacher."""

    index: int
    input_ids: list[int]
    target_pos: int      # logits at target_pos + j predict labels[j] (aligned); literal: labels unshifted from 0
    labels: list[int]
    teacher: TeacherRows | None = None

    @property
    def n_targets(self) -> int:
        return len(self.labels)


def split_ids(tokenizer: Any, before: str, full: str) -> tuple[list[int], int]:
    """Ids of ``full`` (with BOS) and where the part after ``before`` begins (boundary tokens go after)."""
    ids = list(tokenizer(full, add_special_tokens=True)["input_ids"])
    head = list(tokenizer(before, add_special_tokens=True)["input_ids"]) if before else None
    return ids, target_start(head, ids)


def student_context(strategy: Strategy, question: str, mode: str, tokenizer: Any) -> list[int]:
    """The student's ids before the targets: the capture's context with the strategy (prefix, system turn) removed."""
    plain = Strategy(name="student", chat=strategy.chat, system=None)
    before, context = plain.context(question, tokenizer)
    # prompt mode: the targets are the question itself; answer mode: the solution after "question\n".
    text = {"prompt": before, "answer": context + "\n"}.get(mode, context)
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def capture_problems(manifest: dict[str, Any]) -> dict[int, Problem]:
    """The GSM8K problems a capture read, by example index."""
    data = manifest["dataset"]
    problems = load_problems(data["data"], data.get("limit"), data.get("offset", 0), data.get("split", "train"))
    return {data.get("offset", 0) + i: p for i, p in enumerate(problems)}


def captured_examples(root: Path, name: str) -> tuple[dict[str, Any], list[CapturedExample]]:
    """A finished capture's manifest and every example, shards checked against the manifest."""
    folder = CaptureFolder(root, name)
    manifest = folder.load_manifest()
    if manifest is None:
        from kdtui.captures.manifest import known_captures

        raise KdtuiError(f"no capture {name!r} in {root / 'captures'}; known: "
                         f"{', '.join(known_captures(root)) or 'none'}")
    examples = [e for entry in manifest["shards"]
                for e in read_shard(folder.path / entry["file"], entry).examples()]
    return manifest, examples


def teacher_rows(example: CapturedExample, manifest: dict[str, Any], temperature: float,
                 head: dict[str, torch.Tensor] | None = None) -> TeacherRows:
    """The stored distributions of one example, as the loss wants them at ``temperature``."""
    fmt = manifest["format"]
    if fmt == "topk":
        temps = [float(t) for t in manifest["temperatures"]]
        match = [i for i, t in enumerate(temps) if abs(t - temperature) <= 1e-9 * max(1.0, t)]
        if not match:
            raise KdtuiError(f"capture {manifest['name']!r} stored temperatures {temps}, not {temperature}; a top-k "
                             "capture is exact only at its stored temperatures: use one of them, or a dense/hidden "
                             "capture")
        assert example.ids is not None and example.logprobs is not None and example.lognorm is not None
        index = match[0]
        lognorm = torch.from_numpy(np.asarray(example.lognorm))
        return TeacherRows(topk_ids=torch.from_numpy(example.ids).long(),
                           topk_logprobs=tempered_topk(example.logprobs, lognorm, index, temps[index]),
                           log_tail=log_tail_of(example, index, temps[index]))
    if fmt == "dense":
        assert example.logits is not None
        return TeacherRows(logits=example.logits)
    if fmt == "hidden":
        assert example.hidden is not None
        return TeacherRows(hidden=example.hidden)
    raise KdtuiError(f"capture {manifest['name']!r} has format {fmt!r}, which this kdtui cannot train from")


def aligned_items(manifest: dict[str, Any], examples: list[CapturedExample], tokenizer: Any, temperature: float,
                  max_length: int, strategy: Strategy) -> list[TrainItem]:
    """Aligned KD items: student context without the strategy prefix, then the capture's targets."""
    if manifest.get("span", "targets") != "targets":
        raise KdtuiError(f"capture {manifest['name']!r} stores every position (--span all), the notebooks' "
                         "alignment: use --preset study-literal with it, or capture with --span targets")
    problems = capture_problems(manifest)
    items = []
    for example in examples:
        if not example.targets:
            continue
        problem = problems.get(example.index)
        if problem is None:
            raise KdtuiError(f"capture {manifest['name']!r} example {example.index} is not in its dataset "
                             f"{manifest['dataset']['data']!r} any more; recapture")
        context = student_context(strategy, problem.question, manifest["mode"], tokenizer)
        labels, rows = list(example.targets), teacher_rows(example, manifest, temperature)
        if not context:  # no BOS and nothing before the targets: the first target only starts the student off
            context, labels, rows = labels[:1], labels[1:], rows.tail(1)
        room = max_length - len(context) + 1
        if room < 1 or not labels:
            continue
        labels = labels[:room]
        items.append(TrainItem(example.index, context + labels[:-1], len(context) - 1, labels,
                               rows.head(len(labels))))
    return items


def literal_items(manifest: dict[str, Any], examples: list[CapturedExample], tokenizer: Any,
                  max_length: int, labelled: dict[int, Problem] | None = None) -> list[TrainItem]:
    """The notebooks' items: bare question in, solution ids (with BOS, unshifted) as labels, teacher prompt rows.

    ``labelled`` (by example index) is where questions and solutions are read, as the notebooks read GSM8K
    "socratic" while their teacher had read "main"; the capture's own problems where not given.
    """
    if manifest.get("span", "targets") != "all":
        raise KdtuiError(f"--preset study-literal pairs the student with the teacher's first prompt positions: it "
                         f"needs a capture made with --span all (capture {manifest['name']!r} has targets only)")
    if manifest["format"] == "topk":
        raise KdtuiError("--preset study-literal uses the full teacher distribution: capture with --format dense or "
                         "hidden")
    problems = labelled if labelled is not None else capture_problems(manifest)
    read = capture_problems(manifest) if labelled is not None else problems
    items = []
    for example in examples:
        problem = problems.get(example.index)
        if problem is None or problem.question.strip() != read[example.index].question.strip():
            raise KdtuiError(f"the labels' source has {'no' if problem is None else 'another'} question at "
                             f"example {example.index} of capture {manifest['name']!r}; give --data the capture's "
                             "questions in the same order (GSM8K socratic has main's questions)")
        question = list(tokenizer(problem.question, truncation=True, max_length=max_length)["input_ids"])
        labels = list(tokenizer(problem.solution, truncation=True, max_length=max_length)["input_ids"])
        rows = teacher_rows(example, manifest, 1.0)
        n = min(len(question), len(labels), len(example.targets))
        items.append(TrainItem(example.index, question, 0, labels[:n], rows.head(n)))
    return items


def fine_tune_items(problems: list[Problem], tokenizer: Any, max_length: int) -> list[TrainItem]:
    """CE items: question, newline, reference solution; the loss on the solution's tokens (and EOS)."""
    items = []
    eos = tokenizer.eos_token_id
    for i, problem in enumerate(problems):
        before = problem.question + "\n"
        ids, start = split_ids(tokenizer, before, before + problem.solution)
        if eos is not None:
            ids.append(eos)
        ids = ids[:max_length + 1]
        if start >= len(ids):
            continue
        items.append(TrainItem(i, ids[:-1], start - 1, ids[start:]))
    return items
