"""Comparisons over seeds, beyond the paper's tables (pure pandas + `harness.report.stats`):

- `paired_table`: HSD against every other latency-sweep method per (dataset, T), paired by seed;
- `claims_table`: each of the paper's claims checked against the rows present;
- `rank_stability`: how often halves of the seeds rank the methods alike.

A decisive verdict of the first two also says whether it is firm: whether it still holds with
any one seed left out (`stats.loo_same_verdict`, no extra training).

Inputs are rows prepared by `harness.report.aggregate.prepare_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.report import stats
from harness.report.aggregate import MISSING, NOTES, _final_step, _sort, _sweep

#: "low T" in the claims: the smallest T of each dataset's latency grid, plus every T up to this
LOW_T_MAX = 2
REFERENCE = "hsd"  # the method `paired_table` compares every other latency-sweep method with
PAIRED_NOTE = (
    "Difference = HSD − baseline in accuracy points, paired by seed (only seeds where both ran "
    "ok); interval as in the other tables (Student t below 30 pairs, bootstrap from 30). "
    "p_ttest_rel: scipy.stats.ttest_rel; p_wilcoxon: scipy.stats.wilcoxon (two-sided; with "
    "fewer than 6 pairs it cannot fall below 0.05). Verdict "
    "from the interval: HSD better (above 0), HSD worse (below 0), else inconclusive. firm: "
    "for HSD better / worse, yes when the verdict still holds with any one seed left out (no "
    "single seed carries it), else no; – for inconclusive."
)


def firmness(verdict_is_decisive: bool, res: stats.PairedResult) -> str:
    """The "firm" column: yes / no for a decisive verdict (`stats.loo_same_verdict`), else –."""
    if not verdict_is_decisive:
        return MISSING
    return "yes" if res.loo_same_verdict else "no"


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
    inconclusive, from the interval), ``firm`` (`firmness`), and ``unpaired`` (seeds ok for only
    one of the two).
    ``hsd_mean`` and ``baseline_mean`` are over every ok seed of each, paired or not.
    """
    cols = [
        "dataset", "T", "baseline", "n", "hsd_mean", "baseline_mean", "diff_mean",
        "ci_low", "ci_high", "ci_method", "p_ttest_rel", "p_wilcoxon", "verdict", "firm",
        "unpaired",
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
            verdict = stats.interval_verdict(iv)
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
                    verdicts[verdict],
                    firmness(verdict != "covers zero", res),
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

    `scope` picks the (dataset, T) settings among the T at which both sides ran: ``low T`` (the
    smallest of them and every one ≤ `LOW_T_MAX`), ``every T``, or ``largest vs smallest T``
    (variant `a` at its largest T against the same variant at its smallest T).
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
    "firm: for supported / not supported, yes when the verdict still holds with any one seed "
    "left out (no single seed carries it), else no; – otherwise. "
    f"Low T = the smallest T at which both sides ran on a dataset, plus any such T ≤ {LOW_T_MAX}."
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
        if not grid:
            return []
        return [(T, T) for T in sorted({grid[0], *(T for T in grid if T <= LOW_T_MAX)})]
    return [(T, T) for T in grid]


def _claim_grid(sweep_rows: pd.DataFrame, claim: Claim, dataset: str):
    """((variant, T) pairs that ran on `dataset`, the sorted T at which both sides of `claim` ran).

    A T only one side has is no test of the claim.
    """
    on_d = sweep_rows[sweep_rows["dataset"] == dataset]
    ran = set(zip(on_d["variant"], on_d["T"], strict=True))
    Ts = [{int(T) for v, T in ran if v == side and pd.notna(T)} for side in (claim.a, claim.b)]
    return ran, sorted(Ts[0] & Ts[1])


def claim_sides(df: pd.DataFrame, text: str, dataset: str, T: int):
    """The two cells, ((variant a, T a), (variant b, T b)), behind the `claims_table` row of claim
    `text` on `dataset` at `T` (its smaller T); None for a claim `CLAIMS` does not hold."""
    claim = next((c for c in CLAIMS if c.text == text), None)
    if claim is None:
        return None
    _, grid = _claim_grid(_final_step(_sweep(df, claim.sweep)), claim, dataset)
    for Ta, Tb in _claim_settings(claim, grid):
        if min(Ta, Tb) == T:
            return (claim.a, Ta), (claim.b, Tb)
    return None


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
        "ci_method", "p_ttest_rel", "verdict", "firm",
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
            ran, grid = _claim_grid(sweep_rows, claim, d)
            for Ta, Tb in _claim_settings(claim, grid):
                head = (claim.text, claim.sweep, d, min(Ta, Tb), _comparison(claim, Ta, Tb))
                if (claim.a, Ta) not in ran or (claim.b, Tb) not in ran:
                    rows.append((*head, 0, np.nan, np.nan, np.nan, "", np.nan, "not run", MISSING))
                    continue
                res, _ = _pair(scores, (d, Ta), claim.a, claim.b, key_b=(d, Tb))
                iv = res.diff
                verdict = _claim_verdict(iv) if iv.n else "no paired ok runs"
                firm = firmness(verdict in ("supported", "not supported"), res)
                rows.append(
                    (*head, iv.n, iv.mean, iv.low, iv.high, iv.method, res.p_ttest, verdict, firm)
                )
        if not rows:
            head = (claim.text, claim.sweep, None, pd.NA, _comparison(claim))
            rows.append((*head, 0, np.nan, np.nan, np.nan, "", np.nan, "not run", MISSING))
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
