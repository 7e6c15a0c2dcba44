"""What the tables of tools/ read from a store: each Figure-2 / Table-1 method's finished runs, one
row per run, at inference time step t = T (DTS: its one model, trained on every frame, read at t = T).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.common.store import ResultStore

METHODS = ("hsd", "tet", "dts", "sltt", "tcja")  # Figure 2 and Table 1 (TET = STS)
DATASETS = ("n-digits", "sim-gestures")
T = 5


def runs_at_T(store_dir: Path) -> pd.DataFrame:
    rows = ResultStore.existing(store_dir).rows()
    rows = rows[(rows["t"] == T) & (rows["status"] == "ok") & rows["method"].isin(METHODS)]
    return rows[(rows["T"] == T) | (rows["method"] == "dts")].drop_duplicates("run_id")
