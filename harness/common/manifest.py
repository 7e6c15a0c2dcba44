"""A sweep folder's manifest (`sweep.json`): which sweep and grid arguments the folder holds.

Resuming a sweep in a folder needs the same manifest, with two exceptions: more seeds
(`adds_seeds`), since seeds 0..n-1 of the larger grid are the runs already stored, and a tuning
folder taking another dataset (`adds_datasets`), since each dataset is its own study.
"""

from __future__ import annotations

import json
from typing import Any

from harness.common.row_schema import jsonable


def canonical(manifest: dict) -> Any:
    """The manifest as it reads back from JSON (tuples become lists, NaN becomes null)."""
    return json.loads(json.dumps(jsonable(manifest), sort_keys=True))


def adds_seeds(have: Any, wanted: Any) -> bool:
    """True when `wanted` is the stored sweep with more seeds: the same grid otherwise, so seeds
    0..n-1 are the same runs (a run id hashes the resolved config, seed included) and the folder
    can grow to the larger count instead of training them again elsewhere."""
    if not (isinstance(have, dict) and isinstance(wanted, dict)):
        return False
    have_args, wanted_args = have.get("args"), wanted.get("args")
    if not (isinstance(have_args, dict) and isinstance(wanted_args, dict)):
        return False
    seeds = have_args.get("seeds"), wanted_args.get("seeds")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in seeds):
        return False

    def without_seeds(m: dict) -> dict:
        return {**m, "args": {k: v for k, v in m["args"].items() if k != "seeds"}}

    return seeds[1] > seeds[0] and without_seeds(have) == without_seeds(wanted)


def adds_datasets(have: Any, wanted: Any) -> bool:
    """True when `wanted` is the stored tuning (sweep "tune") with more datasets: a tuning folder
    holds one method's studies, one per dataset (study ``<method>-<dataset>``), so another dataset
    adds a study beside the stored ones and changes none of them."""
    if not (isinstance(have, dict) and isinstance(wanted, dict)) or have.get("sweep") != "tune":
        return False
    have_args, wanted_args = have.get("args"), wanted.get("args")
    if not (isinstance(have_args, dict) and isinstance(wanted_args, dict)):
        return False
    stored, requested = have_args.get("datasets"), wanted_args.get("datasets")
    if not (isinstance(stored, list) and isinstance(requested, list)):
        return False

    def without_datasets(m: dict) -> dict:
        return {**m, "args": {k: v for k, v in m["args"].items() if k != "datasets"}}

    return set(stored) < set(requested) and without_datasets(have) == without_datasets(wanted)


def describe_difference(have: Any, wanted: Any) -> str:
    """What differs between two manifests, naming each grid argument (for the refusal message)."""
    if not isinstance(have, dict) or not isinstance(wanted, dict):
        return f"stored manifest {have!r}, requested {wanted!r}"
    parts = []
    if have.get("sweep") != wanted.get("sweep"):
        parts.append(f"stored sweep {have.get('sweep')!r}, requested {wanted.get('sweep')!r}")
    for key in sorted(set(have) | set(wanted)):
        h, w = have.get(key), wanted.get(key)
        if key == "sweep" or h == w:
            continue
        if isinstance(h, dict) and isinstance(w, dict):  # name the grid argument, not the dict
            for arg in sorted(set(h) | set(w)):
                if h.get(arg) != w.get(arg):
                    parts.append(f"{arg}: stored {h.get(arg)!r}, requested {w.get(arg)!r}")
        else:
            parts.append(f"{key}: stored {h!r}, requested {w!r}")
    return "; ".join(parts) or "manifests differ"
