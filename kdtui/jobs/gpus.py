"""GPUs for jobs: what NVML reports, and which free cards a job gets.

NVML (``nvidia-ml-py``) is read at the boundary only, each time a job is placed, so memory held by a
killed job's leftovers counts; the assignment itself is a pure function over a device table (tests
inject one).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_FREE_FRACTION = 0.9  # a card with less than 90% of its memory free is still in use by someone


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str
    total_mb: float
    free_mb: float


def nvml_devices() -> list[GpuInfo]:
    """Every visible NVIDIA GPU with its free memory now; [] without NVML or a driver."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: a CPU machine
        return []
    try:
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            out.append(GpuInfo(index, uuid if isinstance(uuid, str) else uuid.decode(), memory.total / 2**20,
                               memory.free / 2**20))
        return out
    finally:
        pynvml.nvmlShutdown()


def assign(request: int, devices: list[GpuInfo], allowed: list[int] | None, busy: set[str]) -> list[GpuInfo] | None:
    """``request`` cards for a job: allowed, not held by a running job, and really free (by NVML), lowest
    index first; None when they are not all available now (the job waits, it never shares a card)."""
    if request == 0:
        return []
    free = [d for d in devices if (allowed is None or d.index in allowed) and d.uuid not in busy
            and d.free_mb >= MIN_FREE_FRACTION * d.total_mb]
    return free[:request] if len(free) >= request else None


def cuda_env(cards: list[GpuInfo]) -> dict[str, str]:
    """The environment that shows a job exactly its cards, by UUID, in PCI bus order."""
    if not cards:
        return {"CUDA_VISIBLE_DEVICES": ""}
    return {"CUDA_VISIBLE_DEVICES": ",".join(c.uuid for c in cards), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
