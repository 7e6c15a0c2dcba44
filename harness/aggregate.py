"""From stored result rows to the paper's tables and the data behind its plots (pure pandas).

Every measured cell is the mean over seeds of the top-1 accuracy in percent with its 95 %
confidence interval, ``81.10 [78.40, 83.80]``, and the number of seeds ``n`` in its own column;
a single seed shows the mean alone. The interval is Student t for fewer than 30 seeds and a
percentile bootstrap from 30 on (`harness.stats`); tidy frames name it per row in ``ci_method``,
and the Markdown of every wide table says so below it. CSV files keep the numbers: tidy frames
have ``mean``, ``std``, ``ci_low``, ``ci_high`` and ``n`` columns, wide tables a
``<dataset> mean`` / ``ci_low`` / ``ci_high`` column beside each formatted cell (left out of the
Markdown). Only runs with status ``ok`` enter a mean; runs that failed, diverged or were
infeasible are counted in a ``non-ok`` column and in `status_table`. The paper's numbers
(`harness.paper`) sit in their own columns named ``paper (<dataset>)`` and are never merged into
measured cells; measured columns of simulated datasets are labelled ``(simulated)``.

Beyond the paper's tables: `paired_table` compares HSD with every other latency-sweep method per
(dataset, T), paired by seed; `claims_table` checks each of the paper's claims against the rows
present; `rank_stability` says how often halves of the seeds rank the methods alike.

Conventions the rows follow: ``acc`` is a fraction in [0, 1] at inference step ``t`` of a model
run for ``T`` steps; a table cell uses the row with t = T unless it says otherwise; a non-ok run
stores one row with t = T and acc = NaN. If a run id was appended more than once (a retried run),
only its last append counts. A run serving several cells (``cells``: [[sweep, variant], ...], e.g.
``sts`` and ``tet``) is reported under each; the rows of a method whose one model serves every
inference T (``any_t``, e.g. DTS) are the cells at T = t.

Public functions return DataFrames; `build_tables` returns them all by name and `write_tables`
writes each one as CSV and Markdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness import paper, stats
from harness.store import CHUNK_COLUMN
from harness.sweeps import SWEEPS, T_LISTS

STATUSES = ("ok", "failed", "diverged", "infeasible")
DATASET_ORDER = ("cifar10-dvs", "n-caltech101", "dvs-gesture", "n-digits", "sim-gestures")
VARIANT_ORDER: dict[str, tuple[str, ...]] = {n: s.order for n, s in SWEEPS.items() if s.trains}
LATENCY_ORDER = VARIANT_ORDER["latency"]
TABLE1_T = T_LISTS["table1"]["paper"]  # Table 1's T per dataset (the same in every profile)
MISSING = "–"  # shown for an empty cell
#: DataFrame.attrs keys: columns kept in CSV but left out of Markdown, and a note under the table
CSV_ONLY = "csv_only"
NOTES = "notes"


# -- preparing rows ----------------------------------------------------------------------------------
def prepare(rows: pd.DataFrame) -> pd.DataFrame:
    """Normalise stored rows: fill optional columns, keep each run's last attempt, add ``acc_pct``.

    Raises ValueError when ``acc`` is not a fraction (the tables would be off by 100x).
    """
    df = explode_cells(rows)
    for col in ("sweep", "dataset", "variant", "method", "run_id", "status", "error"):
        if col not in df:
            df[col] = None
    for col in ("T", "t", "seed", "acc", "params", "energy_j", "stream_fraction"):
        if col not in df:
            df[col] = np.nan
    df["variant"] = df["variant"].where(df["variant"].notna(), df["method"])
    df["status"] = df["status"].where(df["status"].notna(), "unknown")
    if df["run_id"].isna().any():
        # Without a run id, a run is its configuration cell and seed.
        parts = [df[c].map(str) for c in ("sweep", "dataset", "variant", "T", "seed")]
        synth = parts[0].str.cat(parts[1:], sep="/")
        df["run_id"] = df["run_id"].where(df["run_id"].notna(), synth)
    if CHUNK_COLUMN in df and len(df):
        last = df.groupby("run_id")[CHUNK_COLUMN].transform("max")
        df = df[df[CHUNK_COLUMN] == last]
    for col in ("T", "t", "seed"):
        # Whole numbers print as 5, not 5.00, even when some rows (params sweep) lack them.
        values = pd.to_numeric(df[col], errors="coerce")
        if ((values % 1 == 0) | values.isna()).all():
            values = values.astype("Int64")
        df[col] = values
    df["acc"] = pd.to_numeric(df["acc"], errors="coerce")
    if (df["acc"] > 1.0 + 1e-9).any():
        raise ValueError(
            f"acc values up to {df['acc'].max()} found; stored accuracy must be a fraction in "
            "[0, 1] (tables show percent)"
        )
    df["acc_pct"] = df["acc"] * 100.0
    if "any_t" in df:
        any_t = df["any_t"].fillna(False).astype(bool) & df["t"].notna()
        df.loc[any_t, "T"] = df.loc[any_t, "t"]
    return df.reset_index(drop=True)


def explode_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """One copy of each row per (sweep, variant) cell its run serves (rows without ``cells``, from
    stores written before runs were shared, keep their own sweep and variant)."""
    if "cells" not in rows or rows.empty:
        return rows.copy()
    out = rows.copy()
    has = out["cells"].map(lambda c: isinstance(c, list) and len(c) > 0)
    out["_cell"] = out["cells"].where(has, None)
    out.loc[~has, "_cell"] = out.loc[~has].apply(
        lambda r: [[r.get("sweep"), r.get("variant")]], axis=1
    )
    out = out.explode("_cell", ignore_index=True)
    out["sweep"] = out["_cell"].map(lambda c: c[0])
    out["variant"] = out["_cell"].map(lambda c: c[1])
    return out.drop(columns=["_cell", "cells"])


def _final_step(df: pd.DataFrame) -> pd.DataFrame:
    """Rows measured at t = T (the accuracy of a model run for all of its T steps)."""
    return df[df["t"] == df["T"]]


def _order_key(values: pd.Series, order: tuple[str, ...]) -> pd.Series:
    rank = {v: i for i, v in enumerate(order)}
    return values.map(lambda v: (rank.get(v, len(order)), str(v)))


def _sort(df: pd.DataFrame, by: list[str], sweep: str | None = None) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    keys = []
    for col in by:
        if col == "variant":
            keys.append(_order_key(df[col], VARIANT_ORDER.get(sweep or "", ())))
        elif col == "dataset":
            keys.append(_order_key(df[col], DATASET_ORDER))
        else:
            keys.append(df[col])
    order = sorted(range(len(df)), key=lambda i: tuple(k.iloc[i] for k in keys))
    return df.iloc[order].reset_index(drop=True)


# -- statistics ----------------------------------------------------------------------------------------
def summarize(df: pd.DataFrame, keys: list[str], value: str = "acc_pct") -> pd.DataFrame:
    """Per group of `keys`: mean, std (ddof=1), 95 % interval (`stats.mean_ci`), n (ok runs),
    non_ok (runs) and ci_method (``t``, ``bootstrap``, or empty for one seed).

    `df` is prepared rows; groups that only have non-ok runs appear with n = 0 and NaN mean.
    """
    cols = [*keys, "mean", "std", "ci_low", "ci_high", "n", "non_ok", "ci_method"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    ok = df[(df["status"] == "ok") & df[value].notna()]
    records = []
    for key, values in ok.groupby(keys, dropna=False)[value]:
        iv = stats.mean_ci(values)
        std = values.std(ddof=1) if iv.n > 1 else np.nan
        records.append((*key, iv.mean, std, iv.low, iv.high, iv.n, iv.method))
    stat_cols = [*keys, "mean", "std", "ci_low", "ci_high", "n", "ci_method"]
    summary = pd.DataFrame(records, columns=stat_cols)
    for k in keys:  # keep the key dtypes of the rows (Int64 T and t)
        if len(summary):
            summary[k] = summary[k].astype(ok[k].dtype)
    bad = df[df["status"] != "ok"]
    # A failed run stores its row at t = T; count it against every group of its cell.
    bad_keys = [k for k in keys if k != "t"]
    non_ok = bad.groupby(bad_keys, dropna=False)["run_id"].nunique().rename("non_ok").reset_index()
    out = summary.merge(non_ok, on=bad_keys, how="outer") if len(non_ok) else summary
    if "non_ok" not in out:
        out["non_ok"] = 0
    if "t" in keys and len(non_ok):
        # Groups created only by failures have no t; they belong at t = T.
        out["t"] = out["t"].where(out["t"].notna(), out.get("T"))
    out["n"] = out["n"].fillna(0).astype(int)
    out["non_ok"] = out["non_ok"].fillna(0).astype(int)
    out["ci_method"] = out["ci_method"].fillna("")
    return out[cols]


def format_cell(mean: float, low: float, high: float, n: int) -> str:
    """``81.10 [78.40, 83.80]`` (mean [95 % interval]) for several seeds, ``81.10`` for one,
    ``–`` for none; n is shown in its own column."""
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if n == 1 or low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{mean:.2f}"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def dataset_label(dataset: str) -> str:
    """Column label of a measured dataset; simulated ones say so."""
    return f"{dataset} (simulated)" if dataset in paper.SIMULATED_DATASETS else dataset


def _wide(summary: pd.DataFrame, row_keys: list[str], sweep: str, paper_values: dict | None):
    """Rows = `row_keys`, per measured dataset the cell plus ``n`` and ``non-ok``, then paper columns."""
    datasets = [d for d in DATASET_ORDER if d in set(summary["dataset"])]
    datasets += sorted(set(summary["dataset"]) - set(datasets), key=str)
    index = _sort(summary[row_keys].drop_duplicates(), row_keys, sweep)
    out = index.copy()
    csv_only: list[str] = []
    for d in datasets:
        sub = summary[summary["dataset"] == d]
        merged = index.merge(sub, on=row_keys, how="left")
        label = dataset_label(d)
        n = merged["n"].fillna(0).astype(int).to_numpy()
        out[label] = [
            format_cell(m, lo, hi, k)
            for m, lo, hi, k in zip(
                merged["mean"], merged["ci_low"], merged["ci_high"], n, strict=True
            )
        ]
        out[f"{label} n"] = n
        out[f"{label} non-ok"] = merged["non_ok"].fillna(0).astype(int).to_numpy()
        for col in ("mean", "ci_low", "ci_high"):
            # The numbers behind the cell, for CSV readers; Markdown shows the cell alone.
            out[f"{label} {col}"] = merged[col].astype(float).to_numpy()
            csv_only.append(f"{label} {col}")
    if paper_values:
        real = [d for d in paper.PAPER_DATASETS if any(d in v for v in paper_values.values())]
        for d in real:
            vals = []
            for _, row in index.iterrows():
                key = tuple(row[k] for k in row_keys) if len(row_keys) > 1 else row[row_keys[0]]
                if isinstance(key, tuple):
                    key = tuple(int(k) if isinstance(k, (float, np.integer)) else k for k in key)
                vals.append(paper_values.get(key, {}).get(d, np.nan))
            out[paper.paper_column(d)] = vals
    out.attrs[CSV_ONLY] = csv_only
    out.attrs[NOTES] = stats.CI_NOTE
    return out


# -- the tables ------------------------------------------------------------------------------------
def _sweep(df: pd.DataFrame, name: str) -> pd.DataFrame:
    return df[df["sweep"] == name]


def figure2_data(df: pd.DataFrame) -> pd.DataFrame:
    """Figure 2: accuracy (%) at t = T versus T, per dataset and variant (latency sweep), tidy."""
    sub = _final_step(_sweep(df, "latency"))
    return _sort(
        summarize(sub, ["dataset", "variant", "T"]), ["dataset", "variant", "T"], "latency"
    )


def figure2_table(df: pd.DataFrame) -> pd.DataFrame:
    """Figure 2 as a table: rows (variant, T), a column per dataset, the paper's T = 1 values."""
    s = summarize(_final_step(_sweep(df, "latency")), ["dataset", "variant", "T"])
    return _wide(s, ["variant", "T"], "latency", paper.FIGURE2)


