"""Run ONE trial robustly, and record it: every outcome of the run becomes result rows.

`hsd.execute.execute` returns one row per inference step t = 1..T. A run that cannot finish is
stored as a single row with t = T, acc = NaN and a status from the shared vocabulary:

- ``infeasible``  out of memory (`torch.OutOfMemoryError`, `MemoryError`): BPTT memory grows with T,
  so a too-large config is a result, not a crash;
- ``diverged``    `hsd.engine.DivergedError` (NaN/inf loss);
- ``failed``      any other error of the run itself, with the exception text in ``error``.

Only ``failed`` is retried (`retries` times): OOM and divergence are deterministic for a seeded
config. A retry reuses the trial's checkpoint folder, so it resumes after the last finished epoch.
A finished run also leaves its per-sample outcomes (test and validation) in
``<out_dir>/samples/<run_id>.npz`` (`harness.common.samples`), the data of the early-exit analysis, and
every run, finished or not, its learning curve in ``<out_dir>/curves/<run_id>.json``
(`harness.common.curves`), rewritten after each epoch (a resumed run gets its earlier epochs back from
its checkpoints) and marked where the loss became non-finite.

A failure of the *environment* (a device that does not exist, missing data, an unusable config) is
not a result: `run_trial` raises `EnvironmentFailure`, the sweep stops with exit code 2, no row is
stored, and a rerun after the fix runs the trial.
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

from harness.common import curves, samples
from harness.common.sweeps import Trial
from harness.executors import ExecOptions

ExecuteFn = Callable[..., list[dict[str, Any]]]


class EnvironmentFailure(RuntimeError):
    """The run could not start here (device, data, config): no row; the CLI exits 2."""


def checkpoint_dir(out_dir: str | Path, run_id: str) -> Path:
    return Path(out_dir).resolve() / "checkpoints" / run_id


def classify(err: BaseException) -> str:
    """Map an exception to a result status, or "environment" for a failure that is not a result."""
    import torch

    from hsd.config import ConfigError
    from hsd.data import DatasetError
    from hsd.engine import DivergedError

    if isinstance(err, (ConfigError, DatasetError)):
        return "environment"
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return "infeasible"
    if isinstance(err, DivergedError):
        return "diverged"
    return "failed"


def failure_row(trial: Trial, status: str, error: str, wall_s: float, attempts: int) -> dict:
    """The single row a run that did not finish leaves: its config, t = T, acc = NaN."""
    from hsd.execute import config_columns, git_commit

    return {
        "run_id": trial.run_id,
        **config_columns(trial.cfg),
        "t": trial.cfg.T,
        "acc": math.nan,
        "status": status,
        "error": error,
        "git_commit": git_commit(),
        "wall_s": round(wall_s, 3),
        **trial.row_fields(),
        "attempts": attempts,
    }


def run_trial(
    trial: Trial,
    opts: ExecOptions,
    *,
    on_epoch=None,
    on_retry: Callable[[int, BaseException], None] | None = None,
    execute: ExecuteFn | None = None,
) -> list[dict[str, Any]]:
    """Execute `trial` (resolved config) and return its rows with its cells added.

    Checkpoints go to ``<out_dir>/checkpoints/<run_id>`` so a rerun or a retry resumes. Never
    raises for a problem of the run itself; raises `EnvironmentFailure` for one of the environment.
    """
    if execute is None:
        from hsd.execute import execute
    ckpt = checkpoint_dir(opts.out_dir, trial.run_id)
    ckpt.mkdir(parents=True, exist_ok=True)  # the engine writes <ckpt>/<stage>.pt atomically
    t0 = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        evaluations: list = []
        curve = CurveKeeper(opts.out_dir, trial)  # each attempt replays its checkpoints' epochs
        try:
            rows = execute(
                trial.cfg,
                root=opts.root,
                cache_dir=opts.cache_dir,
                device=opts.device,
                checkpoint_dir=ckpt,
                on_epoch=curve.chain(on_epoch),
                threads=opts.threads,
                on_evaluation=evaluations.append,
            )
        except Exception as err:  # noqa: BLE001 - every failure of the run becomes a row
            status = classify(err)
            if status == "environment":
                raise EnvironmentFailure(f"{trial.label()}: {err}") from err
            if status == "diverged":
                curve.diverged(err)
            if status == "failed" and attempt <= opts.retries:
                if on_retry is not None:
                    on_retry(attempt, err)
                continue
            text = f"{type(err).__name__}: {err}"
            if status == "failed":  # the last frames of the traceback say where
                tb = traceback.format_exception(type(err), err, err.__traceback__)
                text += "\n" + "".join(tb[-3:])[-2000:]
            return [failure_row(trial, status, text, time.perf_counter() - t0, attempt)]
        if evaluations:
            save_samples(opts.out_dir, rows, evaluations[-1])
        return [{**r, **trial.row_fields(), "attempts": attempt} for r in rows]


class CurveKeeper:
    """The run's learning-curve file (`harness.common.curves.CurveWriter`) behind the epoch callback. A
    full disk costs the curve of this run, never the run: the first failed write warns once and
    the run goes on without its curve."""

    def __init__(self, out_dir: str | Path, trial: Trial) -> None:
        self.writer = curves.CurveWriter(
            curves.curve_path(out_dir, trial.run_id),
            trial.run_id,
            trial.cfg.to_dict(),
            trial.cells,
        )
        self.broken = False

    def _guard(self, write, *args) -> None:
        if self.broken:
            return
        try:
            write(*args)
        except OSError as err:
            self.broken = True
            warnings.warn(
                f"learning curve of run {self.writer.curve['run_id']} not saved: {err}",
                stacklevel=3,
            )

    def chain(self, on_epoch):
        """An epoch callback that records the epoch, then calls `on_epoch` (if any)."""

        def callback(stage, epoch, epochs, record):
            self._guard(self.writer, stage, epoch, epochs, record)
            if on_epoch is not None:
                on_epoch(stage, epoch, epochs, record)

        return callback

    def diverged(self, err: BaseException) -> None:
        loss = getattr(err, "loss", float("nan"))
        self._guard(
            self.writer.diverged, getattr(err, "stage", None), getattr(err, "epoch", None), loss
        )


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


def record(trial_label: str, rows: list[dict], store, opts: ExecOptions, progress) -> str:
    """Store a finished trial's rows (one chunk), free its checkpoints when it succeeded, say why
    it did not, and advance the progress bar. Every executor and tuning go through here."""
    if opts.command is not None:
        rows = [{**r, "command": opts.command} for r in rows]
    store.append(rows)
    first = rows[0]
    status, run_id = first.get("status", "ok"), first["run_id"]
    if status == "ok" and not opts.keep_checkpoints:
        drop_checkpoints(opts.out_dir, run_id)
    if status != "ok":
        reason = str(first.get("error", "")).splitlines()[0][:200] if first.get("error") else ""
        progress.write(f"{status}: {trial_label}: {reason}")
    progress.finish(run_id)
    return status
