"""GSM8K-format problems from the hub, a local file, or the synthetic generator."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from kdtui.data import synthetic
from kdtui.errors import KdtuiError, first_line
from kdtui.extract import gold_answer
from kdtui.jsonl import jsonl_objects

SYNTHETIC = "synthetic"
SYNTHETIC_SIZE = 1000
HUB_HOST = "huggingface.co"


@dataclass(frozen=True)
class Problem:
    """One question with its gold answer; ``item_id`` is stable across reruns."""

    item_id: str
    question: str
    gold: float
    solution: str


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub answers at all (a quick TCP connect)."""
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _check_jsonl(path: Path) -> None:
    """Name the first malformed line: datasets' own error does not."""
    with path.open(encoding="utf-8") as fh:
        for line_no, record in jsonl_objects(fh, str(path)):
            if "question" not in record or "answer" not in record:
                raise KdtuiError(f"{path}:{line_no}: needs 'question' and 'answer' fields (GSM8K format)")


def _from_records(records: list[dict[str, str]], prefix: str, offset: int, source: str) -> list[Problem]:
    problems = []
    for index, record in enumerate(records, start=offset):
        for key in ("question", "answer"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise KdtuiError(f"{source} item {index}: {key!r} must be non-empty text, got "
                                 f"{'null' if value is None else type(value).__name__}; fix or drop that item")
        try:
            gold = gold_answer(str(record["answer"]))
        except (KeyError, ValueError) as exc:
            raise KdtuiError(f"{source} item {index}: {exc}; GSM8K answers end in '#### N'") from None
        problems.append(Problem(f"{prefix}{index}", str(record["question"]), gold, str(record["answer"])))
    return problems


def load_problems(data: str, limit: int | None = None, offset: int = 0,
                  split: str = "test", config: str = "main") -> list[Problem]:
    """Problems ``offset .. offset+limit`` of a data source.

    ``data`` is ``synthetic`` (or ``synthetic:SEED``, or ``synthetic:SEED:STEPS`` for problems of one
    size), a local ``.json``/``.jsonl``
    file with ``question``/``answer`` fields, or a ``datasets`` hub id.
    """
    if offset < 0 or (limit is not None and limit < 0):
        raise KdtuiError("--limit and --offset must not be negative")
    stop = None if limit is None else offset + limit
    if data == SYNTHETIC or data.startswith(SYNTHETIC + ":"):
        parts = data.split(":")[1:]
        bad_steps = len(parts) == 2 and parts[1] not in ("1", "2", "3")
        if len(parts) > 2 or not all(p.isdigit() for p in parts) or bad_steps:
            raise KdtuiError(f"--data {data}: the synthetic seed must be a whole number and STEPS 1-3 (synthetic, "
                             "synthetic:SEED or synthetic:SEED:STEPS), e.g. synthetic:7 or synthetic:0:1")
        seed = int(parts[0]) if parts else 0
        steps = int(parts[1]) if len(parts) == 2 else None
        # A fixed-size set, made lazily: only the requested slice is generated, whatever --limit says.
        end = SYNTHETIC_SIZE if stop is None else min(stop, SYNTHETIC_SIZE)
        made = (synthetic.problem(i, seed, steps) for i in range(offset, end))
        records = [{"question": p.question, "answer": p.answer} for p in made]
        prefix = f"synthetic-{seed}/" if steps is None else f"synthetic-{seed}-{steps}step/"
        problems = _from_records(records, prefix, offset, "synthetic")
    else:
        import datasets

        datasets.disable_progress_bars()
        path = Path(data).expanduser()
        if path.suffix in (".json", ".jsonl") or path.exists():
            if not path.is_file():
                raise KdtuiError(f"no such data file: {path}")
            if path.stat().st_size == 0:
                raise KdtuiError(f"no problems to evaluate: {path} is empty")
            if path.suffix == ".jsonl":
                _check_jsonl(path)
            try:
                dataset = datasets.load_dataset("json", data_files=str(path), split="train")
            except Exception as exc:  # datasets raises many types for unreadable files
                raise KdtuiError(f"cannot read {path} as GSM8K JSON: {first_line(exc)}") from None
            prefix = f"{path.stem}/"
        else:
            try:
                dataset = datasets.load_dataset(data, config, split=split)
            except Exception as exc:
                raise KdtuiError(
                    f"cannot load dataset {data!r} ({type(exc).__name__}); offline? "
                    "use --data FILE.jsonl or --data synthetic"
                ) from None
            prefix = f"{split}/"
        missing = {"question", "answer"} - set(dataset.column_names)
        if missing:
            raise KdtuiError(f"{data}: missing field(s) {', '.join(sorted(missing))} (GSM8K format)")
        end = len(dataset) if stop is None else min(stop, len(dataset))
        records = dataset.select(range(min(offset, end), end)).to_list()
        problems = _from_records(records, prefix, offset, data)
    if not problems:
        raise KdtuiError(f"no problems to evaluate in {data!r} (offset {offset}, limit {limit})")
    return problems
