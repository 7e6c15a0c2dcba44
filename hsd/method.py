"""What every training method implements, the one registry of methods, and `execute()`: the single
entry point that turns a `RunConfig` into result rows (used by `hsd.train` and by the harness).

A method owns its recipe (which frames, which losses, which stages); the engine (`hsd.engine`) owns
the loops, checkpoints and evaluation, so every method is trained and measured the same way.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hsd.config import ConfigError, RunConfig, validate
from hsd.registry import Registry

# Epoch callback: (stage, epoch index starting at 1, epochs in that stage, metrics of that epoch).
EpochCallback = Callable[[str, int, int, dict[str, float]], None]


@dataclass
class RunContext:
    """Everything a run needs besides its config: data, device, where to checkpoint."""

    data: Any  # hsd.data.FrameSet, already loaded with cfg.frames frames per sample
    device: torch.device
    checkpoint_dir: Path | None = None  # per-stage checkpoints each epoch; resumed when present
    on_epoch: EpochCallback | None = None
    info: dict[str, Any] = field(default_factory=dict)  # what the method wants in every row


class Method:
    """Base class of a training method. Subclasses set the class attributes and implement `run`.

    `options` lists the method-specific options the method accepts with their defaults; any other
    option is an error, so a misspelled option never silently does nothing.
    """

    name: str = ""
    summary: str = ""
    neuron: str = "lif"
    options: dict[str, Any] = {}

    def defaults(self, cfg: RunConfig, spec: Any) -> dict[str, Any]:
        """Values for the config fields the user left as None (profile- and dataset-aware)."""
        raise NotImplementedError

    def check(self, cfg: RunConfig) -> None:
        """Method-specific validation of a resolved config; raise ConfigError to refuse it."""

    def run(self, cfg: RunConfig, ctx: RunContext) -> Any:
        """Train and evaluate; return the `hsd.engine.Evaluation` of the selected model on test."""
        raise NotImplementedError


METHODS: Registry[Method] = Registry("method")


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: register one instance of a Method subclass under its `name`."""
    METHODS.register(cls.name, cls())
    return cls


def resolve(cfg: RunConfig) -> RunConfig:
    """Fill the unset fields from the method's preset and check the result.

    Raises ConfigError (unknown method/dataset/option, impossible frame windows, ...) before any
    data is touched or any training starts.
    """
    from hsd.data import DATASETS  # the data layer is heavy to import; only needed here

    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method {cfg.method!r}; valid: {', '.join(METHODS.names())}")
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {cfg.dataset!r}; valid: {', '.join(DATASETS.names())}")
    method = METHODS[cfg.method]
    spec = DATASETS[cfg.dataset]
    given = dict(cfg.options)
    unknown = sorted(set(given) - set(method.options))
    if unknown:
        valid = ", ".join(sorted(method.options)) or "none"
        raise ConfigError(f"method {cfg.method!r} takes no option {unknown}; its options: {valid}")
    filled = {k: v for k, v in method.defaults(cfg, spec).items() if getattr(cfg, k) is None}
    out = cfg.replace(**filled, options={**method.options, **given})
    validate(out)
    method.check(out)
    return out


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device 'cuda' requested but no CUDA device is available; use --device cpu"
        )
    return dev


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def execute(
    cfg: RunConfig,
    *,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    checkpoint_dir: str | Path | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = False,
    on_evaluation: Callable[[Any], None] | None = None,
) -> list[dict[str, Any]]:
    """Run one config end to end; return one row per inference step t = 1..T.

    Each row holds the resolved config, the metrics at t, and the provenance (run id, git commit,
    device, neuron backend, wall time, peak memory). Divergence (NaN loss) and out-of-memory are
    not caught here: the caller (the harness) records them as rows with a status.
    `on_evaluation` receives the method's `hsd.engine.Evaluation` (its per-sample outcomes do not
    fit in rows; the harness stores them in a file of their own).
    """
    from hsd.data import load_frames

    cfg = resolve(cfg)
    dev = pick_device(device)
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    data = load_frames(
        cfg.dataset,
        frames=cfg.frames,
        size=cfg.size,
        root=root,
        cache_dir=cache_dir,
        progress=progress,
    )
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    ctx = RunContext(data=data, device=dev, checkpoint_dir=ckpt, on_epoch=on_epoch)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    evaluation = METHODS[cfg.method].run(cfg, ctx)
    if on_evaluation is not None:
        on_evaluation(evaluation)
    wall = time.perf_counter() - t0
    from hsd.engine import peak_memory_mb

    common = {
        "run_id": cfg.run_id(),
        **{k: v for k, v in cfg.to_dict().items() if k != "options"},
        **{f"opt_{k}": v for k, v in cfg.options},
        "status": "ok",
        "git_commit": git_commit(),
        "device": device_name(dev),
        "torch": torch.__version__,
        "wall_s": round(wall, 3),
        "peak_mem_mb": peak_memory_mb(dev),
        **ctx.info,
    }
    return [{**common, **row} for row in evaluation.rows(cfg)]
