"""Statistics over seeds for the result tables: confidence intervals, paired tests, rank stability.

Pure functions on arrays (numpy + scipy); `harness.report.aggregate` applies them to grouped rows.

- `mean_ci`: the mean of a sample and its 95 % confidence interval. For n < `BOOTSTRAP_MIN_N`
  it is the Student t interval, mean ± t(0.975, n − 1) · s / √n (s: sample standard deviation,
  ddof = 1); from `BOOTSTRAP_MIN_N` seeds on, the percentile bootstrap interval of the mean
  (`BOOTSTRAP_RESAMPLES` resamples drawn with the fixed seed `BOOTSTRAP_SEED`, so a table is
  reproducible). One value has no interval (NaN bounds). Intervals are not clipped to [0, 100]:
  a bound past 100 % says that the seeds are too few to say more.
- `paired_difference`: a − b over matched seeds, the interval of its mean (as `mean_ci`), the
  paired t test p-value (`scipy.stats.ttest_rel`) and the Wilcoxon signed-rank p-value
  (`scipy.stats.wilcoxon`, two-sided, zero differences dropped).
- `welch_difference`: a − b for two independent samples (no pairing): the difference of means,
  its Welch interval (Student t with Welch–Satterthwaite degrees of freedom, unequal variances)
  and the Welch t test p-value (`scipy.stats.ttest_ind`, ``equal_var=False``).
- `interval_verdict`: whether an interval lies above zero, below zero, or covers it.
- `rank_agreement`: how often two disjoint halves of the seeds rank the methods in the same order.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CI_LEVEL = 0.95
#: from this many values on, intervals are bootstrap percentile intervals instead of Student t
BOOTSTRAP_MIN_N = 30
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
#: the largest number of seed splits `rank_agreement` enumerates before it samples splits instead
MAX_SPLITS = 1000
SPLIT_SEED = 0

T_INTERVAL = "t"
BOOTSTRAP_INTERVAL = "bootstrap"
#: what a ``mean [low, high]`` cell is, for captions
CI_CELLS = (
    f"mean [{CI_LEVEL * 100:.0f} % confidence interval] over seeds (Student t below "
    f"{BOOTSTRAP_MIN_N} seeds, percentile bootstrap of the mean from {BOOTSTRAP_MIN_N}; one seed "
    "shows the mean alone)"
)
CI_NOTE = (
    f"Cells: mean [{CI_LEVEL * 100:.0f} % confidence interval] over seeds; n = seeds. The interval is "
    f"Student t for n < {BOOTSTRAP_MIN_N} and the percentile bootstrap of the mean "
    f"({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}) for n ≥ {BOOTSTRAP_MIN_N}; "
    "one seed shows the mean alone."
)


@dataclass(frozen=True)
class Interval:
    """A sample's mean with its confidence interval; `method` is ``t``, ``bootstrap``, ``welch``
    (a difference of two means, `welch_difference`) or ``""`` (no interval)."""

    mean: float
    low: float
    high: float
    n: int
    method: str

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0


def _clean(values) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[~np.isnan(x)]


def mean_ci(values, level: float = CI_LEVEL) -> Interval:
    """Mean and confidence interval of `values` (NaNs ignored); see the module docstring.

    No values: everything NaN. One value: its mean, NaN bounds, method ``""``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")
    x = _clean(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "")
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, "")
    if n < BOOTSTRAP_MIN_N:
        half = float(sps.t.ppf((1.0 + level) / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
        return Interval(mean, mean - half, mean + half, n, T_INTERVAL)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = x[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(mean, float(low), float(high), n, BOOTSTRAP_INTERVAL)


@dataclass(frozen=True)
class PairedResult:
    """``a − b`` over matched pairs: the interval of the mean difference, two p-values, and
    whether the interval's verdict survives leaving out any one pair (`loo_same_verdict`)."""

    diff: Interval
    p_ttest: float  # scipy.stats.ttest_rel, two-sided
    p_wilcoxon: float  # scipy.stats.wilcoxon, two-sided, zero differences dropped
    loo_same_verdict: bool = False

    @property
    def n(self) -> int:
        return self.diff.n


def paired_difference(a, b, level: float = CI_LEVEL) -> PairedResult:
    """Compare matched samples `a` and `b` (same seed at the same position).

    p-values are NaN when they are undefined: fewer than two pairs, differences that do not vary
    (t test), or no non-zero difference (Wilcoxon).
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have equal length, got {len(a)} and {len(b)}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = a - b
    p_t = p_w = math.nan
    if len(d) >= 2:
        with warnings.catch_warnings():
            # scipy warns (and returns NaN) on constant differences; NaN is the answer we keep.
            warnings.simplefilter("ignore", RuntimeWarning)
            if np.ptp(d) > 0:
                p_t = float(sps.ttest_rel(a, b).pvalue)
            if np.any(d != 0):
                p_w = float(sps.wilcoxon(d).pvalue)
    return PairedResult(mean_ci(d, level), p_t, p_w, loo_same_verdict(d, level))


def loo_same_verdict(values, level: float = CI_LEVEL) -> bool:
    """True when the interval of `values` excludes zero and still excludes it on the same side
    with any one value left out (NaNs dropped first): no single seed carries the verdict. False
    for fewer than 3 values (leaving one out leaves no interval).

    Why not only the sign of each leave-one-out mean: a Student-t interval that excludes zero
    already implies it (if leaving out x_i flips the mean m, then x_i ≥ n·m, so s ≥ √(n−1)·m and
    the half-width t·s/√n > m), so that check could never fail. With 3 seeds each subset has 2,
    whose t factor is 12.7: a verdict firm at 3 seeds is a very large effect; 5 seeds or more
    make the column informative."""
    x = _clean(values)
    full = interval_verdict(mean_ci(x, level))
    if len(x) < 3 or full == "covers zero":
        return False
    return all(interval_verdict(mean_ci(np.delete(x, i), level)) == full for i in range(len(x)))


WELCH_INTERVAL = "welch"


@dataclass(frozen=True)
class WelchResult:
    """``mean(a) − mean(b)`` of independent samples; ``diff.n`` is the smaller sample's size."""

    diff: Interval
    p_welch: float  # scipy.stats.ttest_ind(a, b, equal_var=False), two-sided


def welch_difference(a, b, level: float = CI_LEVEL) -> WelchResult:
    """Difference of the means of independent samples `a` and `b` (NaNs ignored), Welch's interval.

    half-width = t(1 − α/2, ν) · se, se² = s_a²/n_a + s_b²/n_b (ddof = 1) and
    ν = se⁴ / ((s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1)). Either sample with fewer than two
    values: the difference alone, NaN bounds and p-value. Both samples constant: se = 0, so the
    interval is the difference itself and the p-value NaN (nothing varies to test).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")
    x, y = _clean(a), _clean(b)
    n = min(len(x), len(y))
    if n == 0:
        return WelchResult(Interval(math.nan, math.nan, math.nan, 0, ""), math.nan)
    diff = float(x.mean() - y.mean())
    if n == 1:
        return WelchResult(Interval(diff, math.nan, math.nan, 1, ""), math.nan)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return WelchResult(Interval(diff, diff, diff, n, WELCH_INTERVAL), math.nan)
    dof = se**4 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(sps.t.ppf((1.0 + level) / 2.0, dof) * se)
    p = float(sps.ttest_ind(x, y, equal_var=False).pvalue)
    return WelchResult(Interval(diff, diff - half, diff + half, n, WELCH_INTERVAL), p)


def interval_verdict(iv: Interval) -> str:
    """``above`` when the interval lies above zero, ``below`` under it, else ``covers zero``
    (also for fewer than two values, which have no interval)."""
    if iv.n >= 2 and iv.low > 0:
        return "above"
    if iv.n >= 2 and iv.high < 0:
        return "below"
    return "covers zero"


@dataclass(frozen=True)
class RankAgreement:
    """Agreement of the method ranking between halves of the seeds.

    `splits` is how many splits were compared (NaN fields when there were none); `sampling` says
    whether every split was enumerated (``all``) or `MAX_SPLITS` were drawn at random.
    """

    seeds: int
    methods: int
    splits: int
    sampling: str
    identical_fraction: float
    kendall_tau_mean: float


def _splits(n: int) -> tuple[list[tuple[int, ...]], str]:
    """Index sets of the first half (size n // 2) of each split of range(n) into two halves."""
    k = n // 2
    total = math.comb(n, k) // (2 if 2 * k == n else 1)
    if total <= MAX_SPLITS:
        combos = itertools.combinations(range(n), k)
        if 2 * k == n:  # halves of equal size: each split appears twice; keep one copy
            combos = (c for c in combos if c[0] == 0)
        return list(combos), "all"
    rng = np.random.default_rng(SPLIT_SEED)
    return [tuple(rng.permutation(n)[:k]) for _ in range(MAX_SPLITS)], f"random {MAX_SPLITS}"


def rank_agreement(scores) -> RankAgreement:
    """Rank stability of methods over seeds.

    `scores` is a (seeds × methods) array with no NaN: one row per seed, one column per method.
    For each split of the seeds into two halves (sizes ⌊n/2⌋ and ⌈n/2⌉), each half ranks the
    methods by their mean score; the result is the fraction of splits whose two rankings are
    identical (ties count as tied ranks) and the mean Kendall tau-b between them (splits where a
    half scores every method the same are left out of the mean). Fewer than four seeds (two per
    half) or fewer than two methods gives no splits and NaN fields.
    """
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"scores must be a (seeds x methods) array, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("scores must not hold NaN: keep only seeds where every method has a value")
    n, m = x.shape
    if n < 4 or m < 2:
        return RankAgreement(n, m, 0, "", math.nan, math.nan)
    firsts, sampling = _splits(n)
    same, taus = [], []
    for first in firsts:
        mask = np.zeros(n, dtype=bool)
        mask[list(first)] = True
        mean_a, mean_b = x[mask].mean(axis=0), x[~mask].mean(axis=0)
        same.append(np.array_equal(sps.rankdata(mean_a), sps.rankdata(mean_b)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            taus.append(sps.kendalltau(mean_a, mean_b)[0])
    taus = np.asarray(taus, dtype=float)
    tau = float(np.nanmean(taus)) if (~np.isnan(taus)).any() else math.nan
    return RankAgreement(n, m, len(firsts), sampling, float(np.mean(same)), tau)
