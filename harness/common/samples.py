"""Per-sample outcomes of one finished run, stored next to the results store as a small ``.npz``.

Result rows hold one line per inference step t; what an early-exit rule needs is per sample *and*
t (the cumulative prediction, its confidence, the operations spent so far), which would bloat the
JSON lines. So each ok run also leaves ``OUT/samples/<run_id>.npz``, referenced by its run id:

    format                 1
    run_id                 the run's id (the store rows with this id describe the run)
    stream_fraction        [T]     share of each sample's event stream consumed after step t
    <split>_pred           [N, T]  argmax of the cumulative mean logits up to t
    <split>_confidence     [N, T]  max softmax of the cumulative mean logits up to t
    <split>_margin         [N, T]  top-1 minus top-2 softmax probability
    <split>_label          [N]
    <split>_macs/_acs      [N, T]  the sample's operations to run steps 1..t

for ``split`` in ``test`` and ``val`` (validation, where early-exit thresholds are chosen). Files
are written atomically (temporary file, then ``os.replace``), so a reader never sees half a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLES_DIR = "samples"
FORMAT = 1
FIELDS = ("pred", "confidence", "margin", "label", "macs", "acs")
SPLITS = ("test", "val")


@dataclass(frozen=True)
class Split:
    """One split of one run: per-sample arrays of shape [N, T] (``label`` [N])."""

    pred: np.ndarray
    confidence: np.ndarray
    margin: np.ndarray
    label: np.ndarray
    macs: np.ndarray
    acs: np.ndarray
    stream_fraction: np.ndarray  # [T]

    @property
    def T(self) -> int:
        return self.pred.shape[1]

    def __post_init__(self) -> None:
        n, t = self.pred.shape
        for name in ("confidence", "margin", "macs", "acs"):
            if getattr(self, name).shape != (n, t):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {(n, t)}")
        if self.label.shape != (n,) or self.stream_fraction.shape != (t,):
            raise ValueError(
                f"label {self.label.shape} / stream_fraction {self.stream_fraction.shape} do not "
                f"match {n} samples and T = {t}"
            )


def samples_path(out_dir: str | Path, run_id: str) -> Path:
    return Path(out_dir) / SAMPLES_DIR / f"{run_id}.npz"


def save(
    path: str | Path,
    *,
    run_id: str,
    per_sample: Mapping[str, Any],
    stream_fraction,
) -> Path:
    """Write the per-sample records (split -> object with the `FIELDS` attributes) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "format": np.asarray(FORMAT),
        "run_id": np.asarray(run_id),
        "stream_fraction": np.asarray(stream_fraction, dtype=np.float64),
    }
    for split, record in per_sample.items():
        for name in FIELDS:
            arrays[f"{split}_{name}"] = np.asarray(getattr(record, name))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


def load(path: str | Path) -> dict[str, Split]:
    """The splits stored in `path` (``{"test": Split, "val": Split}``; either may be absent)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable per-sample file ({err}); delete it") from None
    if int(data.get("format", -1)) != FORMAT:
        raise ValueError(f"{path}: per-sample format {data.get('format')} is not {FORMAT}")
    out = {}
    for split in SPLITS:
        if f"{split}_pred" in data:
            out[split] = Split(
                **{name: data[f"{split}_{name}"] for name in FIELDS},
                stream_fraction=data["stream_fraction"],
            )
    return out
