"""Which device to run on, how to name it in a result row, and the library versions to record.

One home for what training runs (`hsd.method.execute`) and the benchmarks (`harness.bench`) both
write into their outputs, so a row and a benchmark file name the same machine the same way.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
from pathlib import Path

import torch

from hsd.config import ConfigError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"


def pick_device(name: str = "auto") -> torch.device:
    """The torch device for `name`: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or
    ``cuda:N``. Raises ConfigError, saying what to pass instead, for anything else, for CUDA on a
    machine without it, and for a CUDA index the machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; valid: {DEVICE_CHOICES}")
    if dev.type == "cpu":
        return dev
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} requested but torch sees no CUDA device "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); use --device cpu"
        )
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ConfigError(
            f"device {name!r} requested but this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}; pick one of those or pass --device cuda"
        )
    return dev


def device_name(device: torch.device) -> str:
    """Human-readable name: the GPU model, or ``CPU <model> (<n> cores)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()  # often just "x86_64" on Linux ...
    with contextlib.suppress(OSError):  # ... where /proc/cpuinfo has the model name
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"CPU {cpu} ({os.cpu_count()} cores)"


def versions() -> dict[str, str]:
    """Versions of Python, torch, CUDA/cuDNN (as torch was built) and the libraries whose speed or
    numerics a result depends on; ``absent`` for a library that is not installed."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),  # "None" for a CPU-only build of torch
        "cudnn": str(cudnn) if cudnn else "absent",
    }
    for dist in ("spikingjelly", "triton", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out
