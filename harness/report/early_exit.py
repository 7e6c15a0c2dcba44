"""Early exit: stop inference at the first step t whose confidence reaches a threshold.

The rule, for one sample with per-step confidence c_1..c_T (the max softmax of the cumulative
mean logits, or the top-1/top-2 margin) and a threshold θ:

    exit(θ) = min { t : c_t ≥ θ }, or T when no step is confident enough,

and the sample is classified by the cumulative prediction at its exit step. θ = 0 exits every
sample at t = 1; θ > 1 never exits early (t = T). For a grid of thresholds `curve` reports the
accuracy, the mean and 95th-percentile exit step, the mean share of the event stream consumed at
exit, and the energy spent up to exit (each sample's own MACs and ACs up to its exit step, priced
with the 45 nm constants of `hsd.metrics.energy_joules`).

A threshold for a latency budget ("mean exit ≤ B steps") is chosen on the *validation* split and
then applied to test (`budget_result`); test data never influences the choice.

Everything here is pure numpy/pandas over `harness.common.samples.Split` arrays; `tables` builds the
report's early-exit tables for a whole sweep folder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.common import samples as sample_store

#: thresholds of the curves: a coarse sweep, a fine end near 1 (where confident models sit),
#: and ∞ (no early exit: every sample runs all T steps)
THRESHOLDS: tuple[float, ...] = (
    *sorted({*(round(x, 3) for x in np.linspace(0.0, 1.0, 21)), 0.97, 0.98, 0.99, 0.995, 0.999}),
    math.inf,
)
BUDGETS: tuple[int, ...] = (1, 2, 3)
SCORES = ("confidence", "margin")
# E_MAC / E_AC (45 nm) as `hsd.metrics` defines them; imported lazily to keep this module light
_ENERGY = None


def _energy(macs: np.ndarray, acs: np.ndarray) -> np.ndarray:
    global _ENERGY
    if _ENERGY is None:
        from hsd.metrics import energy_joules

        _ENERGY = energy_joules
    return _ENERGY(macs, acs)


# -- one split, one threshold --------------------------------------------------------------------
def exit_steps(score: np.ndarray, threshold: float) -> np.ndarray:
    """0-based exit index per sample: the first t with ``score[:, t] ≥ threshold``, else T - 1."""
    hit = np.asarray(score) >= threshold
    first = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), first, hit.shape[1] - 1)


def at_threshold(split: sample_store.Split, threshold: float, score: str = "confidence") -> dict:
    """Accuracy, exit-step statistics, stream fraction and energy of the rule at `threshold`."""
    if score not in SCORES:
        raise ValueError(f"unknown early-exit score {score!r}; valid: {', '.join(SCORES)}")
    idx = exit_steps(getattr(split, score), threshold)
    rows = np.arange(len(idx))
    correct = split.pred[rows, idx] == split.label
    steps = idx + 1
    return {
        "threshold": float(threshold),
        "acc": float(correct.mean()),
        "mean_exit": float(steps.mean()),
        "p95_exit": float(np.percentile(steps, 95)),
        "stream_fraction": float(split.stream_fraction[idx].mean()),
        "energy_j": float(_energy(split.macs[rows, idx], split.acs[rows, idx]).mean()),
    }


def curve(
    split: sample_store.Split,
    thresholds: Iterable[float] = THRESHOLDS,
    score: str = "confidence",
) -> pd.DataFrame:
    """`at_threshold` for every threshold of the grid, one row each."""
    return pd.DataFrame([at_threshold(split, th, score) for th in thresholds])


def pick_threshold(
    val: sample_store.Split,
    budget: float,
    thresholds: Iterable[float] = THRESHOLDS,
    score: str = "confidence",
) -> float:
    """The threshold with the best *validation* accuracy among those whose validation mean exit
    step is ≤ `budget` (ties: the earlier mean exit, then the lower threshold). θ = 0 always meets
    a budget ≥ 1, so there is always an answer for such budgets."""
    best = None
    for th in sorted(thresholds):
        r = at_threshold(val, th, score)
        if r["mean_exit"] > budget + 1e-12:
            continue
        key = (r["acc"], -r["mean_exit"])
        if best is None or key > best[0]:
            best = (key, th)
    if best is None:
        raise ValueError(
            f"no threshold keeps the mean exit step ≤ {budget}; budgets start at 1 step"
        )
    return best[1]


def budget_result(
    val: sample_store.Split,
    test: sample_store.Split,
    budget: float,
    thresholds: Iterable[float] = THRESHOLDS,
    score: str = "confidence",
) -> dict:
    """Threshold chosen on validation for `budget`, then measured on test."""
    th = pick_threshold(val, budget, thresholds, score)
    return {"budget": budget, **at_threshold(test, th, score)}


def pareto_mask(cost: Sequence[float], acc: Sequence[float]) -> np.ndarray:
    """True for points no other point beats (cost ≤ and acc ≥, one of them strictly)."""
    cost, acc = np.asarray(cost, dtype=float), np.asarray(acc, dtype=float)
    keep = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        better = (cost <= cost[i]) & (acc >= acc[i]) & ((cost < cost[i]) | (acc > acc[i]))
        keep[i] = not better.any()
    return keep


# -- statistics over seeds -----------------------------------------------------------------------
def ci95(values: Sequence[float]) -> float:
    """Half-width of the 95 % Student-t confidence interval of the mean (NaN for one value)."""
    x = np.asarray([v for v in values if not pd.isna(v)], dtype=float)
    if len(x) < 2 or not np.isfinite(x).all():
        return math.nan
    from scipy.stats import t

    return float(t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


# -- a whole sweep folder ------------------------------------------------------------------------
def load_runs(out_dir: str | Path, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The ok runs of prepared `rows` (one line per run: run_id, dataset, variant, T, seed) that
    have a per-sample file, with the file path; and the ok run ids without one. The latency sweep
    when the store holds one, else every sweep."""
    if (rows["sweep"] == "latency").any():  # the method comparison, as the cost plots use
        rows = rows[rows["sweep"] == "latency"]
    ok = rows[rows["status"] == "ok"].drop_duplicates(["run_id", "variant"])
    keys = ["run_id", "dataset", "variant", "T", "seed"]
    # a model that serves every T (DTS) is one run, at the T it was trained for
    runs = ok.assign(T=ok["T_trained"] if "T_trained" in ok else ok["T"])[keys].copy()
    runs["path"] = [sample_store.samples_path(out_dir, r) for r in runs["run_id"]]
    have = runs["path"].map(lambda p: p.exists())
    return runs[have].reset_index(drop=True), sorted(runs.loc[~have, "run_id"])


