"""Learning curves: one JSON file per run next to the store, ``<out>/curves/<run_id>.json``, and
what they say about the run (the status table's flags). Imports nothing but the standard library,
so the report reads curves without executors, tuning, Ray or Optuna.

The trial (`harness.trial.run_trial`) writes the file through `CurveWriter` after every epoch, so
every executor and tuning keep it, and a killed run leaves the curve up to its last epoch. A run
resumed from its checkpoints gets the epochs trained before the restart back from them (the
engine replays its checkpoint's history to the epoch callback), so the rewritten file still holds
every epoch. Files are written atomically (temporary file, then ``os.replace``).

Format (``version`` 1)::

    format       "hsd-learning-curve"
    version      1
    run_id       the run's id (the store rows with this id describe the run)
    config       the run's resolved config (`hsd.config.RunConfig.to_dict`)
    cells        [[sweep, variant], ...]: the table cells the run serves
    firing_rates_on  "validation": the pass the firing rates were measured on
    stages       in training order, e.g. HSD's "pretrain" (QCFS ANN) then "finetune" (SNN):
                   name          the stage
                   epochs        epochs planned for the stage
                   chosen_epoch  the model-selection epoch (best validation accuracy, the first
                                 epoch reaching it), null before the first epoch
                   records       one per finished epoch, fields `RECORD_FIELDS`:
                     epoch        1, 2, ...
                     train_loss   sample-weighted mean training loss of the epoch
                     train_acc    accuracy on the training batches as the loss saw them (train
                                  mode, weights moving during the epoch)
                     val_acc      accuracy on the validation split after the epoch
                     lr           learning rate the epoch trained with
                     firing_rates {spiking layer: spikes per neuron per time step} on the
                                  validation pass ({} for an ANN stage)
                     firing_rate  the same over all spiking layers together (null for an ANN)
                     seconds      training plus validation time of the epoch
    chosen       {"stage", "epoch"}: the chosen epoch of the last stage, whose model was tested
    diverged     null, or {"stage", "epoch", "loss"}: where the training loss became non-finite

Non-finite numbers are written as NaN / Infinity (Python's `json`); missing values as null.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CURVES_DIR = "curves"
FORMAT = "hsd-learning-curve"
VERSION = 1
FIRING_RATES_ON = "validation"
RECORD_FIELDS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_acc",
    "lr",
    "firing_rates",
    "firing_rate",
    "seconds",
)
#: a spiking layer under this many spikes per neuron and time step (0.1 %) is "silent"
SILENT_RATE = 1e-3
NO_CURVE = "no curve"


def curve_path(out_dir: str | Path, run_id: str) -> Path:
    return Path(out_dir) / CURVES_DIR / f"{run_id}.json"


def new_curve(run_id: str, config: dict[str, Any], cells: list | None = None) -> dict[str, Any]:
    """An empty curve of a run (no stage yet)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run_id,
        "config": dict(config),
        "cells": [list(c) for c in cells or []],
        "firing_rates_on": FIRING_RATES_ON,
        "stages": [],
        "chosen": None,
        "diverged": None,
    }


def _stage(curve: dict, name: str, epochs: int | None) -> dict:
    for stage in curve["stages"]:
        if stage["name"] == name:
            if epochs is not None:
                stage["epochs"] = epochs
            return stage
    stage = {"name": name, "epochs": epochs, "chosen_epoch": None, "records": []}
    curve["stages"].append(stage)
    return stage


def add_epoch(curve: dict, stage: str, epoch: int, epochs: int, record: dict) -> None:
    """Put the epoch's record (`hsd.engine.EPOCH_FIELDS`; missing fields become null) into
    `stage`, replacing the same epoch delivered again (a replay after a restart), and move the
    chosen epoch to the record's ``best_epoch``."""
    st = _stage(curve, stage, epochs)
    rec = {k: record.get(k) for k in RECORD_FIELDS}
    rec["epoch"] = int(epoch)
    rec["firing_rates"] = dict(rec["firing_rates"] or {})
    st["records"] = sorted(
        [r for r in st["records"] if r["epoch"] != rec["epoch"]] + [rec], key=lambda r: r["epoch"]
    )
    if record.get("best_epoch") is not None:
        st["chosen_epoch"] = int(record["best_epoch"])
    last = curve["stages"][-1]
    chosen = last["chosen_epoch"]
    curve["chosen"] = None if chosen is None else {"stage": last["name"], "epoch": chosen}


def mark_diverged(curve: dict, stage: str | None, epoch: int | None, loss: float) -> None:
    """Record where the training loss became non-finite (the epoch that never finished)."""
    curve["diverged"] = {"stage": stage, "epoch": epoch, "loss": float(loss)}


