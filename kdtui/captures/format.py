"""How captured teacher distributions are stored: compact shards plus a manifest.

``topk`` keeps, per target position, the k most likely token ids with their
log-probabilities normalised over the FULL vocabulary (fp16 or bf16), and the exact
log-normaliser log Z_T = logsumexp(z / T) at every configured temperature (fp32).
With log Z_1 the raw logits of the top-k are recovered (z = logp + log Z_1), so the
tempered top-k probabilities are exact at every stored temperature.  Format 2 also
stores the log of the mass outside the top-k at every temperature, in fp32, computed
from the full logits on the teacher's device: derived as 1 - sum of fp16 values it
rounds to 0 for a peaked teacher (a tail of 1e-4 is below fp16's resolution near 1),
and a KL over it turns infinite.  Format-1 shards (no stored tail) stay readable.
``dense`` keeps full logits. ``hidden`` keeps, per target position, the teacher's head input ``h``
(fp16/bf16, or int8 with a per-token fp32 scale) and, once per capture, the head itself in
``head.safetensors`` (weight, bias, logit scale, soft-capping): logits = h W^T are recovered exactly
at training time, at any temperature, for d values per token instead of V.

Token ids use the fewest bits the vocabulary allows: uint16 below 65,536; above,
the low 16 bits as uint16 plus the high bits as packed bit planes (1 extra bit =
1/8 byte per id for Llama 3's 128,256 tokens), i.e. 4.125 bytes per (id, value).

Each shard is a safetensors file holding CSR tensors (per-example offsets into the
position axis) and format metadata in its header; it is written to a temp file and
renamed, and its size and sha256 go into ``manifest.json`` (also replaced atomically).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtui.errors import KdtuiError

FORMAT_VERSION = "kdtui-capture/2"
READABLE_VERSIONS = ("kdtui-capture/1", FORMAT_VERSION)


# ------------------------------------------------------------------ compression


def compress_topk(logits: torch.Tensor, k: int, temperatures: list[float]) -> dict[str, torch.Tensor]:
    """Top-k and log-normalisers of ``logits`` [n, V] on their own device (GPU stays GPU).

    ``temperatures[0]`` must be 1.0: it anchors the stored log-probabilities.
    """
    z = logits.float()
    lognorm = torch.stack([torch.logsumexp(z / t, dim=-1) for t in temperatures], dim=-1)
    top = torch.topk(z, min(k, z.shape[-1]), dim=-1)
    outside = z.scatter(-1, top.indices, float("-inf"))  # the logits of every token not kept
    log_tail = torch.stack([torch.logsumexp(outside / t, dim=-1) for t in temperatures], dim=-1) - lognorm
    logp = z.log_softmax(dim=-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return {"ids": top.indices, "logprobs": top.values - lognorm[:, :1], "lognorm": lognorm, "log_tail": log_tail,
            "entropy": entropy}


def tempered_topk(logprobs: torch.Tensor, lognorm: torch.Tensor, t_index: int, temperature: float) -> torch.Tensor:
    """Exact log-probabilities of the stored top-k at a stored temperature."""
    z = logprobs.float() + lognorm[:, :1].float()
    return z / temperature - lognorm[:, t_index : t_index + 1].float()


def tail_mass(logprobs: torch.Tensor, lognorm: torch.Tensor, t_index: int, temperature: float) -> torch.Tensor:
    """Probability outside the stored top-k at a stored temperature, as 1 - sum (format-1 shards only).

    Prefer :func:`log_tail_of`: this loses a tail below the values' rounding.
    """
    return (1 - tempered_topk(logprobs, lognorm, t_index, temperature).exp().sum(dim=-1)).clamp(min=0)


def log_tail_of(example: CapturedExample, t_index: int, temperature: float) -> torch.Tensor:
    """Log of the mass outside the stored top-k at a stored temperature: exact (fp32) from a format-2 shard,
    derived as log(1 - sum), floored at 1e-30, from a format-1 one."""
    if example.log_tail is not None:
        return torch.from_numpy(example.log_tail[:, t_index]).float()
    assert example.logprobs is not None and example.lognorm is not None
    return tail_mass(example.logprobs, torch.from_numpy(example.lognorm), t_index, temperature).clamp(min=1e-30).log()


# ------------------------------------------------------------------ id packing


def id_bits(vocab_size: int) -> int:
    return max(1, math.ceil(math.log2(max(vocab_size, 2))))


def pack_ids(ids: np.ndarray, vocab_size: int) -> dict[str, np.ndarray]:
    """Ids as uint16, plus packed high-bit planes when the vocabulary needs more than 16 bits."""
    flat = ids.astype(np.int64).ravel()
    out: dict[str, np.ndarray] = {"lo": (flat & 0xFFFF).astype(np.uint16)}
    for plane in range(id_bits(vocab_size) - 16):
        out[f"hi{plane}"] = np.packbits(((flat >> (16 + plane)) & 1).astype(np.uint8))
    return out


def unpack_ids(parts: dict[str, np.ndarray], count: int) -> np.ndarray:
    ids = parts["lo"].astype(np.int64)
    plane = 0
    while f"hi{plane}" in parts:
        ids |= np.unpackbits(parts[f"hi{plane}"])[:count].astype(np.int64) << (16 + plane)
        plane += 1
    return ids


# --------------------------------------------------------------------- examples


@dataclass
class CapturedExample:
    """One example's teacher context, its targets, and the stored distributions."""

    index: int
    context: list[int]
    target_start: int
    targets: list[int]
    ids: np.ndarray | None = None          # [n, k] (topk)
    logprobs: torch.Tensor | None = None   # [n, k] (topk)
    lognorm: np.ndarray | None = None      # [n, T] (topk)
    log_tail: np.ndarray | None = None     # [n, T] (topk, format 2): log mass outside the top-k, fp32
    logits: torch.Tensor | None = None     # [n, V] (dense)
    hidden: torch.Tensor | None = None     # [n, d] (hidden): the teacher's head input
    entropy: np.ndarray | None = None      # [n]
    text: str = ""


