"""Train / validation / test splits, published as index files of relative sample names.

CIFAR10-DVS and N-Caltech101 have no official split and every paper's "9:1 per class" differs
(one even depends on os.listdir order). Ours is a pure function of the relative file names,
the labels and a seed:

    key(name) = sha256(f"{salt}:{seed}:{name}")
    per class c, order its names by key; the first round(f_test * n_c) are test, the rest train
    (at least one sample on each side when n_c >= 2); then, per class, the first
    round(f_val * n_train_c) training names by the "val" key become the validation split.

Hash order (instead of a seeded permutation of a listing) makes the assignment independent of
file-system order, of the NumPy RNG version and of the other files' names. Datasets with an
official split (DVS-Gesture by subject, sim-gestures, n-digits' test files) keep it; only
validation is carved from their training set. Model selection uses `val`; `test` is touched for the final numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

SPLITS = ("train", "val", "test")
SPLIT_FILE_VERSION = 1


def _order(names: Sequence[str], idx: list[int], salt: str, seed: int) -> list[int]:
    key = lambda i: hashlib.sha256(f"{salt}:{seed}:{names[i]}".encode()).hexdigest()  # noqa: E731
    return sorted(idx, key=lambda i: (key(i), names[i]))


def _n_held(n: int, fraction: float) -> int:
    if n < 2:
        return 0
    return min(max(1, round(fraction * n)), n - 1)


def _by_class(idx: Sequence[int], labels: Sequence[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i in idx:
        groups.setdefault(int(labels[i]), []).append(i)
    return groups


def _hold_out(names, labels, idx, fraction, salt, seed) -> tuple[list[int], list[int]]:
    keep, held = [], []
    for _, members in sorted(_by_class(idx, labels).items()):
        ordered = _order(names, members, salt, seed)
        k = _n_held(len(ordered), fraction)
        held += ordered[:k]
        keep += ordered[k:]
    return sorted(keep), sorted(held)


def make_splits(
    names: Sequence[str],
    labels: Sequence[int],
    *,
    official: tuple[Sequence[int], Sequence[int]] | None = None,
    test_fraction: float = 0.1,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, list[int]]:
    """Indices into `names` for "train", "val" and "test" (each sorted, pairwise disjoint).

    Args:
        names: relative sample names (unique); their order does not affect which names land in
            which split.
        labels: class index of each name.
        official: (train_idx, test_idx) of an official split (e.g. `spec.official_split(root)`);
            when given, test is taken from it and only val is carved from its train part.
        test_fraction: per-class held-out test fraction without an official split (9:1 -> 0.1).
        val_fraction: per-class fraction of the training set used for validation.
        seed: split seed (0 is the published one).
    """
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names but {len(labels)} labels")
    if len(set(names)) != len(names):
        raise ValueError("sample names must be unique (use paths relative to the dataset root)")
    for what, f in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{what} must be in [0, 1), got {f}")
    if official is None:
        train, test = _hold_out(names, labels, range(len(names)), test_fraction, "test", seed)
    else:
        train, test = sorted(map(int, official[0])), sorted(map(int, official[1]))
        if set(train) & set(test):
            raise ValueError("official split: train and test overlap")
    train, val = _hold_out(names, labels, train, val_fraction, "val", seed)
    return {"train": train, "val": val, "test": test}


def write_split_file(path: str | Path, names: Sequence[str], splits: dict, **meta) -> Path:
    """Write {"version", meta..., "train": [names], "val": [...], "test": [...]} as JSON."""
    path = Path(path)
    doc = {"version": SPLIT_FILE_VERSION, **meta}
    doc.update({s: [names[i] for i in splits[s]] for s in SPLITS})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_split_file(path: str | Path, names: Sequence[str]) -> dict[str, list[int]]:
    """Map a split file's names back to indices into `names` (a name it lists must exist)."""
    doc = json.loads(Path(path).read_text())
    where = {n: i for i, n in enumerate(names)}
    out = {}
    for s in SPLITS:
        missing = [n for n in doc[s] if n not in where]
        if missing:
            raise ValueError(
                f"split file {path} lists {len(missing)} sample(s) not in the dataset, "
                f"e.g. {missing[0]!r}: is the dataset complete?"
            )
        out[s] = sorted(where[n] for n in doc[s])
    return out
