"""The runs behind an aggregated number: which seeds and run ids a table cell comes from.

A cell of the paper's tables is (sweep, dataset, variant, T) at t = T; a claim or a paired
comparison is two such cells matched by seed. Inputs are rows prepared by
`harness.report.aggregate.prepare_rows` (one copy of a run per cell it serves, DTS read out at every T).
"""

from __future__ import annotations

import pandas as pd

ACC = "acc (%)"


class CellRuns:
    """Look-ups of the runs of a cell in one store's prepared rows."""

    def __init__(self, prepared: pd.DataFrame):
        cols = ["sweep", "dataset", "variant", "T", "t", "seed", "run_id", "status", "acc_pct"]
        self._rows = prepared[[c for c in cols if c in prepared]]

    def cell(
        self,
        sweep: str,
        dataset: str | None = None,
        variant: str | None = None,
        T: int | None = None,
        t: int | None = None,
    ) -> pd.DataFrame:
        """One line per run: ``seed``, ``run id``, ``status``, ``acc (%)`` (at `t`, default t = T).

        Keys left as None select every value (e.g. every T of a variant: one line per run and T).
        """
        df = self._rows
        sel = df["sweep"] == sweep
        for col, value in (("dataset", dataset), ("variant", variant), ("T", T)):
            if value is not None:
                sel &= df[col] == value
        sub = df[sel]
        sub = sub[sub["t"] == (t if t is not None else sub["T"])]
        sub = sub.drop_duplicates(["run_id", "T"]).sort_values(["T", "seed", "run_id"])
        out = pd.DataFrame(
            {
                "seed": sub["seed"].to_numpy(),
                "run id": sub["run_id"].to_numpy(),
                "status": sub["status"].to_numpy(),
                ACC: sub["acc_pct"].astype(float).to_numpy(),
            }
        )
        if T is None:
            out.insert(0, "T", sub["T"].to_numpy())
        return out

    def pairs(
        self, sweep: str, dataset: str, a: tuple[str, int], b: tuple[str, int]
    ) -> pd.DataFrame:
        """Cells `a` and `b` (each (variant, T)) side by side per seed, with ``a − b`` where both
        ran ok: the pairs a paired difference is computed from (a seed on one side only shows too).
        """
        return side_by_side(self.cell(sweep, dataset, *a), self.cell(sweep, dataset, *b))


def side_by_side(left: pd.DataFrame, right: pd.DataFrame, names: tuple[str, str] = ("a", "b")):
    """Two `CellRuns.cell` answers matched by seed: run and accuracy of each side and their
    difference where both ran ok (a seed on one side only shows too, with no difference)."""
    a, b = names
    both = left.merge(right, on="seed", how="outer", suffixes=(f" {a}", f" {b}"))
    ok = (both[f"status {a}"] == "ok") & (both[f"status {b}"] == "ok")
    both[f"{a} − {b}"] = (both[f"{ACC} {a}"] - both[f"{ACC} {b}"]).where(ok)
    both = both.rename(columns={f"run id {a}": f"run {a}", f"run id {b}": f"run {b}"})
    cols = ["seed", f"run {a}", f"{ACC} {a}", f"run {b}", f"{ACC} {b}", f"{a} − {b}"]
    return both.sort_values("seed")[cols].reset_index(drop=True)
