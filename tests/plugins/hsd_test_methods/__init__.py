"""Fake fast methods for the harness tests (not part of the library): a plugin distribution.

`tests/plugins` holds this package and its ``.dist-info`` with ``hsd.methods`` entry points, so once
that folder is on the path (``sys.path`` here, ``PYTHONPATH`` for CLI subprocesses and Ray workers)
the method registry finds ``fake`` and ``fake-fail`` exactly as it finds an installed lab's methods.
They go through the real `hsd.method.resolve`/`execute` (real dataset registry, real frame cache)
but skip training: each "epoch" sleeps ``$HSD_FAKE_EPOCH_S`` seconds, writes a checkpoint file
into the run's checkpoint folder (resumed on rerun, like the engine's) and appends a line to
``$HSD_FAKE_COUNTER`` so tests can count how often each run started and which epochs ran.

Option ``mode``: "ok" | "fail" (RuntimeError every time) | "diverge" | "oom".

``tet-short`` is the opposite: a real training (TET's loss, model and recipe) cut to 2 epochs, for
tests that need real numbers through every entry point without the smoke preset's length.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from baselines.tet import TET
from hsd.hsd_method import HSD_SPACE
from hsd.method import Method, RunContext


def _log(line: str) -> None:
    path = os.environ.get("HSD_FAKE_COUNTER")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


class _Eval:
    """Stands in for hsd.engine.Evaluation: acc at t = 1..T is a function of the config only."""

    def __init__(self, cfg, samples: int):
        self.cfg, self.samples = cfg, samples

    def rows(self, cfg) -> list[dict[str, Any]]:
        base = (cfg.seed + 1) / 100
        return [
            {"t": t, "acc": round(base + t / 10, 6), "test_samples": self.samples, "params": 1}
            for t in range(1, cfg.T + 1)
        ]


class Fake(Method):
    name = "fake"
    summary = "test double: no training, deterministic accuracies"
    neuron = "if"
    options = {"mode": "ok"}
    # Tuned like HSD (its validation accuracy grows with kd_lambda), so tuning tests see a signal.
    search_space = HSD_SPACE

    # One frame cache (frames, size) for every T keeps the tests to one cache build;
    # pre_frames = 1 makes T <= F_total - 1 like HSD.
    presets = {"any": {"epochs": 3, "pre_epochs": 0, "size": 8, "batch_size": 16}}

    def frame_plan(self, cfg, spec) -> dict[str, Any]:
        return {"frames": spec.default_frames, "pre_frames": 1}

    def run(self, cfg, ctx: RunContext):
        run_id = cfg.run_id()
        _log(f"start {run_id}")
        mode = cfg.option("mode")
        if mode == "fail":
            raise RuntimeError("fake failure")
        if mode == "oom":
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        ck = ctx.checkpoint_dir / "fake.json" if ctx.checkpoint_dir else None
        start = json.loads(ck.read_text())["epoch"] if ck and ck.exists() else 0
        for epoch in range(start + 1, cfg.epochs + 1):
            time.sleep(float(os.environ.get("HSD_FAKE_EPOCH_S", "0.02")))
            if mode == "diverge":
                from hsd.engine import DivergedError

                raise DivergedError("loss is nan (fake)")
            if ck:
                ck.parent.mkdir(parents=True, exist_ok=True)
                ck.write_text(json.dumps({"epoch": epoch}))
            _log(f"epoch {run_id} {epoch}")
            if ctx.on_epoch:
                ctx.on_epoch("fake", epoch, cfg.epochs, {"train_loss": 1.0 / epoch, "val_acc": 0.5})
        ctx.info["best_val_acc"] = round(0.5 + cfg.seed / 100 + (cfg.kd_lambda or 0) / 1000, 6)
        return _Eval(cfg, len(ctx.data.test))


class FakeFail(Fake):
    name = "fake-fail"
    summary = "test double that raises on every attempt"
    options = {"mode": "fail"}


class TETShort(TET):
    name = "tet-short"
    summary = "TET trained for 2 epochs: a real training, short enough for the tests"
    presets = {**TET.presets, "any": {**TET.presets["any"], "epochs": 2}}