def _group_keys() -> list[str]:
    return ["dataset", "variant", "T"]


def _summarise(per_run: pd.DataFrame, by: list[str], acc_cols: Mapping[str, str]) -> pd.DataFrame:
    """Mean and 95 % CI over runs (seeds) of each metric column, per group `by`."""
    out = []
    for key, g in per_run.groupby(by, sort=False, dropna=False):
        rec = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        rec["n"] = g["run_id"].nunique()
        for col, name in acc_cols.items():
            rec[name] = g[col].mean()
            rec[f"{name} ci95"] = ci95(g[col])
        out.append(rec)
    return pd.DataFrame(out)


METRICS = {
    "acc_pct": "acc (%)",
    "mean_exit": "mean exit step",
    "p95_exit": "p95 exit step",
    "stream_fraction": "stream fraction",
    "energy_j": "energy (J)",
}


def tables(
    out_dir: str | Path,
    rows: pd.DataFrame,
    *,
    thresholds: Iterable[float] = THRESHOLDS,
    budgets: Iterable[int] = BUDGETS,
    score: str = "confidence",
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The early-exit tables of a sweep folder from its prepared rows and per-sample files.

    - ``early_exit``: per (dataset, variant, T, threshold) mean and 95 % CI over seeds of
      accuracy, mean / p95 exit step, stream fraction and energy (test split);
    - ``early_exit_frontier``: per dataset, the (variant, T, threshold) points of ``early_exit``
      on the Pareto frontier of accuracy against mean exit step (of equal points of one model,
      the lowest threshold);
    - ``early_exit_budget``: per (dataset, variant, T) and budget B, the test accuracy of the
      threshold chosen on validation for "mean exit ≤ B steps" (mean ± 95 % CI over seeds).

    Returns the tables and notes (what is missing and why); empty tables when no run has data.
    """
    thresholds = list(thresholds)
    runs, missing = load_runs(out_dir, rows)
    notes = []
    if missing:
        notes.append(
            f"early-exit data is missing for {len(missing)} of "
            f"{len(missing) + len(runs)} ok runs (no samples/<run_id>.npz; stores written "
            "before per-sample outcomes were kept, or runs that could not save them)"
        )
    curves, budget_rows = [], []
    no_val = 0
    for run in runs.itertuples(index=False):
        try:
            splits = sample_store.load(run.path)
        except ValueError as err:  # one unreadable file costs its run, not the report
            notes.append(f"skipped run {run.run_id}: {err}")
            continue
        meta = {"run_id": run.run_id, "dataset": run.dataset, "variant": run.variant, "T": run.T}
        if "test" in splits:
            c = curve(splits["test"], thresholds, score)
            curves.append(c.assign(**meta))
        if "val" not in splits or "test" not in splits:
            no_val += 1
            continue
        for b in budgets:
            r = budget_result(splits["val"], splits["test"], b, thresholds, score)
            budget_rows.append({**meta, **r})
    if no_val:
        notes.append(f"{no_val} runs have no validation outcomes, so no latency-budget rows")
    keys = _group_keys()
    if curves:
        per_run = pd.concat(curves, ignore_index=True)
        per_run["acc_pct"] = per_run["acc"] * 100
        ee = _summarise(per_run, [*keys, "threshold"], METRICS)
        front = []
        for _, g in ee.groupby("dataset", sort=False):
            front.append(g[pareto_mask(g["mean exit step"], g["acc (%)"])])
        # Thresholds that change no exit give equal points: keep the lowest threshold of each.
        frontier = (
            pd.concat(front)
            .drop_duplicates([*keys, "mean exit step", "acc (%)"])
            .sort_values(["dataset", "mean exit step"], kind="stable")
        )
    else:
        ee = pd.DataFrame(columns=[*keys, "threshold", "n"])
        frontier = ee.copy()
    if budget_rows:
        per_run = pd.DataFrame(budget_rows)
        per_run["acc_pct"] = per_run["acc"] * 100
        s = _summarise(
            per_run,
            [*keys, "budget"],
            {"acc_pct": "acc (%)", "mean_exit": "mean exit step"},
        )
        budget = _budget_wide(s)
    else:
        budget = pd.DataFrame(columns=[*keys, "n"])
    return {
        "early_exit": ee.reset_index(drop=True),
        "early_exit_frontier": frontier.reset_index(drop=True),
        "early_exit_budget": budget,
    }, notes


def format_ci(mean: float, ci: float) -> str:
    """``81.10 ± 0.50`` (mean ± 95 % CI half-width); one seed shows the mean only."""
    if pd.isna(mean):
        return "–"
    return f"{mean:.2f}" if pd.isna(ci) else f"{mean:.2f} ± {ci:.2f}"


def _budget_wide(s: pd.DataFrame) -> pd.DataFrame:
    """Rows (dataset, variant, T), per budget B the test accuracy (mean ± 95 % CI over seeds)
    and the test mean exit step; the threshold of each seed was chosen on its validation split
    for "validation mean exit ≤ B"."""
    keys = _group_keys()
    out = s[keys].drop_duplicates().reset_index(drop=True)
    for b in sorted(s["budget"].unique()):
        sub = out.merge(s[s["budget"] == b], on=keys, how="left")
        label = f"≤ {b:g} step" + ("s" if b != 1 else "")
        out[f"acc (%) at {label}"] = [
            format_ci(m, c) for m, c in zip(sub["acc (%)"], sub["acc (%) ci95"], strict=True)
        ]
        out[f"test mean exit at {label}"] = sub["mean exit step"].round(2).to_numpy()
    out["n"] = s.groupby(keys, sort=False)["n"].max().to_numpy()
    return out
