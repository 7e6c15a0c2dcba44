"""From stored result rows to the paper's tables and the data behind its plots (pure pandas).

Every measured cell is the mean over seeds of the top-1 accuracy in percent with its 95 %
confidence interval, ``81.10 [78.40, 83.80]``, and the number of seeds ``n`` in its own column;
a single seed shows the mean alone. The interval is Student t for fewer than 30 seeds and a
percentile bootstrap from 30 on (`harness.report.stats`); tidy frames name it per row in ``ci_method``,
and the Markdown of every wide table says so below it. CSV files keep the numbers: tidy frames
have ``mean``, ``std``, ``ci_low``, ``ci_high`` and ``n`` columns, wide tables a
``<dataset> mean`` / ``ci_low`` / ``ci_high`` column beside each formatted cell (left out of the
Markdown). Only runs with status ``ok`` enter a mean; runs that failed, diverged or were
infeasible are counted in a ``non-ok`` column and in `status_table`. The paper's numbers
(`harness.report.paper`) sit in their own columns named ``paper (<dataset>)`` and are never merged into
measured cells; measured columns of simulated datasets are labelled ``(simulated)``.

Beyond the paper's tables, `harness.report.comparisons` compares methods over seeds (paired
differences, the paper's claims, rank stability); `harness.report.tables` names every table and writes
them as CSV and Markdown.

Conventions the rows follow: ``acc`` is a fraction in [0, 1] at inference step ``t`` of a model
run for ``T`` steps; a table cell uses the row with t = T unless it says otherwise; a non-ok run
stores one row with t = T and acc = NaN. If a run id was appended more than once (a retried run),
only its last append counts. A run serving several cells (``cells``: [[sweep, variant], ...], e.g.
``sts`` and ``tet``) is reported under each; the rows of a method whose one model serves every
inference T (``any_t``, e.g. DTS) are the cells at T = t.

Public functions return DataFrames.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.common import curves
from harness.common.row_schema import STATUSES
from harness.common.store import CHUNK_COLUMN
from harness.common.sweeps import SWEEPS, T_LISTS
from harness.report import paper, stats

DATASET_ORDER = ("cifar10-dvs", "n-caltech101", "dvs-gesture", "n-digits", "sim-gestures")
VARIANT_ORDER: dict[str, tuple[str, ...]] = {n: s.order for n, s in SWEEPS.items() if s.trains}
LATENCY_ORDER = VARIANT_ORDER["latency"]
TABLE1_T = T_LISTS["table1"]["paper"]  # Table 1's T per dataset (a smoke store has a subset)
MISSING = "–"  # shown for an empty cell
NO_CURVE_CELL = curves.NO_CURVE  # a flag cell of runs that kept no learning curve
#: DataFrame.attrs keys: columns kept in CSV but left out of Markdown, and a note under the table
CSV_ONLY = "csv_only"
NOTES = "notes"


# -- preparing rows ----------------------------------------------------------------------------------
def prepare_rows(rows: pd.DataFrame) -> pd.DataFrame:
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
    df["T_trained"] = df["T"]  # the T the run's model was trained and evaluated for
    _refuse_two_runs_of_one_seed(df)
    if "any_t" in df:
        any_t = df["any_t"].fillna(False).astype(bool) & df["t"].notna()
        df.loc[any_t, "T"] = df.loc[any_t, "t"]
    return df.reset_index(drop=True)


def _refuse_two_runs_of_one_seed(df: pd.DataFrame) -> None:
    """Raise ValueError when a table cell holds two run ids for one seed.

    A mean over seeds would count them as two seeds (a narrower interval, two recipes averaged).
    A sweep folder cannot get there (`harness.common.stale`), a store merged by hand can. Tuning
    rows (sweep "tune") are exempt: there every trial is another config of the same cell and seed.
    """
    keys = ["sweep", "dataset", "variant", "T", "t", "seed"]
    sub = df[df["sweep"].isin(VARIANT_ORDER) & df["seed"].notna()]
    runs = sub.groupby(keys, dropna=False)["run_id"].unique()
    twice = runs[runs.map(len) > 1]
    if twice.empty:
        return
    lines = [
        f"{sweep}:{variant} {dataset} T={T} seed {seed}: runs {', '.join(sorted(ids))}"
        for (sweep, dataset, variant, T, _t, seed), ids in twice.items()
    ]
    lines = list(dict.fromkeys(lines))  # one line per cell and seed, not per t
    more = f"\n  ... and {len(lines) - 10} more" if len(lines) > 10 else ""
    raise ValueError(
        f"{len(lines)} cell(s) hold two or more runs of one seed, which every mean would count as "
        "separate seeds:\n  " + "\n  ".join(lines[:10]) + more + "\nKeep one run per cell "
        "and seed: move the others' rows out of results.jsonl (for a sweep folder, `python -m "
        "harness.run ... --set-aside-stale` moves runs the plan no longer trains to <out>/stale)."
    )


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


# -- learning-curve flags -----------------------------------------------------------------------
#: columns `with_curve_flags` adds to the rows (per run, from its learning curve)
CURVE_COLUMNS = ("curve", "flag_diverged", "flag_silent", "flag_detail")
FLAG_COLUMNS = {"flag_diverged": "flag: diverged", "flag_silent": "flag: silent layer"}
STATUS_NOTE = (
    "Runs per status (each run once, under the first cell it serves). From each run's learning "
    "curve (curves/<run_id>.json): 'flag: diverged' counts runs with a non-finite training loss or a "
    "stage whose last training loss is above its first epoch's; 'flag: silent layer' counts "
    f"runs with a spiking layer under {100 * curves.SILENT_RATE:g} % spikes per neuron and time "
    "step at the chosen epoch (validation pass); 'no curve' counts runs without a curve file "
    "(stores from before curves were kept), and a cell whose runs have none says so. The "
    "curve_flags table names every flagged run."
)


def with_curve_flags(rows: pd.DataFrame, curves_by_run: dict[str, dict]) -> pd.DataFrame:
    """`rows` with `CURVE_COLUMNS`: whether the run has a learning curve and its flags
    (`harness.common.curves.flags`); runs without a curve get ``curve`` False and no flags."""
    out = rows.copy()
    if "run_id" not in out:
        return out
    flags = {rid: curves.flags(c) for rid, c in curves_by_run.items()}
    ids = out["run_id"]
    out["curve"] = ids.map(lambda r: r in flags).astype(bool)
    out["flag_diverged"] = ids.map(lambda r: r in flags and flags[r].diverged).astype(bool)
    out["flag_silent"] = ids.map(lambda r: r in flags and flags[r].silent).astype(bool)
    out["flag_detail"] = ids.map(lambda r: flags[r].detail if r in flags else "")
    return out


def status_table(df: pd.DataFrame) -> pd.DataFrame:
    """Runs per status for each (sweep, dataset, variant); `total` counts distinct runs. Then the
    learning-curve flags of those runs (see `STATUS_NOTE`; rows without `CURVE_COLUMNS` count
    as runs without a curve).

    Rows written by the Ray executor carry ``restarts`` (times Ray restarted the run's trial after
    losing its node or worker); their table adds a ``restarts`` column, the sum over the runs.
    """
    keys = ["sweep", "dataset", "variant"]
    flag_cols = ["no curve", *FLAG_COLUMNS.values()]
    if df.empty:
        return pd.DataFrame(columns=[*keys, *STATUSES, "total", *flag_cols])
    runs = df.drop_duplicates("run_id")
    counts = runs.groupby([*keys, "status"], dropna=False).size().unstack("status", fill_value=0)
    extra = sorted(c for c in counts.columns if c not in STATUSES)
    counts = counts.reindex(columns=[*STATUSES, *extra], fill_value=0).astype(int)
    counts["total"] = counts.sum(axis=1)
    if "restarts" in runs:
        restarts = pd.to_numeric(runs["restarts"], errors="coerce").fillna(0)
        counts["restarts"] = restarts.groupby([runs[k] for k in keys], dropna=False).sum()
        counts["restarts"] = counts["restarts"].astype(int)
    flagged = runs.assign(
        **{c: runs[c].fillna(False).astype(bool) if c in runs else False for c in CURVE_COLUMNS[:3]}
    ).assign(no_curve=lambda r: ~r["curve"])
    per_cell = flagged.groupby(keys, dropna=False)[["no_curve", *FLAG_COLUMNS]].sum().astype(int)
    counts["no curve"] = per_cell["no_curve"]
    for col, label in FLAG_COLUMNS.items():
        # A cell none of whose runs has a curve cannot be flagged either way: it says so.
        counts[label] = [
            NO_CURVE_CELL if none == total else n
            for n, none, total in zip(
                per_cell[col], per_cell["no_curve"], counts["total"], strict=True
            )
        ]
    out = counts.reset_index()
    out.columns.name = None
    out = _sort(out, ["sweep", "dataset", "variant"])
    out.attrs[NOTES] = STATUS_NOTE
    return out


def curve_flags(df: pd.DataFrame) -> pd.DataFrame:
    """One line per run flagged by its learning curve, with the reason (`harness.common.curves.flags`)."""
    cols = ["sweep", "dataset", "variant", "T", "seed", "run_id", "status", "flags"]
    if df.empty or "flag_detail" not in df:
        return pd.DataFrame(columns=cols)
    runs = df.drop_duplicates("run_id")
    bad = runs[runs["flag_diverged"].fillna(False) | runs["flag_silent"].fillna(False)]
    bad = bad.rename(columns={"flag_detail": "flags"})
    return _sort(bad[cols], ["sweep", "dataset", "variant", "T", "seed"]) if len(bad) else bad[cols]


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