def _value_dtype(name: str) -> torch.dtype:
    if name not in ("float16", "bfloat16", "int8"):
        raise KdtuiError(f"unknown value dtype {name!r}; use float16, bfloat16 or int8 (hidden only)")
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "int8": torch.int8}[name]


def quantize_rows(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: (q, scale) with values ~= q * scale."""
    scale = values.float().abs().amax(dim=-1).clamp(min=1e-30) / 127.0
    return (values.float() / scale[:, None]).round().clamp(-127, 127).to(torch.int8), scale


HEAD_FILE = "head.safetensors"


def write_head(folder: Path, weight: torch.Tensor, bias: torch.Tensor | None = None, logit_scale: float = 1.0,
               softcap: float | None = None) -> dict[str, Any]:
    """The teacher's output head, once per hidden capture; returns its manifest entry."""
    from safetensors.torch import save

    tensors = {"weight": weight.detach().contiguous().cpu()}  # as the teacher computes with it: exact
    if bias is not None:
        tensors["bias"] = bias.detach().float().contiguous().cpu()
    meta = {"logit_scale": repr(float(logit_scale)), "softcap": "" if softcap is None else repr(float(softcap))}
    path = folder / HEAD_FILE
    write_atomic_bytes(path, _canonical(save(tensors, metadata=meta)))
    return {"file": HEAD_FILE, "bytes": path.stat().st_size, "sha256": sha256_file(path),
            "shape": list(weight.shape), "logit_scale": float(logit_scale), "softcap": softcap}


def head_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                logit_scale: float = 1.0, softcap: float | None = None) -> torch.Tensor:
    """Logits from the head input, in fp32 (float64 if given): h W^T (+ b), then the family's transform.

    The one definition of what a hidden capture means, for training, the notebooks' loss and inspect.
    """
    from kdtui.models.heads import LogitTransform

    wide = torch.float64 if torch.float64 in (hidden.dtype, weight.dtype) else torch.float32
    logits = hidden.to(wide) @ weight.to(wide).T
    if bias is not None:
        logits = logits + bias.to(wide)
    return LogitTransform(logit_scale, softcap).apply(logits)


