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


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, where `platform` often says "x86_64")."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return cpu


def device_name(device: torch.device) -> str:
    """Human-readable name: the GPU model, or ``CPU <model> (<n> cores)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {cpu_model()} ({os.cpu_count()} cores)"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


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
        out[dist] = _version(dist)
    return out


#: libraries whose versions every result row records (torch's is in the row's ``torch`` field)
RECORDED_LIBRARIES = ("numpy", "scipy", "pandas", "spikingjelly", "tonic", "ray", "optuna")


def gpu_driver() -> str:
    """The NVIDIA driver version (nvidia-smi), or "unknown" where it cannot be asked."""
    import subprocess

    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.splitlines()[0].strip() if out.returncode == 0 and out.stdout else "unknown"


def provenance(device: torch.device) -> dict[str, str]:
    """What a result depends on besides its config, as flat row fields: the CPU model and the
    instruction-set level torch's CPU kernels run (rows from different CPU types differ in their
    last bits, which can change a short training's outcome), the library versions, and the GPU
    model, driver and CUDA version when the run used a GPU."""
    fields = {
        "cpu": cpu_model(),
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        **{f"ver_{dist}": _version(dist) for dist in RECORDED_LIBRARIES},
    }
    if device.type == "cuda":
        fields |= {
            "gpu": torch.cuda.get_device_name(device),
            "gpu_driver": gpu_driver(),
            "cuda": str(torch.version.cuda),
        }
    return fields
