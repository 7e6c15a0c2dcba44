"""`execute()`: the single entry point that turns a `RunConfig` into result rows (used by the
single-run CLI, both executors and tuning), with the provenance every row carries.

Determinism: a run seeds every generator from its config and runs with one fixed number of torch
intra-op threads (`threads`, default 1, recorded in the rows as ``threads``), so the same resolved
config gives the same metrics on one machine whichever entry point runs it. (A different thread
count may change float summation order, hence the last bits; it is recorded so it can be seen.)
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hsd.config import RunConfig
from hsd.device import device_name, pick_device, provenance
from hsd.method import METHODS, EpochCallback, RunContext, resolve

DEFAULT_THREADS = 1


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# Committed result stores live here; a sweep that writes into one (resuming a committed folder)
# changes tracked files, which says nothing about the code the run trained with.
RESULTS_DIR = "results"


def git_commit(where: Path | None = None) -> str:
    """The commit of the code (of the checkout holding `where`, default this package), with
    "-dirty" when a tracked file outside `results/` differs from it."""
    here = where or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        code = [":(top)", f":(top,exclude){RESULTS_DIR}"]
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", *code],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def config_columns(cfg: RunConfig) -> dict[str, Any]:
    """The config as row columns: every field, options flattened as ``opt_<name>``."""
    return {
        **{k: v for k, v in cfg.to_dict().items() if k != "options"},
        **{f"opt_{k}": v for k, v in cfg.options},
    }


def execute(
    cfg: RunConfig,
    *,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    checkpoint_dir: str | Path | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = False,
    threads: int = DEFAULT_THREADS,
    on_evaluation: Callable[[Any], None] | None = None,
) -> list[dict[str, Any]]:
    """Run one config end to end; return one row per inference step t = 1..T.

    Each row holds the resolved config, the metrics at t, and the provenance (run id, git commit,
    device, CPU model and ISA level, neuron backend, thread count, versions, wall time, peak
    memory). Divergence (NaN loss)
    and out-of-memory are not caught here: the caller (the harness) records them as rows.
    `on_evaluation` receives the method's `hsd.engine.Evaluation` (its per-sample outcomes do not
    fit in rows; the harness stores them in a file of their own).
    """
    from hsd.data import load_frames
    from hsd.engine import peak_memory_mb

    cfg = resolve(cfg)
    dev = pick_device(device)
    torch.set_num_threads(threads)
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
    method = METHODS[cfg.method]
    evaluation = method.run(cfg, ctx)
    if on_evaluation is not None:
        on_evaluation(evaluation)
    wall = time.perf_counter() - t0
    common = {
        "run_id": cfg.run_id(),
        **config_columns(cfg),
        "any_t": method.any_t,
        "status": "ok",
        "git_commit": git_commit(),
        "device": device_name(dev),
        "threads": threads,
        "torch": torch.__version__,
        **provenance(dev),
        "wall_s": round(wall, 3),
        "peak_mem_mb": peak_memory_mb(dev),
        **ctx.info,
    }
    return [{**common, **row} for row in evaluation.rows(cfg)]