def any_t_data(df: pd.DataFrame) -> pd.DataFrame:
    """The "any t" curve: for the model trained at the largest T of each (dataset, variant), the
    accuracy (%) at every inference step t = 1..T (cumulative mean of logits up to t)."""
    sub = _sweep(df, "latency")
    if sub.empty:
        return summarize(sub, ["dataset", "variant", "T", "t"])
    tmax = sub.groupby(["dataset", "variant"])["T"].transform("max")
    sub = sub[sub["T"] == tmax]
    s = summarize(sub, ["dataset", "variant", "T", "t"])
    return _sort(s, ["dataset", "variant", "T", "t"], "latency")


def table1(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1: accuracy at each dataset's paper T (5; gestures 5 and 10) per method."""
    sub = _final_step(_sweep(df, "latency"))
    wanted = sub.apply(lambda r: r["T"] in TABLE1_T.get(r["dataset"], ()), axis=1)
    sub = sub[wanted] if len(sub) else sub
    s = summarize(sub, ["dataset", "variant", "T"])
    return _wide(s, ["variant", "T"], "latency", paper.TABLE1)


def _variant_table(df: pd.DataFrame, sweep: str, paper_values: dict) -> pd.DataFrame:
    s = summarize(_final_step(_sweep(df, sweep)), ["dataset", "variant", "T"])
    out = _wide(s, ["variant", "T"], sweep, None)
    if paper_values:
        for d in [d for d in paper.PAPER_DATASETS if any(d in v for v in paper_values.values())]:
            out[paper.paper_column(d)] = [
                paper_values.get(v, {}).get(d, np.nan) for v in out["variant"]
            ]
    return out


def table2(df: pd.DataFrame) -> pd.DataFrame:
    """Table 2 (ablation of HT and SKD): variants none, HT, SKD, HT+KD, HT+SKD."""
    return _variant_table(df, "ablation", paper.TABLE2)


def table3(df: pd.DataFrame) -> pd.DataFrame:
    """Table 3: the QCFS quantization step L of the pre-trained ANN."""
    return _variant_table(df, "quantization", paper.TABLE3)


def table4(df: pd.DataFrame) -> pd.DataFrame:
    """Table 4: hybrid training (HT) added to TET and SLTT."""
    return _variant_table(df, "ht", paper.TABLE4)


def table6(df: pd.DataFrame) -> pd.DataFrame:
    """Table 6: vanilla KD variants (response, feature, both) against the baseline."""
    return _variant_table(df, "kd", paper.TABLE6)


def table5(df: pd.DataFrame) -> pd.DataFrame:
    """Table 5: parameter count per dataset and architecture (params sweep, no training).

    ``architecture`` is the row's ``arch_label`` when present (e.g. "VGG-SNN"), else its variant;
    ``dataset's arch`` says whether the dataset's own architecture is that one (when rows say).
    """
    cols = ["dataset", "architecture", "params", "params (M)"]
    sub = _sweep(df, "params")
    sub = sub[sub["status"].isin(["ok", "unknown"]) & sub["params"].notna()]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    sub = sub.assign(
        architecture=sub["arch_label"].fillna(sub["variant"])
        if "arch_label" in sub
        else sub["variant"]
    )
    # The count is a property of the architecture: the last stored row of a (dataset, arch) wins.
    last = sub.groupby(["dataset", "variant"], sort=False).tail(1)
    out = last.assign(
        params=last["params"].astype("int64"), **{"params (M)": (last["params"] / 1e6).round(2)}
    )
    if "dataset_arch" in last and last["dataset_arch"].notna().any():
        same = (last["dataset_arch"] == last["variant"]).map({True: "yes", False: "no"})
        out["dataset's arch"] = same.where(last["dataset_arch"].notna(), None)
        cols.append("dataset's arch")
    return _sort(out, ["dataset", "variant"])[cols]


def status_table(df: pd.DataFrame) -> pd.DataFrame:
    """Runs per status for each (sweep, dataset, variant); `total` counts distinct runs."""
    keys = ["sweep", "dataset", "variant"]
    if df.empty:
        return pd.DataFrame(columns=[*keys, *STATUSES, "total"])
    runs = df.drop_duplicates("run_id")
    counts = runs.groupby([*keys, "status"], dropna=False).size().unstack("status", fill_value=0)
    extra = sorted(c for c in counts.columns if c not in STATUSES)
    counts = counts.reindex(columns=[*STATUSES, *extra], fill_value=0).astype(int)
    counts["total"] = counts.sum(axis=1)
    out = counts.reset_index()
    out.columns.name = None
    return _sort(out, ["sweep", "dataset", "variant"])


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """One line per non-ok run with its error text (what to look at after a sweep)."""
    cols = ["sweep", "dataset", "variant", "T", "seed", "run_id", "status", "error"]
    bad = df[df["status"] != "ok"].drop_duplicates("run_id")
    return _sort(bad[cols], ["sweep", "dataset", "variant", "T", "seed"]) if len(bad) else bad[cols]


def _cost_frame(df: pd.DataFrame, column: str) -> pd.DataFrame:
    sub = _sweep(df, "latency") if (df["sweep"] == "latency").any() else df
    sub = _final_step(sub)
    keys = ["sweep", "dataset", "variant", "T"]
    s = summarize(sub, keys)
    if column not in sub:
        sub = sub.assign(**{column: np.nan})
    ok = sub[sub["status"] == "ok"]
    cost = ok.groupby(keys, dropna=False)[column].mean().rename(column).reset_index()
    out = s.merge(cost, on=keys, how="left") if len(s) else s.assign(**{column: []})
    return _sort(out, keys, "latency")


def energy_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (%) against the estimated inference energy per sample (J), one point per
    (dataset, variant, T) at t = T; the latency sweep if present, else every sweep."""
    return _cost_frame(df, "energy_j")


def stream_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (%) against the fraction of the event stream consumed before the decision
    (HSD skips the T_p pre-training frames, so its fraction is (T_p + t) / F)."""
    return _cost_frame(df, "stream_fraction")


# -- comparisons over seeds ------------------------------------------------------------------------
#: "low T" in the claims: the smallest T of each dataset's latency grid, plus every T up to this
LOW_T_MAX = 2
REFERENCE = "hsd"  # the method `paired_table` compares every other latency-sweep method with
PAIRED_NOTE = (
    "Difference = HSD − baseline in accuracy points, paired by seed (only seeds where both ran "
    "ok); interval as in the other tables (Student t below 30 pairs, bootstrap from 30). "
    "p_ttest_rel: scipy.stats.ttest_rel; p_wilcoxon: scipy.stats.wilcoxon (two-sided; with "
    "fewer than 6 pairs it cannot fall below 0.05). Verdict "
    "from the interval: HSD better (above 0), HSD worse (below 0), else inconclusive."
)


def _seed_scores(df: pd.DataFrame, sweep: str) -> pd.DataFrame:
    """Accuracy (%) at t = T of ok runs, one row per (dataset, T, seed), a column per variant.

    Rows repeated for a seed (runs of different configurations stored in one folder) average.
    """
    sub = _final_step(_sweep(df, sweep))
    ok = sub[(sub["status"] == "ok") & sub["acc_pct"].notna()]
    if ok.empty:
        return pd.DataFrame()
    return ok.pivot_table(
        index=["dataset", "T", "seed"], columns="variant", values="acc_pct", aggfunc="mean"
    )


def _at(scores: pd.DataFrame, key: tuple, variant: str) -> pd.Series:
    """Accuracy per seed of `variant` at `key` = (dataset, T), ok seeds only (maybe none)."""
    try:
        return scores.loc[key, variant].dropna()
    except KeyError:
        return pd.Series(dtype=float)


def _pair(scores: pd.DataFrame, key, a: str, b: str, key_b=None):
    """(a − b over seeds where both are ok at `key` (resp. `key_b`), seeds with only one side)."""
    sa, sb = _at(scores, key, a), _at(scores, key if key_b is None else key_b, b)
    both = sa.index.intersection(sb.index)
    unpaired = len(sa.index.symmetric_difference(sb.index))
    return stats.paired_difference(sa[both].to_numpy(), sb[both].to_numpy()), unpaired


def paired_table(df: pd.DataFrame) -> pd.DataFrame:
    """HSD against every other method of the latency sweep, per (dataset, T), paired by seed.

    Columns: ``diff_mean`` (HSD − baseline, points), ``ci_low``/``ci_high`` (95 % interval of the
    mean difference, `stats.mean_ci`), ``n`` pairs, ``p_ttest_rel`` (`scipy.stats.ttest_rel`),
    ``p_wilcoxon`` (`scipy.stats.wilcoxon`), ``verdict`` (HSD better / HSD worse /
    inconclusive, from the interval), and ``unpaired`` (seeds ok for only one of the two).
    ``hsd_mean`` and ``baseline_mean`` are over every ok seed of each, paired or not.
    """
    cols = [
        "dataset", "T", "baseline", "n", "hsd_mean", "baseline_mean", "diff_mean",
        "ci_low", "ci_high", "ci_method", "p_ttest_rel", "p_wilcoxon", "verdict", "unpaired",
    ]  # fmt: skip
    scores = _seed_scores(df, "latency")
    if scores.empty or REFERENCE not in scores:
        return pd.DataFrame(columns=cols)
    baselines = [v for v in scores.columns if v != REFERENCE]
    verdicts = {"above": "HSD better", "below": "HSD worse", "covers zero": "inconclusive"}
    records = []
    for dataset, T in scores.index.droplevel("seed").unique():
        hsd = _at(scores, (dataset, T), REFERENCE)
        if hsd.empty:
            continue  # HSD did not run ok at this (dataset, T): nothing to compare with
        for b in baselines:
            base = _at(scores, (dataset, T), b)
            if base.empty:
                continue  # the baseline did not run ok at this (dataset, T)
            res, unpaired = _pair(scores, (dataset, T), REFERENCE, b)
            iv = res.diff
            records.append(
                (
                    dataset,
                    T,
                    b,
                    iv.n,
                    hsd.mean(),
                    base.mean(),
                    iv.mean,
                    iv.low,
                    iv.high,
                    iv.method,
                    res.p_ttest,
                    res.p_wilcoxon,
                    verdicts[stats.interval_verdict(iv)],
                    unpaired,
                )
            )
    out = pd.DataFrame(records, columns=cols)
    out = _sort(out.rename(columns={"baseline": "variant"}), ["dataset", "T", "variant"], "latency")
    out = out.rename(columns={"variant": "baseline"})
    out.attrs[NOTES] = PAIRED_NOTE
    return out


@dataclass(frozen=True)
class Claim:
    """A claim of the paper as a paired difference ``a − b`` > 0 within one sweep.

    `scope` picks the (dataset, T) settings: ``low T`` (the smallest T of the dataset's grid and
    every T ≤ `LOW_T_MAX`), ``every T``, or ``largest vs smallest T`` (variant `a` at the
    dataset's largest T against the same variant at its smallest T).
    """

    text: str
    sweep: str
    a: str
    b: str
    scope: str


CLAIMS = (
    Claim("HSD > STS at low T", "latency", "hsd", "sts", "low T"),
    Claim("HSD > DTS at low T", "latency", "hsd", "dts", "low T"),
    Claim("STS > DTS at low T", "latency", "sts", "dts", "low T"),
    Claim("HT improves TET", "ht", "TET w/ HT", "TET w/o HT", "every T"),
    Claim("HT improves SLTT", "ht", "SLTT w/ HT", "SLTT w/o HT", "every T"),
    Claim("SKD > KD", "ablation", "HT+SKD", "HT+KD", "every T"),
    Claim(
        "direct training loses accuracy as T falls",
        "latency",
        "sts",
        "sts",
        "largest vs smallest T",
    ),
)
CLAIMS_NOTE = (
    "Effect = the claim's paired difference in accuracy points (same seed on both sides), with "
    "its 95 % interval (Student t below 30 pairs, bootstrap from 30) and p_ttest_rel "
    "(scipy.stats.ttest_rel). supported: interval above 0; not supported: interval below 0 "
    "(the opposite effect); inconclusive: the interval covers 0 or there is one pair; not run: "
    "the rows are not in the store; no paired ok runs: both sides ran but no seed is ok on both. "
    f"Low T = each dataset's smallest T, plus T ≤ {LOW_T_MAX}."
)


def _claim_verdict(iv: stats.Interval) -> str:
    v = stats.interval_verdict(iv)
    if v == "above":
        return "supported"
    if v == "below":
        return "not supported"
    return f"inconclusive at {iv.n} seed" + ("s" if iv.n != 1 else "")


def _claim_settings(claim: Claim, grid: list[int]) -> list[tuple[int, int]]:
    """(T of a, T of b) for each setting of `claim` on a dataset whose sweep ran at T in `grid`."""
    if claim.scope == "largest vs smallest T":
        return [(grid[-1], grid[0])] if len(grid) > 1 else []
    if claim.scope == "low T":
        return [(T, T) for T in sorted({grid[0], *(T for T in grid if T <= LOW_T_MAX)})]
    return [(T, T) for T in grid]


def _comparison(claim: Claim, Ta: int | None = None, Tb: int | None = None) -> str:
    if claim.scope != "largest vs smallest T":
        return f"{claim.a} − {claim.b}"
    if Ta is None:
        return f"{claim.a} at the largest T − {claim.b} at the smallest T"
    return f"{claim.a} T={Ta} − {claim.b} T={Tb}"


def claims_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each claim of the paper (`CLAIMS`) per dataset and setting, with the measured effect.

    `df` is prepared rows of any subset of sweeps (e.g. the concatenated stores of several sweep
    folders). A setting where either side has no row gives ``not run``, one where both ran but
    no seed is ok on both sides ``no paired ok runs``; a claim with no rows at all gets one
    ``not run`` row.
    """
    cols = [
        "claim", "sweep", "dataset", "T", "comparison", "n", "effect", "ci_low", "ci_high",
        "ci_method", "p_ttest_rel", "verdict",
    ]  # fmt: skip
    if df.empty:
        return pd.DataFrame(columns=cols)
    records = []
    for claim in CLAIMS:
        sweep_rows = _final_step(_sweep(df, claim.sweep))
        scores = _seed_scores(df, claim.sweep)
        mine = sweep_rows[sweep_rows["variant"].isin({claim.a, claim.b})]
        datasets = _sort(mine[["dataset"]].drop_duplicates(), ["dataset"])["dataset"]
        rows = []
        for d in datasets:
            on_d = sweep_rows[sweep_rows["dataset"] == d]
            ran = set(zip(on_d["variant"], on_d["T"], strict=True))
            grid = sorted(int(T) for T in on_d["T"].dropna().unique())
            for Ta, Tb in _claim_settings(claim, grid):
                head = (claim.text, claim.sweep, d, min(Ta, Tb), _comparison(claim, Ta, Tb))
                if (claim.a, Ta) not in ran or (claim.b, Tb) not in ran:
                    rows.append((*head, 0, np.nan, np.nan, np.nan, "", np.nan, "not run"))
                    continue
                res, _ = _pair(scores, (d, Ta), claim.a, claim.b, key_b=(d, Tb))
                iv = res.diff
                verdict = _claim_verdict(iv) if iv.n else "no paired ok runs"
                rows.append(
                    (*head, iv.n, iv.mean, iv.low, iv.high, iv.method, res.p_ttest, verdict)
                )
        if not rows:
            head = (claim.text, claim.sweep, None, pd.NA, _comparison(claim))
            rows.append((*head, 0, np.nan, np.nan, np.nan, "", np.nan, "not run"))
        records += rows
    out = pd.DataFrame(records, columns=cols)
    out["T"] = out["T"].astype("Int64")
    out.attrs[NOTES] = CLAIMS_NOTE
    return out


RANK_NOTE = (
    "For each (dataset, T): seeds where every method ran ok, split into two halves in every way "
    f"(or {stats.MAX_SPLITS} random splits, seed {stats.SPLIT_SEED}, when there are more); "
    "each half ranks the methods by mean accuracy. identical_order: fraction of splits whose two "
    "rankings agree exactly; kendall_tau_mean: mean Kendall tau-b between them."
)


def rank_stability(df: pd.DataFrame) -> pd.DataFrame:
    """How stable the ranking of the latency sweep's methods is over seeds, per (dataset, T).

    Only seeds where every method of the (dataset, T) ran ok count; see `stats.rank_agreement`.
    """
    cols = [
        "dataset", "T", "methods", "seeds", "splits", "sampling", "identical_order",
        "kendall_tau_mean", "note",
    ]  # fmt: skip
    scores = _seed_scores(df, "latency")
    if scores.empty:
        return pd.DataFrame(columns=cols)
    records = []
    for dataset, T in scores.index.droplevel("seed").unique():
        block = scores.loc[(dataset, T)].dropna(axis=1, how="all").dropna(axis=0)
        ra = stats.rank_agreement(block.to_numpy())
        note = ""
        if ra.methods < 2:
            note = "fewer than 2 methods"
        elif ra.seeds < 4:
            seeds = f"{ra.seeds} seed" + ("s" if ra.seeds != 1 else "")
            note = f"fewer than 2 seeds per half ({seeds} with every method ok)"
        records.append(
            (
                dataset,
                T,
                ra.methods,
                ra.seeds,
                ra.splits,
                ra.sampling,
                ra.identical_fraction,
                ra.kendall_tau_mean,
                note,
            )
        )
    out = _sort(pd.DataFrame(records, columns=cols), ["dataset", "T"])
    out.attrs[NOTES] = RANK_NOTE
    return out


#: table name -> builder, in the order reports list them
TABLES = {
    "table1": table1,
    "figure2": figure2_table,
    "figure2_data": figure2_data,
    "figure2_any_t": any_t_data,
    "table2": table2,
    "table3": table3,
    "table4": table4,
    "table5": table5,
    "table6": table6,
    "energy": energy_frame,
    "stream_fraction": stream_frame,
    "paired": paired_table,
    "claims": claims_table,
    "rank_stability": rank_stability,
    "status": status_table,
    "failures": failures,
}


def build_tables(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every table from stored rows (`ResultStore.rows()`), by name; empty ones included."""
    df = prepare(rows)
    return {name: fn(df) for name, fn in TABLES.items()}


# -- writing -----------------------------------------------------------------------------------------
def _md_cell(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == 0 or 0.01 <= abs(v) < 1e6:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table (pandas' own needs `tabulate`, which this project does without).

    Columns named in ``df.attrs[CSV_ONLY]`` are left out; ``df.attrs[NOTES]`` follows the table.
    """
    notes = df.attrs.get(NOTES, "")
    df = df.drop(columns=[c for c in df.attrs.get(CSV_ONLY, ()) if c in df])
    header = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = [
        "| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
        "| " + " | ".join("---:" if num else "---" for num in numeric) + " |",
    ]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if notes:  # how to read the cells (see each builder's CSV_ONLY / NOTES attrs)
        lines += ["", notes]
    return "\n".join(lines) + "\n"


def write_tables(df_rows: pd.DataFrame, out_dir: str | Path) -> dict[str, list[Path]]:
    """Write every non-empty table as ``<name>.csv`` and ``<name>.md`` under `out_dir`.

    Returns {table name: [csv path, md path]}; empty tables (sweeps that were not run) are skipped.
    """
    tables = build_tables(df_rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for name, table in tables.items():
        if table.empty:
            continue
        csv, md = out / f"{name}.csv", out / f"{name}.md"
        table.to_csv(csv, index=False)
        md.write_text(to_markdown(table))
        written[name] = [csv, md]
    return written
