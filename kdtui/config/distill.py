"""The distillation recipe's config (``kdtui distill`` flags, the ``[distill]`` TOML table, the run's identity).

A preset fills every field it names; a TOML table overrides the preset and flags override both:

* ``study`` — what the study meant: aligned KD (the student reads the question without the strategy
  prefix, the loss sits at the capture's target tokens), reverse KL, the study's alpha and T, SGD with
  momentum, cosine, 2 epochs, LoRA r4/alpha8/0.1 on q,k,v,o;
* ``study-literal`` — what the study's notebooks did, bugs included (see ``kdtui/kd/literal.py``);
* ``fine-tune`` — the control: cross-entropy on the reference solutions, same LoRA and optimiser.

(The ``no-distil`` control is the base model itself: ``kdtui eval --model STUDENT``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator

from kdtui.config.base import RecipeConfig
from kdtui.config.names import check_capture_name, check_run_name
from kdtui.config.study import STUDY_ALPHA, STUDY_TEMPERATURE
from kdtui.errors import KdtuiError

ID: dict[str, Any] = {"identity": True}
Preset = Literal["study", "study-literal", "fine-tune"]
# A top-k capture must keep this much of the teacher's tempered mass at the training T: below it the KD term
# compares tail buckets (at T = 5.94, top-64 keeps 0.2-0.9% of a 128k vocabulary and its bucketed KL is
# 110-470x below the full one).
KEPT_MASS_FLOOR = 0.9
DEFAULT_LORA_DROPOUT = 0.1
# The notebooks' LoRA dropout by strategy: base-KD/distill.ipynb has 0.2; ai-KD, teacher-KD, reverseKL-KD (the
# double-check strategy) and base-fine-tune have 0.1.
NOTEBOOK_LORA_DROPOUT = {"base": 0.2}

PRESETS: dict[str, dict[str, Any]] = {
    "study": {"loss": "reverse_kl", "alpha": STUDY_ALPHA, "temperature": STUDY_TEMPERATURE, "optimizer": "sgd",
              "lr": 5e-6, "momentum": 0.9, "weight_decay": 0.01, "schedule": "cosine", "epochs": 2,
              "batch_size": 1, "shuffle": True},
    # The notebook: one example per step in file order, CosineAnnealingLR(T_max = steps per epoch).
    "study-literal": {"loss": "reverse_kl", "alpha": STUDY_ALPHA, "temperature": STUDY_TEMPERATURE,
                      "optimizer": "sgd", "lr": 5e-6, "momentum": 0.9, "weight_decay": 0.01,
                      "schedule": "study-cosine", "epochs": 2, "batch_size": 1, "grad_accum": 1, "shuffle": False,
                      "max_length": 256, "data_config": "socratic"},
    "fine-tune": {"alpha": 1.0, "optimizer": "sgd", "lr": 5e-6, "momentum": 0.9, "weight_decay": 0.01,
                  "schedule": "cosine", "epochs": 2, "batch_size": 1, "shuffle": True},
}


class DistillConfig(RecipeConfig):
    """One distillation (or fine-tuning) run of a student."""

    TOML_TABLE: ClassVar[str] = "distill"

    run: str = Field(description="Run name in the store; its files go to store/distill/. The same name resumes "
                     "with --resume.")
    student: str = Field(description="Student: a transformers causal-LM folder.", json_schema_extra=ID)
    preset: Preset = Field("study", description="study (aligned KD with the study's settings), study-literal "
                           "(the notebooks' code exactly) or fine-tune (CE on reference solutions).",
                           json_schema_extra=ID)
    capture: str | None = Field(None, description="Teacher capture name (store/captures/NAME); not for fine-tune.",
                                json_schema_extra=ID)
    data: str | None = Field(None, description="GSM8K source for fine-tune (hub id, .jsonl, synthetic); "
                             "study-literal reads its questions and labels from it when given (else from the "
                             "capture's source); study reads the capture's own.", json_schema_extra=ID)
    data_config: str = Field("main", description="Hub dataset config of the labels: fine-tune's and study-literal's "
                             "(the notebooks used socratic; study-literal's default).", json_schema_extra=ID)
    split: str = Field("train", description="Hub split (fine-tune).", json_schema_extra=ID)
    limit: int | None = Field(None, ge=1, description="Train on at most this many examples.", json_schema_extra=ID)
    loss: Literal["forward_kl", "reverse_kl", "jsd", "tv", "skew_kl"] = Field(
        "reverse_kl", description="Divergence D in alpha*CE + (1-alpha)*D*T^2.", json_schema_extra=ID)
    alpha: float = Field(STUDY_ALPHA, ge=0, le=1, description="Weight of the cross-entropy part.",
                         json_schema_extra=ID)
    temperature: float = Field(STUDY_TEMPERATURE, gt=0, description="Distillation temperature T (a top-k capture "
                               "must have stored it).", json_schema_extra=ID)
    beta: float = Field(0.5, gt=0, lt=1, description="JSD mixing weight.", json_schema_extra=ID)
    skew: float = Field(0.1, ge=0, lt=1, description="Skew-KL mixing weight.", json_schema_extra=ID)
    allow_lossy_targets: bool = Field(False, description="Train on a top-k capture that keeps under "
                                      f"{KEPT_MASS_FLOOR:.0%} of the teacher's mass at --temperature (refused "
                                      "otherwise); the choice is part of the run's identity.", json_schema_extra=ID)
    lora: bool = Field(True, description="Train a LoRA adapter (off: full fine-tuning).", json_schema_extra=ID)
    lora_r: int = Field(4, ge=1, description="LoRA rank.", json_schema_extra=ID)
    lora_alpha: int = Field(8, ge=1, description="LoRA scaling alpha (the update is scaled by alpha / r).",
                            json_schema_extra=ID)
    lora_dropout: float | None = Field(None, ge=0, lt=1, description="Dropout on the LoRA path (default "
                                       f"{DEFAULT_LORA_DROPOUT}; study-literal: as the strategy's notebook had it, "
                                       "base-KD 0.2, the others 0.1).", json_schema_extra=ID)
    lora_targets: str = Field("q_proj,k_proj,v_proj,o_proj", description="Comma-separated module names for LoRA.",
                              json_schema_extra=ID)
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="Optimiser.", json_schema_extra=ID)
    lr: float = Field(5e-6, gt=0, description="Peak learning rate.", json_schema_extra=ID)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.", json_schema_extra=ID)
    weight_decay: float = Field(0.01, ge=0, description="Weight decay on trained parameters (the study: 1e-2 "
                                "on LoRA).", json_schema_extra=ID)
    schedule: Literal["cosine", "linear", "constant", "study-cosine"] = Field(
        "cosine", description="LR schedule over all steps after warmup; study-cosine: torch's CosineAnnealingLR "
        "with T_max = steps per epoch, continued into later epochs as the notebooks did.", json_schema_extra=ID)
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps.", json_schema_extra=ID)
    epochs: int = Field(2, ge=1, description="Passes over the training examples.", json_schema_extra=ID)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimiser steps.",
                                  json_schema_extra=ID)
    batch_size: int = Field(1, ge=1, description="Sequences per micro-batch.", json_schema_extra=ID)
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimiser step.", json_schema_extra=ID)
    max_grad_norm: float | None = Field(None, gt=0, description="Clip the gradient norm (default: no clipping).",
                                        json_schema_extra=ID)
    shuffle: bool = Field(True, description="Shuffle examples each epoch (seeded).", json_schema_extra=ID)
    max_length: int = Field(1024, ge=8, description="Student tokens per sequence (longer ones are cut at the "
                            "end; study-literal: the notebooks' truncation).", json_schema_extra=ID)
    chunk: int = Field(256, ge=1, description="Tokens per chunk of the fused loss (peak memory ~ chunk x vocab).")
    eval_size: int = Field(0, ge=0, description="Hold out this many examples for an eval loss.",
                           json_schema_extra=ID)
    eval_every: int = Field(0, ge=0, description="Eval loss every N optimiser steps (0: only at the end).")
    checkpoint_every: int = Field(50, ge=1, description="Checkpoint every N optimiser steps.")
    keep_checkpoints: int = Field(3, ge=1, description="Checkpoints kept (the oldest are deleted).")
    resume: bool = Field(False, description="Continue from the run's last checkpoint.")
    merge: bool = Field(False, description="Also save the adapter merged into the student (a full model).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward (less memory).")
    seed: int = Field(0, description="Seed for data order, LoRA init and dropout.", json_schema_extra=ID)
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1' (accelerate launch places ranks "
                        "itself).")
    launcher: Literal["none", "accelerate", "torchrun"] = Field(
        "none", description="Run under several processes: accelerate (GPUs, with --launcher-config) or torchrun "
        "(CPU with gloo, or GPUs).")
    num_processes: int = Field(2, ge=1, description="Processes for --launcher (one per GPU).")
    launcher_config: Literal["ddp", "fsdp"] = Field("ddp", description="accelerate config preset "
                                                     "(kdtui/presets/accelerate/).")
    dtype: str = Field("auto", description="'auto' (bf16 on GPU, fp32 on CPU), 'float32', 'bfloat16'.",
                       json_schema_extra=ID)

    @field_validator("run")
    @classmethod
    def _run_name(cls, value: str) -> str:
        return check_run_name(value)

    @field_validator("capture")
    @classmethod
    def _capture_name(cls, value: str | None) -> str | None:
        return None if value is None else check_capture_name(value)

    @property
    def targets(self) -> list[str]:
        return [t.strip() for t in self.lora_targets.split(",") if t.strip()]

    def effective_lora_dropout(self, strategy: str | None) -> float:
        """The dropout this run trains with: the flag, else study-literal's notebook value for the capture's
        strategy, else the default."""
        if self.lora_dropout is not None:
            return self.lora_dropout
        if self.preset == "study-literal" and strategy is not None:
            return NOTEBOOK_LORA_DROPOUT.get(strategy, DEFAULT_LORA_DROPOUT)
        return DEFAULT_LORA_DROPOUT

    @property
    def distils(self) -> bool:
        """Whether a teacher takes part (fine-tune, or alpha = 1, is cross-entropy alone)."""
        return self.preset != "fine-tune" and self.alpha < 1.0

    @classmethod
    def preset_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        preset = chosen.get("preset", "study")
        if preset not in PRESETS:
            raise KdtuiError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        return PRESETS[preset]

    @classmethod
    def from_sources(cls, flags: dict[str, Any], toml_path: str | Path | None = None) -> Self:
        """Preset values, then the ``[distill]`` TOML table, then explicit flags; then the checks across fields."""
        cfg = super().from_sources(flags, toml_path)
        if cfg.preset != "fine-tune" and cfg.capture is None:
            raise KdtuiError(f"--preset {cfg.preset} distils from a teacher capture: give --capture NAME "
                             "(or --preset fine-tune)")
        if cfg.preset == "fine-tune" and cfg.data is None:
            raise KdtuiError("--preset fine-tune trains on reference solutions: give --data (hub id, .jsonl or "
                             "synthetic)")
        if cfg.preset == "study-literal" and (cfg.batch_size != 1 or cfg.grad_accum != 1):
            raise KdtuiError("--preset study-literal is the notebooks' one-example step: keep --batch-size 1 and "
                             "--grad-accum 1")
        return cfg
