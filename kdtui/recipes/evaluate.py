"""Evaluation recipe: a model answers GSM8K, answers are extracted, predictions land in the store.

Setup (config, data, what is already done) -> loop (batched generation, extraction,
a store write per batch) -> cleanup (the run lifecycle flushes and records the
status).  A rerun with the same run name resumes: only items missing from the
store are generated; a changed setup (the config's identity) is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdtui import __version__
from kdtui.config.eval import EvalConfig
from kdtui.config.names import safe_run_name
from kdtui.data.gsm8k import Problem, load_problems
from kdtui.data.prompts import PromptTemplate, get_prompt
from kdtui.errors import KdtuiError
from kdtui.extract import answers_match, extract_answer
from kdtui.models.loading import (
    LoadedModel,
    adapter_info,
    check_model_path,
    end_token_ids,
    finish_response,
    load_model,
)
from kdtui.recipes.lifecycle import run_lifecycle
from kdtui.store import StoreAccess


@dataclass
class EvalProgress:
    """Where an evaluation stands; sent after every batch."""

    run: str
    done: int
    total: int
    new_tokens: int
    elapsed: float
    resumed_from: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def items_per_s(self) -> float:
        fresh = self.done - self.resumed_from
        return fresh / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.items_per_s
        return (self.total - self.done) / rate if rate > 0 else None


@dataclass
class EvalResult:
    run: str
    run_id: int
    n: int
    generated: int
    new_tokens: int
    seconds: float
    warnings: dict[str, int] = field(default_factory=dict)


ProgressFn = Callable[[EvalProgress], None]


def default_run_name(cfg: EvalConfig) -> str:
    model = Path(cfg.model).name or cfg.model
    trained = adapter_info(cfg.adapter).get("run")  # a kdtui adapter is named by its distill run
    adapter = f"+{trained or Path(cfg.adapter).name}" if cfg.adapter else ""
    return safe_run_name(f"{model}{adapter}/{cfg.prompt}")


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def generate_batch(loaded: LoadedModel, prompts: list[str], cfg: EvalConfig, max_new_tokens: int,
                   add_special_tokens: bool, max_input_tokens: int | None = None) -> list[tuple[str, int, str]]:
    """Generate for a batch of prompts: (response, new tokens, finish reason) each.

    Prompts longer than ``max_input_tokens`` lose their beginning (the question's end and the
    generation prompt are what the model must see).
    """
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    tokenizer.truncation_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens,
                    truncation=max_input_tokens is not None, max_length=max_input_tokens)
    enc = {k: v.to(loaded.device) for k, v in enc.items()}
    end_ids = end_token_ids(model.generation_config.eos_token_id, tokenizer)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p}
        if cfg.do_sample else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    with torch.inference_mode():
        output = model.generate(
            **enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=end_ids or None, **sampling,
        )
    return [finish_response(tokens, end_ids, tokenizer) for tokens in output[:, enc["input_ids"].shape[1]:].tolist()]


def input_budget(context: Any, max_new_tokens: int) -> int | None:
    """How many prompt tokens fit beside the generation budget in the model's context (None: no limit known)."""
    if not isinstance(context, int):
        return None
    if context <= max_new_tokens:
        raise KdtuiError(f"--max-new-tokens {max_new_tokens} leaves no room for the prompt in the model's context "
                         f"of {context} tokens; lower it")
    return context - max_new_tokens


def prediction_row(problem: Problem, prompt: str, response: str, n_new_tokens: int,
                   finish_reason: str, protocol: str) -> dict[str, Any]:
    extraction = extract_answer(response, protocol, question=problem.question, finish_reason=finish_reason)
    return {
        "item_id": problem.item_id,
        "question": problem.question,
        "gold": problem.gold,
        "prompt": prompt,
        "response": response,
        "n_new_tokens": n_new_tokens,
        "finish_reason": finish_reason,
        "value": extraction.value,
        "rule": extraction.rule,
        "needs_review": extraction.needs_review,
        "correct": answers_match(extraction.value, problem.gold),
        "candidates": extraction.candidates,
        "protocol": protocol,
        "kdtui_version": __version__,
        "kind": extraction.kind,
        "reason": extraction.reason,
    }


Generate = Callable[[list[str], "int | None", int], list[tuple[str, int, str]]]


