"""The numbers the HSD paper reports (top-1 accuracy, %), for side-by-side columns in our tables.

Source: "Towards Low-latency Event-based Visual Recognition with Hybrid Step-wise Distillation
Spiking Neural Networks" (the HSD paper), Tables 1-4 and 6 and the text of Sec. 5.5 (Figure 2 at
T = 1). Only the paper's numbers are here; nothing in this file is measured.
They exist only for the three real datasets: the simulated stand-ins (n-digits, sim-gestures) have
no paper numbers, and `aggregate` shows these values only in columns named
``paper (<dataset>)`` so they are never mistaken for a measurement on any dataset we ran.

Keys use the harness vocabulary: dataset registry names and the variant labels of
`harness.common.sweeps.SWEEPS`.
"""

from __future__ import annotations

import pandas as pd

#: registry name -> the name the paper prints (used in column labels)
PAPER_DATASETS: dict[str, str] = {
    "cifar10-dvs": "CIFAR10-DVS",
    "n-caltech101": "N-Caltech101",
    "dvs-gesture": "DVS-Gesture",
}

#: datasets that are simulated in this project (generated, not recorded by an event camera)
SIMULATED_DATASETS: frozenset[str] = frozenset({"n-digits", "sim-gestures"})

#: the real dataset each simulated one stands in for (for captions only; never for paper columns)
STANDS_IN_FOR: dict[str, tuple[str, ...]] = {
    "n-digits": ("cifar10-dvs", "n-caltech101"),
    "sim-gestures": ("dvs-gesture",),
}

C10, NC, DG = "cifar10-dvs", "n-caltech101", "dvs-gesture"

# Table 1: (variant, T) -> {dataset: acc %}
TABLE1: dict[tuple[str, int], dict[str, float]] = {
    ("tet", 10): {C10: 83.17, DG: 96.88},
    ("tet", 5): {C10: 78.80, NC: 79.65, DG: 94.44},
    ("sltt", 5): {C10: 76.12, NC: 77.57, DG: 94.12},
    ("sltt", 10): {DG: 96.23},
    ("tcja", 5): {C10: 79.73, NC: 75.61, DG: 92.25},
    ("tcja", 10): {DG: 97.56},
    ("hsd", 5): {C10: 81.10, NC: 80.20, DG: 97.57},
    ("hsd", 10): {DG: 97.92},
}

# Table 2 (ablation, at each dataset's paper setting): variant -> {dataset: acc %}
TABLE2: dict[str, dict[str, float]] = {
    "none": {C10: 73.60, NC: 73.58, DG: 94.10},
    "HT": {C10: 79.21, NC: 79.97, DG: 95.83},
    "SKD": {C10: 75.70, NC: 75.97, DG: 94.44},
    "HT+KD": {C10: 79.50, NC: 79.70, DG: 97.22},
    "HT+SKD": {C10: 81.10, NC: 80.20, DG: 97.92},
}

# Table 3 (quantization step L of the QCFS pre-training)
TABLE3: dict[str, dict[str, float]] = {
    "L=4": {C10: 77.23, NC: 76.24, DG: 94.79},
    "L=8": {C10: 80.12, NC: 77.78, DG: 95.48},
    "L=16": {C10: 81.10, NC: 78.77, DG: 97.92},
    "L=32": {C10: 76.77, NC: 80.20, DG: 96.18},
}

# Table 4 (hybrid training applied to other methods)
TABLE4: dict[str, dict[str, float]] = {
    "SLTT w/o HT": {C10: 75.46, NC: 76.03, DG: 95.92},
    "SLTT w/ HT": {C10: 78.78, NC: 79.14, DG: 97.26},
    "TET w/o HT": {C10: 77.60, NC: 77.23, DG: 96.23},
    "TET w/ HT": {C10: 80.82, NC: 79.65, DG: 97.58},
}

# Table 6 (vanilla KD variants, CIFAR10-DVS only, same T in training and inference)
TABLE6: dict[str, dict[str, float]] = {
    "baseline": {C10: 74.80},
    "response": {C10: 76.40},
    "feature": {C10: 76.80},
    "both": {C10: 78.40},
}

# Figure 2 at T = 1 (the only values the paper states in its text): (variant, T) -> {dataset: acc %}.
# The paper's "TET" curve is same-time-step training, our variant "sts".
FIGURE2: dict[tuple[str, int], dict[str, float]] = {
    ("sts", 1): {C10: 74.82, DG: 90.97},
    ("hsd", 1): {C10: 75.81, DG: 91.32},
}

#: table name -> the paper's values keyed by variant (Tables 2-4, 6) or (variant, T) (Table 1, Fig. 2)
TABLES: dict[str, dict] = {
    "table1": TABLE1,
    "table2": TABLE2,
    "table3": TABLE3,
    "table4": TABLE4,
    "table6": TABLE6,
    "figure2": FIGURE2,
}


def paper_column(dataset: str) -> str:
    """Column label of the paper's number for a real dataset, e.g. ``paper (CIFAR10-DVS)``."""
    return f"paper ({PAPER_DATASETS[dataset]})"


def paper_long(table: str) -> pd.DataFrame:
    """One table's paper numbers as rows ``variant, [T,] dataset, paper_acc`` (acc in %)."""
    if table not in TABLES:
        raise KeyError(f"no paper numbers for {table!r}; known tables: {sorted(TABLES)}")
    records = []
    for key, per_dataset in TABLES[table].items():
        variant, T = key if isinstance(key, tuple) else (key, None)
        for dataset, acc in per_dataset.items():
            rec = {"variant": variant, "dataset": dataset, "paper_acc": acc}
            if T is not None:
                rec["T"] = T
            records.append(rec)
    return pd.DataFrame.from_records(records)
