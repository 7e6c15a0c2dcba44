"""Run ONE trial robustly: every outcome becomes result rows, nothing escapes to kill a sweep.

`hsd.method.execute` returns one row per inference step t = 1..T. A run that cannot finish is
stored as a single row with t = T, acc = NaN and a status from the shared vocabulary:

- ``infeasible``  out of memory (`torch.OutOfMemoryError`, `MemoryError`): BPTT memory grows with T,
  so a too-large config is a result, not a crash;
- ``diverged``    `hsd.engine.DivergedError` (NaN/inf loss);
- ``failed``      anything else, with the exception text in ``error``.

Only ``failed`` is retried (`retries` times): OOM and divergence are deterministic for a seeded
config. A retry reuses the trial's checkpoint folder, so it resumes after the last finished epoch.

A finished run also leaves its per-sample outcomes (test and validation) in
``<out_dir>/samples/<run_id>.npz`` (`harness.samples`), the data of the early-exit analysis.
"""

from __future__ import annotations

import math
import shutil
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import samples
from harness.sweeps import Trial, load_methods

ExecuteFn = Callable[..., list[dict[str, Any]]]


def checkpoint_dir(out_dir: str | Path, run_id: str) -> Path:
    return Path(out_dir).resolve() / "checkpoints" / run_id


def classify(err: BaseException) -> str:
    """Map an exception to a result status."""
    import torch

    from hsd.engine import DivergedError

    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return "infeasible"
    if isinstance(err, DivergedError):
        return "diverged"
    return "failed"


def failure_row(trial: Trial, status: str, error: str, wall_s: float, attempts: int) -> dict:
    """The single row a run that did not finish leaves: its config, t = T, acc = NaN."""
    from hsd.method import git_commit

    cfg = trial.cfg
    return {
        "run_id": trial.run_id,
        **{k: v for k, v in cfg.to_dict().items() if k != "options"},
        **{f"opt_{k}": v for k, v in cfg.options},
        "t": cfg.T,
        "acc": math.nan,
        "status": status,
        "error": error,
        "git_commit": git_commit(),
        "wall_s": round(wall_s, 3),
        "sweep": trial.sweep,
        "variant": trial.variant,
        "attempts": attempts,
    }


def run_trial(
    trial: Trial,
    *,
    out_dir: str | Path,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    retries: int = 1,
    on_epoch=None,
    on_retry: Callable[[int, BaseException], None] | None = None,
    execute: ExecuteFn | None = None,
) -> list[dict[str, Any]]:
    """Execute `trial` (resolved config) and return its rows with ``sweep`` and ``variant`` added.

    Checkpoints go to ``<out_dir>/checkpoints/<run_id>`` so a rerun or a retry resumes; the
    per-sample outcomes of a finished run go to ``<out_dir>/samples/<run_id>.npz``. Never
    raises for a training problem; KeyboardInterrupt/SystemExit still propagate.
    """
    if execute is None:
        load_methods()
        from hsd.method import execute
    ckpt = checkpoint_dir(out_dir, trial.run_id)
    ckpt.mkdir(parents=True, exist_ok=True)  # the engine writes <ckpt>/<stage>.pt atomically
    t0 = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        evaluations: list = []
        try:
            rows = execute(
                trial.cfg,
                root=root,
                cache_dir=cache_dir,
                device=device,
                checkpoint_dir=ckpt,
                on_epoch=on_epoch,
                on_evaluation=evaluations.append,
            )
        except Exception as err:  # noqa: BLE001 - every failure becomes a row
            status = classify(err)
            if status == "failed" and attempt <= retries:
                if on_retry is not None:
                    on_retry(attempt, err)
                continue
            text = f"{type(err).__name__}: {err}"
            if status == "failed":  # the last frames of the traceback say where
                tb = traceback.format_exception(type(err), err, err.__traceback__)
                text += "\n" + "".join(tb[-3:])[-2000:]
            return [failure_row(trial, status, text, time.perf_counter() - t0, attempt)]
        if evaluations:
            save_samples(out_dir, rows, evaluations[-1])
        return [
            {**r, "sweep": trial.sweep, "variant": trial.variant, "attempts": attempt} for r in rows
        ]


def save_samples(out_dir: str | Path, rows: list[dict[str, Any]], evaluation) -> Path | None:
    """Write a finished run's per-sample outcomes next to the store (nothing for an evaluation
    without them). A full disk costs the early-exit data of this run, never its rows."""
    per_sample = getattr(evaluation, "per_sample", None)
    if not per_sample or not rows:
        return None
    ordered = sorted(rows, key=lambda r: r["t"])
    run_id = ordered[0]["run_id"]
    try:
        return samples.save(
            samples.samples_path(out_dir, run_id),
            run_id=run_id,
            per_sample=per_sample,
            stream_fraction=[r["stream_fraction"] for r in ordered],
        )
    except OSError as err:
        warnings.warn(f"per-sample outcomes of run {run_id} not saved: {err}", stacklevel=2)
        return None


def drop_checkpoints(out_dir: str | Path, run_id: str) -> None:
    """Free the disk once a run's rows are safely in the store (a rerun then skips the run)."""
    shutil.rmtree(checkpoint_dir(out_dir, run_id), ignore_errors=True)