def _engine(cfg: EvalConfig, max_new_tokens: int, add_special_tokens: bool) -> tuple[Generate, Any, Any]:
    """The engine's generate(prompts, input budget, batch index), its tokenizer and its context length."""
    if cfg.engine == "vllm":
        from kdtui.models.vllm_engine import VllmEngine

        engine = VllmEngine(cfg.model, cfg.adapter, cfg.dtype, cfg.tensor_parallel, cfg.gpu_memory, cfg.seed,
                            max_new_tokens)
        return (lambda prompts, budget, index: engine.generate(
            prompts, add_special_tokens, budget, cfg.do_sample, cfg.temperature, cfg.top_p,
            cfg.seed + index * cfg.batch_size), engine.tokenizer, engine.context)
    loaded = load_model(cfg.model, cfg.adapter, cfg.device, cfg.dtype)
    return (lambda prompts, budget, index: generate_batch(loaded, prompts, cfg, max_new_tokens, add_special_tokens,
                                                          max_input_tokens=budget),
            loaded.tokenizer, getattr(loaded.model.config, "max_position_embeddings", None))


def run_eval(cfg: EvalConfig, store: StoreAccess, logs: Path, progress: ProgressFn | None = None,
             should_stop: Callable[[], bool] | None = None) -> EvalResult:
    """Evaluate ``cfg`` into ``store``; resumable by run name."""
    # -- setup: everything that can fail on bad input fails before the run is registered (the lifecycle
    # then refuses a changed setup before it touches the runs row)
    check_model_path(cfg.model, cfg.adapter)
    if cfg.strategy is None and adapter_info(cfg.adapter).get("strategy"):
        # A distilled student shows on the leaderboard with the strategy its teacher was prompted with.
        cfg = cfg.model_copy(update={"strategy": adapter_info(cfg.adapter)["strategy"]})
    prompt: PromptTemplate = get_prompt(cfg.prompt, Path(cfg.prompts_file) if cfg.prompts_file else None)
    max_new_tokens = cfg.max_new_tokens or prompt.max_new_tokens
    if cfg.engine == "vllm":
        from kdtui.models.vllm_engine import check_vllm

        check_vllm()
    problems = load_problems(cfg.data, cfg.limit, cfg.offset, cfg.split, cfg.data_config)
    name = cfg.run or default_run_name(cfg)
    start = time.monotonic()
    with run_lifecycle(store, cfg, name=name, kind="eval", logs=logs, should_stop=should_stop) as run:
        done = store.predictions.done_items(run.run_id)
        todo = [p for p in problems if p.item_id not in done]
        state = EvalProgress(name, len(problems) - len(todo), len(problems), 0, 0.0, len(problems) - len(todo))
        if not todo:
            return EvalResult(name, run.run_id, len(problems), 0, 0, 0.0)
        generate, tokenizer, context = _engine(cfg, max_new_tokens, add_special_tokens=not prompt.chat)
        texts = {p.item_id: prompt.render(p.question, tokenizer) for p in todo}
        # Similar lengths in one batch waste less compute on padding.
        lengths = {k: len(tokenizer(v, add_special_tokens=not prompt.chat)["input_ids"]) for k, v in texts.items()}
        todo.sort(key=lambda p: lengths[p.item_id])
        budget = input_budget(context, max_new_tokens)
        overlong = [k for k, n in lengths.items() if budget is not None and n > budget]
        if overlong and cfg.overlong == "refuse":
            raise KdtuiError(f"{len(overlong)} prompts are longer than the model's context leaves for them ({budget} "
                             f"tokens with --max-new-tokens {max_new_tokens}), e.g. {overlong[0]}; use --overlong "
                             "truncate, or a smaller --max-new-tokens")
        run.warn("inputs_truncated", len(overlong))
        if progress:
            progress(state)

        # -- loop: a store write per batch; the writer keeps rows the store cannot take yet
        import torch

        for index, batch in enumerate(_batches(todo, cfg.batch_size)):
            if run.should_stop():
                break
            if cfg.do_sample:
                torch.manual_seed(cfg.seed + index)
            prompts = [texts[p.item_id] for p in batch]
            outputs = generate(prompts, budget, index)
            run.predictions.add([prediction_row(p, t, *out, cfg.protocol)
                                 for p, t, out in zip(batch, prompts, outputs, strict=True)])
            state.done += len(batch)
            state.new_tokens += sum(out[1] for out in outputs)
            state.elapsed = time.monotonic() - start
            if progress:
                progress(state)
    # -- cleanup happened on leaving the lifecycle: rows flushed (or spilled), status recorded
    return EvalResult(name, run.run_id, len(problems), state.done - state.resumed_from, state.new_tokens,
                      time.monotonic() - start, dict(run.warnings))