def read_head(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """weight, bias, logit_scale and softcap of a hidden capture's head, checked against its manifest entry."""
    from safetensors.torch import load

    entry = manifest.get("head")
    path = folder / HEAD_FILE
    if entry is None or not path.is_file():
        raise KdtuiError(f"capture {manifest['name']!r} has no {HEAD_FILE}; recapture with --format hidden")
    if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
        raise KdtuiError(f"{path} does not match its manifest entry (size or sha256); recapture")
    tensors = load(path.read_bytes())
    return {"weight": tensors["weight"], "bias": tensors.get("bias"), "logit_scale": float(entry["logit_scale"]),
            "softcap": entry.get("softcap")}


def _ids_tensors(prefix: str, ids: np.ndarray, vocab_size: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}_{name}": torch.from_numpy(array) for name, array in pack_ids(ids, vocab_size).items()}


def encode_shard(examples: list[CapturedExample], fmt: str, vocab_size: int, value_dtype: str,
                 metadata: dict[str, str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of one shard (CSR over target positions)."""
    dtype = _value_dtype(value_dtype)
    counts = [len(e.targets) for e in examples]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ctx_offsets = np.concatenate([[0], np.cumsum([len(e.context) for e in examples])]).astype(np.int64)
    texts = [e.text.encode("utf-8") for e in examples]
    text_offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64)
    tensors: dict[str, torch.Tensor] = {
        "offsets": torch.from_numpy(offsets),
        "example_index": torch.tensor([e.index for e in examples], dtype=torch.int64),
        "target_start": torch.tensor([e.target_start for e in examples], dtype=torch.int32),
        "context_offsets": torch.from_numpy(ctx_offsets),
        "text_offsets": torch.from_numpy(text_offsets),
        "text": torch.frombuffer(bytearray(b"".join(texts) or b"\0"), dtype=torch.uint8),
        "entropy": torch.from_numpy(np.concatenate([e.entropy for e in examples if e.entropy is not None]
                                                   or [np.zeros(0)]).astype(np.float16)),
    }
    tensors |= _ids_tensors("context", np.concatenate([np.asarray(e.context, dtype=np.int64) for e in examples]),
                            vocab_size)
    tensors |= _ids_tensors("targets", np.concatenate([np.asarray(e.targets, dtype=np.int64) for e in examples]),
                            vocab_size)
    if fmt == "topk":
        tensors |= _ids_tensors("topk_ids", np.concatenate([e.ids for e in examples if e.ids is not None]),
                                vocab_size)
        tensors["topk_logprobs"] = torch.cat([e.logprobs for e in examples if e.logprobs is not None]).to(dtype)
        tensors["lognorm"] = torch.from_numpy(np.concatenate([e.lognorm for e in examples if e.lognorm is not None])
                                              .astype(np.float32))
        tails = [e.log_tail for e in examples if e.log_tail is not None]
        if len(tails) != len(examples):
            raise KdtuiError("every example of a format-2 top-k shard needs its log tail (compress_topk gives it)")
        tensors["log_tail"] = torch.from_numpy(np.concatenate(tails).astype(np.float32))
    elif fmt == "hidden":
        hidden = torch.cat([e.hidden for e in examples if e.hidden is not None])
        if dtype == torch.int8:
            tensors["hidden"], tensors["hidden_scale"] = quantize_rows(hidden)
        else:
            tensors["hidden"] = hidden.to(dtype)
    else:
        tensors["logits"] = torch.cat([e.logits for e in examples if e.logits is not None]).to(dtype)
    meta = dict(metadata) | {"format_version": FORMAT_VERSION, "format": fmt, "vocab_size": str(vocab_size),
                             "value_dtype": value_dtype, "n_examples": str(len(examples)),
                             "n_tokens": str(int(offsets[-1]))}
    return {name: t.contiguous() for name, t in tensors.items()}, meta


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _canonical(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header in sorted key order.

    safetensors serialises metadata from a hash map, so two identical captures
    could differ in header byte order; a resumed capture must be byte-identical.
    Data offsets are relative to the end of the header, so they stay valid.
    """
    length = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8:8 + length]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to 8 bytes
    return len(header).to_bytes(8, "little") + header + blob[8 + length:]


def write_shard(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict[str, Any]:
    """Write a shard atomically; returns its manifest entry (file, size, sha256)."""
    from safetensors.torch import save

    write_atomic_bytes(path, _canonical(save(tensors, metadata=meta)))
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path),
            "n_examples": int(meta["n_examples"]), "n_tokens": int(meta["n_tokens"])}


@dataclass
class Shard:
    """A shard read back and verified."""

    meta: dict[str, str]
    tensors: dict[str, torch.Tensor]
    vocab_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.vocab_size = int(self.meta["vocab_size"])

    def _ids(self, prefix: str) -> np.ndarray:
        parts = {name.removeprefix(prefix + "_"): t.numpy() for name, t in self.tensors.items()
                 if name.startswith(prefix + "_")}
        return unpack_ids(parts, parts["lo"].shape[0])

    def examples(self) -> list[CapturedExample]:
        offsets = self.tensors["offsets"].tolist()
        ctx_offsets = self.tensors["context_offsets"].tolist()
        text_offsets = self.tensors["text_offsets"].tolist()
        context, targets = self._ids("context"), self._ids("targets")
        raw_text = self.tensors["text"].numpy().tobytes()
        fmt = self.meta["format"]
        if fmt == "topk":
            n_tokens = offsets[-1]
            topk_ids = self._ids("topk_ids").reshape(n_tokens, -1) if n_tokens else np.zeros((0, 0), np.int64)
        out = []
        for i, index in enumerate(self.tensors["example_index"].tolist()):
            a, b = offsets[i], offsets[i + 1]
            example = CapturedExample(
                index=index, context=context[ctx_offsets[i]:ctx_offsets[i + 1]].tolist(),
                target_start=int(self.tensors["target_start"][i]), targets=targets[a:b].tolist(),
                entropy=self.tensors["entropy"][a:b].float().numpy(),
                text=raw_text[text_offsets[i]:text_offsets[i + 1]].decode("utf-8"),
            )
            if fmt == "topk":
                example.ids = topk_ids[a:b]
                example.logprobs = self.tensors["topk_logprobs"][a:b]
                example.lognorm = self.tensors["lognorm"][a:b].numpy()
                if "log_tail" in self.tensors:  # format 2
                    example.log_tail = self.tensors["log_tail"][a:b].numpy()
            elif fmt == "hidden":
                hidden = self.tensors["hidden"][a:b]
                if "hidden_scale" in self.tensors:
                    hidden = hidden.float() * self.tensors["hidden_scale"][a:b, None]
                example.hidden = hidden
            else:
                example.logits = self.tensors["logits"][a:b]
            out.append(example)
        return out


def read_shard(path: Path, entry: dict[str, Any] | None = None) -> Shard:
    """Load a shard, checking size and sha256 against its manifest entry."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not path.is_file():
        raise KdtuiError(f"missing capture shard {path}; rerun the capture to rebuild it")
    if entry is not None:
        size = path.stat().st_size
        if size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise KdtuiError(f"corrupt capture shard {path} ({size} bytes, checksum mismatch); delete it and rerun "
                             "the same capture to recreate it")
    data = path.read_bytes()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + header_len]).get("__metadata__", {})
    except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise KdtuiError(f"corrupt capture shard {path} ({exc}); delete it and rerun the same capture") from None
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise KdtuiError(f"{path} is not a kdtui capture shard (format {meta.get('format_version')!r})")
    return Shard(meta, tensors)