def save(path: str | Path, curve: dict) -> Path:
    """Write `curve` atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(curve, indent=1, default=str))
    os.replace(tmp, path)
    return path


class CurveError(ValueError):
    """A curve file that is not in this format (the message names the file and the fix)."""


def _check(path: Path, curve: Any) -> dict:
    def bad(why: str) -> CurveError:
        return CurveError(f"{path}: not a learning-curve file ({why}); delete it or rerun the run")

    if not isinstance(curve, dict) or curve.get("format") != FORMAT:
        raise bad(f"format is not {FORMAT!r}")
    if curve.get("version") != VERSION:
        raise bad(f"version {curve.get('version')!r}, this code reads {VERSION}")
    for key in ("run_id", "config", "stages"):
        if key not in curve:
            raise bad(f"no {key!r}")
    if not isinstance(curve["stages"], list):
        raise bad("'stages' is not a list")
    for stage in curve["stages"]:
        if not isinstance(stage, dict) or not isinstance(stage.get("records"), list):
            raise bad("a stage without a list of records")
        for rec in stage["records"]:
            missing = [k for k in RECORD_FIELDS if k not in rec]
            if missing:
                raise bad(f"stage {stage.get('name')!r} has a record without {missing}")
    return curve


def load(path: str | Path) -> dict:
    """The curve stored in `path`, checked; raises `CurveError` for anything else."""
    path = Path(path)
    try:
        curve = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CurveError(f"{path}: not a readable learning-curve file ({err}); delete it") from None
    return _check(path, curve)


def load_all(out_dir: str | Path, run_ids=None) -> dict[str, dict]:
    """Every curve under ``<out_dir>/curves`` (only those of `run_ids` when given), by run id."""
    folder = Path(out_dir) / CURVES_DIR
    if not folder.is_dir():
        return {}
    wanted = None if run_ids is None else {str(r) for r in run_ids}
    out = {}
    for path in sorted(folder.glob("*.json")):
        if wanted is None or path.stem in wanted:
            out[path.stem] = load(path)
    return out


class CurveWriter:
    """The trial's epoch callback (`hsd.method.EpochCallback`): adds each record to the run's
    curve and rewrites its file. Starts empty: the engine replays a resumed stage's epochs."""

    def __init__(self, path: str | Path, run_id: str, config: dict, cells=None) -> None:
        self.path = Path(path)
        self.curve = new_curve(run_id, config, cells)

    def __call__(self, stage: str, epoch: int, epochs: int, record: dict) -> None:
        add_epoch(self.curve, stage, epoch, epochs, record)
        save(self.path, self.curve)

    def diverged(self, stage: str | None, epoch: int | None, loss: float) -> None:
        mark_diverged(self.curve, stage, epoch, loss)
        save(self.path, self.curve)


# -- what a curve says --------------------------------------------------------------------------
@dataclass(frozen=True)
class Flags:
    """The status table's flags of one run's curve, with a short reason for each raised one.

    `diverged`: a non-finite training loss, or a stage whose last training loss is above its
    first epoch's; `silent`: a spiking layer under `SILENT_RATE` spikes per neuron and time step
    at the chosen epoch (validation pass)."""

    diverged: bool
    silent: bool
    detail: str


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def flags(curve: dict) -> Flags:
    why: list[str] = []
    diverged = False
    if curve.get("diverged"):
        d = curve["diverged"]
        diverged = True
        why.append(f"diverged: loss {d.get('loss')} in {d.get('stage')} epoch {d.get('epoch')}")
    for stage in curve["stages"]:
        recs = stage["records"]
        bad = [
            r["epoch"] for r in recs if not (r["train_loss"] is None or _finite(r["train_loss"]))
        ]
        if bad:
            diverged = True
            why.append(f"diverged: non-finite loss in {stage['name']} epoch {bad[0]}")
        elif len(recs) >= 2 and _finite(recs[0]["train_loss"]) and _finite(recs[-1]["train_loss"]):
            first, last = recs[0], recs[-1]
            if last["train_loss"] > first["train_loss"]:
                diverged = True
                why.append(
                    f"diverged: {stage['name']} loss {first['train_loss']:.4g} at epoch "
                    f"{first['epoch']} < {last['train_loss']:.4g} at epoch {last['epoch']}"
                )
    silent = False
    chosen = curve.get("chosen")
    if chosen:
        stage = next((s for s in curve["stages"] if s["name"] == chosen["stage"]), None)
        recs = stage["records"] if stage else []
        rec = next((r for r in recs if r["epoch"] == chosen["epoch"]), {})
        for layer, rate in (rec.get("firing_rates") or {}).items():
            if _finite(rate) and rate < SILENT_RATE:
                silent = True
                why.append(
                    f"silent layer: {layer} {100 * rate:.3g} % at {chosen['stage']} epoch "
                    f"{chosen['epoch']}"
                )
    return Flags(diverged, silent, "; ".join(why))
