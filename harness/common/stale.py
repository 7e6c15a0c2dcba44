"""Runs a sweep folder holds for a planned cell and seed under another run id, and setting them aside.

A run id hashes the resolved config. When a preset or a default changes, the same cell and seed
plan a new run id, and the run made before stays in the folder; left there, every table would
count both as seeds of one cell. So `harness.run` refuses to add to such a folder until they are
set aside (`--set-aside-stale`): their rows move to ``OUT/stale/results.jsonl`` and their
learning curves and per-sample outcomes to ``OUT/stale/curves`` and ``OUT/stale/samples``.
Nothing is deleted, and the stale rows are written and synced before they leave the store.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from pathlib import Path

from harness.common.curves import curve_path
from harness.common.row_schema import row_cells
from harness.common.samples import samples_path
from harness.common.store import RESULTS_FILE

STALE_DIR = "stale"


def _cell_keys(cells, dataset, T, seed) -> list[tuple]:
    return [(sweep, variant, dataset, int(T), int(seed)) for sweep, variant in cells]


def stale_runs(trials: Iterable, rows: Iterable[dict]) -> dict[str, str]:
    """Each stored run whose cell and seed the plan `trials` trains under another run id, mapped
    to a line that names the cell, the stored and the planned run id."""
    planned = {}
    for t in trials:
        for key in _cell_keys(t.cells, t.cfg.dataset, t.cfg.T, t.cfg.seed):
            planned[key] = t.run_id
    stale: dict[str, str] = {}
    for r in rows:
        run_id = r.get("run_id")
        if run_id in stale or r.get("seed") is None or r.get("T") is None:
            continue  # params rows have no seed; a run's other rows repeat its cells
        for key in _cell_keys(row_cells(r), r.get("dataset"), r["T"], r["seed"]):
            want = planned.get(key)
            if want is not None and want != run_id:
                sweep, variant, dataset, T, seed = key
                stale[run_id] = (
                    f"{sweep}:{variant} {dataset} T={T} seed {seed}: stored {run_id}, "
                    f"planned {want}"
                )
                break
    return stale


def stale_error(out: Path, stale: dict[str, str]) -> str:
    """The refusal: what is wrong, which runs, and the two ways out."""
    lines = sorted(stale.values())
    head = "\n  ".join(lines[:10]) + (
        f"\n  ... and {len(lines) - 10} more" if len(lines) > 10 else ""
    )
    return (
        f"{out} holds {len(stale)} run(s) for cells and seeds that this sweep now trains under "
        "another run id (a preset, a default or an option changed since they ran):\n  "
        f"{head}\nThe tables would count both runs as seeds of one cell. Rerun with "
        f"--set-aside-stale to move them to {out / STALE_DIR} (rows, curves, samples; nothing is "
        "deleted), or use another --out."
    )


def _sync_append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _run_id(line: bytes) -> str | None:
    """The run id of a stored line; None for a torn tail left by a killed writer (it stays where
    it is, for the store's next append to move aside)."""
    try:
        return json.loads(line).get("run_id")
    except ValueError:
        return None


def set_aside(out: Path, run_ids: set[str]) -> str:
    """Move the rows of `run_ids` from ``OUT/results.jsonl`` to ``OUT/stale/results.jsonl``, and
    their curves and samples to ``OUT/stale``; return a line saying what moved.

    Under the store's writer lock; the stale copy is synced before the store is replaced
    atomically by its remaining lines, so a crash at any point loses no row.
    """
    path = out / RESULTS_FILE
    with open(path, "rb+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        lines = f.read().splitlines(keepends=True)
        keep, move = [], []
        for line in lines:
            (move if _run_id(line) in run_ids else keep).append(line)
        if move:
            _sync_append(out / STALE_DIR / RESULTS_FILE, b"".join(move))
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as g:
                g.write(b"".join(keep))
                g.flush()
                os.fsync(g.fileno())
            os.replace(tmp, path)
    for run_id in run_ids:
        for src in (curve_path(out, run_id), samples_path(out, run_id)):
            if src.exists():
                dst = out / STALE_DIR / src.parent.name / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
    return f"set aside {len(run_ids)} stale run(s), {len(move)} rows, in {out / STALE_DIR}"
