"""Statistics over seeds: intervals and tests against hand computations and scipy, and the
paired / claims / rank-stability tables on tiny hand-made row sets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.report import aggregate, comparisons, stats
from harness.report.tables import build_tables, write_tables

T975_2 = 4.302652729749464  # Student t quantile t(0.975, 2 degrees of freedom)


# -- intervals ---------------------------------------------------------------------------------------
def test_t_interval_by_hand():
    iv = stats.mean_ci([1.0, 2.0, 3.0])  # mean 2, s = 1
    half = T975_2 * 1.0 / math.sqrt(3)
    assert (iv.mean, iv.n, iv.method) == (2.0, 3, "t")
    assert (iv.low, iv.high) == pytest.approx((2.0 - half, 2.0 + half), rel=1e-12)
    assert iv.half_width == pytest.approx(half)


def test_one_value_has_no_interval_and_nan_is_ignored():
    iv = stats.mean_ci([np.nan, 4.0])
    assert (iv.mean, iv.n, iv.method) == (4.0, 1, "")
    assert math.isnan(iv.low) and math.isnan(iv.high)
    empty = stats.mean_ci([])
    assert empty.n == 0 and math.isnan(empty.mean)
    with pytest.raises(ValueError, match="confidence level"):
        stats.mean_ci([1.0, 2.0], level=95)


def test_bootstrap_from_30_values_is_reproducible():
    x = np.arange(30, dtype=float)  # mean 14.5
    below = stats.mean_ci(x[:29])
    iv = stats.mean_ci(x)
    assert below.method == "t" and iv.method == "bootstrap"
    assert iv == stats.mean_ci(x)  # fixed resampling seed: same table every time
    # The percentile interval of the mean is close to the t interval for such a sample.
    t_half = sps.t.ppf(0.975, 29) * x.std(ddof=1) / math.sqrt(30)
    assert iv.low < 14.5 < iv.high
    assert iv.half_width == pytest.approx(t_half, rel=0.1)
    assert stats.mean_ci(np.full(40, 7.0)) == stats.Interval(7.0, 7.0, 7.0, 40, "bootstrap")


# -- paired tests ----------------------------------------------------------------------------------
A = [80.0, 75.0, 90.0, 85.0, 70.0]
B = [70.0, 72.0, 80.0, 86.0, 60.0]  # differences 10, 3, 10, -1, 10: mean 6.4


def test_paired_difference_matches_scipy():
    res = stats.paired_difference(A, B)
    d = np.subtract(A, B)
    assert res.n == 5 and res.diff.mean == pytest.approx(6.4)
    assert res.diff == stats.mean_ci(d)
    assert res.p_ttest == pytest.approx(sps.ttest_rel(A, B).pvalue)
    assert res.p_wilcoxon == pytest.approx(sps.wilcoxon(d).pvalue)
    # the t test of paired samples is the one-sample t test of their differences
    assert res.p_ttest == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue)


def test_welch_difference_by_hand_and_against_scipy():
    # a = 1, 2, 3 (mean 2, s² = 1) and b = 4, 6 (mean 5, s² = 2): se² = 1/3 + 1, and
    # ν = (4/3)² / ((1/3)² / 2 + 1² / 1) = 32/19
    res = stats.welch_difference([1.0, 2.0, 3.0, np.nan], [4.0, 6.0])
    half = sps.t.ppf(0.975, 32 / 19) * math.sqrt(4 / 3)
    assert (res.diff.mean, res.diff.n, res.diff.method) == (-3.0, 2, "welch")
    assert (res.diff.low, res.diff.high) == pytest.approx((-3.0 - half, -3.0 + half), rel=1e-12)
    scipy_res = sps.ttest_ind([1.0, 2.0, 3.0], [4.0, 6.0], equal_var=False)
    assert (res.diff.low, res.diff.high) == pytest.approx(tuple(scipy_res.confidence_interval()))
    assert res.p_welch == pytest.approx(scipy_res.pvalue)
    # one value on a side: the difference alone; constant sides: an interval of width 0
    one = stats.welch_difference([1.0], [4.0, 6.0])
    assert one.diff.mean == -4.0 and math.isnan(one.diff.low) and math.isnan(one.p_welch)
    flat = stats.welch_difference([2.0, 2.0], [1.0, 1.0, 1.0])
    assert (flat.diff.low, flat.diff.high) == (1.0, 1.0) and math.isnan(flat.p_welch)
    assert stats.interval_verdict(flat.diff) == "above"


def test_paired_difference_edge_cases():
    # a pair with a missing side is dropped
    res = stats.paired_difference([1.0, 2.0, np.nan], [0.0, 0.0, 5.0])
    assert res.n == 2 and res.diff.mean == pytest.approx(1.5)
    # differences that do not vary: no t test; all zero: no Wilcoxon either
    same = stats.paired_difference([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
    assert math.isnan(same.p_ttest) and same.p_wilcoxon == pytest.approx(0.25)
    assert (same.diff.low, same.diff.high) == (2.0, 2.0)
    zero = stats.paired_difference([1.0, 2.0], [1.0, 2.0])
    assert math.isnan(zero.p_ttest) and math.isnan(zero.p_wilcoxon)
    one = stats.paired_difference([1.0], [0.0])
    assert one.n == 1 and math.isnan(one.p_ttest)
    with pytest.raises(ValueError, match="equal length"):
        stats.paired_difference([1.0, 2.0], [1.0])


def test_interval_verdict():
    assert stats.interval_verdict(stats.Interval(5, 1, 9, 3, "t")) == "above"
    assert stats.interval_verdict(stats.Interval(-5, -9, -1, 3, "t")) == "below"
    assert stats.interval_verdict(stats.Interval(1, -1, 3, 3, "t")) == "covers zero"
    assert stats.interval_verdict(stats.mean_ci([5.0])) == "covers zero"  # one seed


def test_a_firm_verdict_survives_leaving_out_any_one_seed():
    # 5 tight positive seeds: every 4-seed subset's t interval stays above zero
    assert stats.loo_same_verdict([5.0, 6.0, 7.0, 5.5, 6.5])
    assert stats.loo_same_verdict([-5.0, -6.0, -7.0, -5.5, -6.5])  # below zero keeps its side
    # Above zero with 4 seeds (mean 1.525, t interval [0.29, 2.76]), but without the 1.4 the
    # other three give [-0.78, 3.59]: the verdict rests on that seed, so it is not firm.
    x = [0.5, 1.4, 2.3, 1.9]
    assert stats.mean_ci(x).low == pytest.approx(0.28988, abs=1e-4)
    assert stats.mean_ci([0.5, 2.3, 1.9]).low == pytest.approx(-0.78125, abs=1e-4)
    assert not stats.loo_same_verdict(x)
    assert not stats.loo_same_verdict([-2.0, 2.0, 1.0])  # covers zero: no verdict to keep
    assert not stats.loo_same_verdict([5.0, 6.0])  # a subset of one has no interval
    assert stats.loo_same_verdict([5.0, np.nan, 6.0, 5.5, 6.5])  # NaN dropped first
    assert stats.paired_difference([6, 7, 8, 6.5, 7.5], [1, 1, 1, 1, 1]).loo_same_verdict
    assert not stats.paired_difference([1.5, 2.4, 3.3, 2.9], [1, 1, 1, 1]).loo_same_verdict


def test_rank_agreement_constructed_cases():
    # A beats B on every seed: every split agrees.
    steady = stats.rank_agreement(np.array([[10, 0], [11, 1], [12, 2], [13, 3]], dtype=float))
    assert (steady.splits, steady.sampling) == (3, "all")  # {0,1}|{2,3}, {0,2}|{1,3}, {0,3}|{1,2}
    assert (steady.identical_fraction, steady.kendall_tau_mean) == (1.0, 1.0)
    # 5 seeds: halves of 2 and 3, C(5, 2) = 10 splits. B scores 25 on seed 4 and 0 elsewhere,
    # A always 10. A 2-seed half holding seed 4 gives B 12.5 > 10 (the other half 0 < 10): the
    # rankings differ (tau -1); otherwise the 3-seed half gives B 25 / 3 < 10: same order (tau 1).
    # Splits with seed 4 in the 2-seed half: 4 of 10 -> identical 0.6, tau 0.6 - 0.4 = 0.2.
    flip = np.column_stack([np.full(5, 10.0), [0, 0, 0, 0, 25.0]])
    ra = stats.rank_agreement(flip)
    assert (ra.seeds, ra.methods, ra.splits) == (5, 2, 10)
    assert ra.identical_fraction == pytest.approx(0.6) and ra.kendall_tau_mean == pytest.approx(0.2)


def test_rank_agreement_too_few_and_many_seeds(monkeypatch):
    few = stats.rank_agreement(np.ones((3, 4)))
    assert few.splits == 0 and math.isnan(few.identical_fraction)
    assert math.isnan(stats.rank_agreement(np.ones((6, 1))).kendall_tau_mean)
    with pytest.raises(ValueError, match="NaN"):
        stats.rank_agreement(np.array([[1.0, np.nan]] * 4))
    # C(8, 4) / 2 = 35 splits > MAX_SPLITS: a fixed random sample of them instead
    monkeypatch.setattr(stats, "MAX_SPLITS", 20)
    x = np.arange(8 * 3, dtype=float).reshape(8, 3)
    many = stats.rank_agreement(x)
    assert (many.splits, many.sampling) == (20, "random 20")
    assert many.identical_fraction == 1.0 and many == stats.rank_agreement(x)


# -- tables ------------------------------------------------------------------------------------------
def _rows(sweep, dataset, variant, T, accs_pct, status="ok"):
    """One stored row (t = T) per seed 0, 1, ... with the given accuracies in percent."""
    return [
        {
            "sweep": sweep,
            "dataset": dataset,
            "variant": variant,
            "T": T,
            "t": T,
            "seed": seed,
            "acc": None if acc is None else acc / 100.0,
            "status": status if acc is not None else "failed",
        }
        for seed, acc in enumerate(accs_pct)
    ]


def _tables(*row_lists):
    rows = pd.DataFrame([r for rs in row_lists for r in rs])
    return build_tables(rows)


HSD1 = [80.0, 85.0, 90.0, 88.0]  # seed 3 has no STS / DTS / TET partner
STS1 = [50.0, 60.0, 65.0]  # HSD − STS = 30, 25, 25: mean 26.67, s 2.89
DTS1 = [82.0, 84.0, 91.0]  # HSD − DTS = -2, 1, -1: covers zero
TET1 = [95.0, 96.0, 99.0]  # HSD − TET = -15, -11, -9: mean -11.67, s 3.06, below zero
LATENCY = [
    _rows("latency", "n-digits", "hsd", 1, HSD1),
    _rows("latency", "n-digits", "sts", 1, STS1),
    _rows("latency", "n-digits", "dts", 1, DTS1),
    _rows("latency", "n-digits", "tet", 1, TET1),
    # at T = 3: HSD 2 seeds, STS 1 ok + 1 failed; STS at T = 3 beats STS at T = 1 by 20, 15, 10
    _rows("latency", "n-digits", "hsd", 3, [90.0, 91.0]),
    _rows("latency", "n-digits", "sts", 3, [70.0, 75.0, 75.0]),
]


def test_paired_table_exact():
    p = _tables(*LATENCY)["paired"]
    assert list(zip(p["T"], p["baseline"], strict=True)) == [
        (1, "sts"),
        (1, "dts"),
        (1, "tet"),
        (3, "sts"),
    ]
    sts = p.iloc[0]
    d = np.subtract(HSD1[:3], STS1)
    half = T975_2 * d.std(ddof=1) / math.sqrt(3)
    assert (sts["n"], sts["unpaired"], sts["verdict"]) == (3, 1, "HSD better")
    assert sts["diff_mean"] == pytest.approx(80 / 3)
    assert (sts["ci_low"], sts["ci_high"]) == pytest.approx((80 / 3 - half, 80 / 3 + half))
    assert sts["p_ttest_rel"] == pytest.approx(sps.ttest_rel(HSD1[:3], STS1).pvalue)
    assert sts["p_wilcoxon"] == pytest.approx(sps.wilcoxon(d).pvalue)
    assert sts["hsd_mean"] == pytest.approx(np.mean(HSD1)) and sts["ci_method"] == "t"
    assert p["verdict"].tolist() == ["HSD better", "inconclusive", "HSD worse", "inconclusive"]
    # decisive, but not firm: with any seed left out, 2 pairs (t factor 12.7) cover zero
    assert p["firm"].tolist() == ["no", "–", "no", "–"]
    assert p.iloc[3]["n"] == 2 and p.iloc[3]["diff_mean"] == pytest.approx(18.0)


def test_claims_verdicts():
    ablation = [
        _rows("ablation", "n-digits", "HT+SKD", 5, [80.0]),
        _rows("ablation", "n-digits", "HT+KD", 5, [75.0]),
    ]
    c = _tables(*LATENCY, *ablation)["claims"].set_index("claim")
    # "low T" is T = 1 here: the grid is (1, 3) and 3 > LOW_T_MAX
    assert c.loc["HSD > STS at low T", "verdict"] == "supported"
    assert c.loc["HSD > STS at low T", "T"] == 1 and c.loc["HSD > STS at low T", "n"] == 3
    assert c.loc["HSD > DTS at low T", "verdict"] == "inconclusive at 3 seeds"
    sts_dts = c.loc["STS > DTS at low T"]  # -32, -24, -26: the opposite effect
    assert sts_dts["verdict"] == "not supported" and sts_dts["effect"] == pytest.approx(-82 / 3)
    falls = c.loc["direct training loses accuracy as T falls"]
    assert falls["comparison"] == "sts T=3 − sts T=1" and falls["effect"] == pytest.approx(15.0)
    assert falls["verdict"] == "supported" and falls["n"] == 3
    assert c.loc["SKD > KD", "verdict"] == "inconclusive at 1 seed"
    firm = c["firm"].to_dict()
    assert (
        firm["HSD > STS at low T"] == firm["STS > DTS at low T"] == "no"
    )  # 3 seeds: each 2-seed subset covers zero
    assert firm["HSD > DTS at low T"] == firm["SKD > KD"] == firm["HT improves TET"] == "–"
    assert c.loc["SKD > KD", "effect"] == pytest.approx(5.0)
    for claim in ("HT improves TET", "HT improves SLTT"):
        assert c.loc[claim, "verdict"] == "not run" and pd.isna(c.loc[claim, "dataset"])


def test_claims_on_a_subset_of_sweeps_and_low_T_definition():
    # Only the ht sweep: every latency / ablation claim says "not run".
    ht = [
        _rows("ht", "sim-gestures", "TET w/ HT", 10, [60.0, 70.0]),
        _rows("ht", "sim-gestures", "TET w/o HT", 10, [50.0, None]),  # seed 1 failed
        _rows("ht", "sim-gestures", "SLTT w/ HT", 10, [None]),  # ran, but never ok
        _rows("ht", "sim-gestures", "SLTT w/o HT", 10, [40.0]),
    ]
    c = _tables(*ht)["claims"]
    assert c["claim"].tolist() == [claim.text for claim in comparisons.CLAIMS]
    by = c.set_index("claim")["verdict"]
    assert by["HT improves TET"] == "inconclusive at 1 seed"
    assert by["HT improves SLTT"] == "no paired ok runs"
    assert (by.drop(["HT improves TET", "HT improves SLTT"]) == "not run").all()
    # Both sides ran at T = 1 and 4 (HSD also at 2): low T is T = 1; a T only one side has is
    # no test of the claim, so it is not listed.
    grid = [
        _rows("latency", "n-digits", "hsd", 1, [80.0, 81.0]),
        _rows("latency", "n-digits", "sts", 1, [70.0, 71.0]),
        _rows("latency", "n-digits", "hsd", 2, [80.0, 81.0]),
        _rows("latency", "n-digits", "hsd", 4, [80.0, 81.0]),
        _rows("latency", "n-digits", "sts", 4, [70.0, 71.0]),
    ]
    c = _tables(*grid)["claims"]
    hsd_sts = c[c["claim"] == "HSD > STS at low T"]
    assert hsd_sts["T"].tolist() == [1]
    assert hsd_sts["verdict"].tolist() == ["supported"]  # differences 10, 10


def test_claim_variants_exist_in_their_sweeps():
    for claim in comparisons.CLAIMS:
        assert {claim.a, claim.b} <= set(aggregate.VARIANT_ORDER[claim.sweep]), claim.text


def test_rank_stability_table():
    # The flip case of test_rank_agreement_constructed_cases, as rows, at T = 1; T = 2 has 3 seeds.
    rows = [
        _rows("latency", "n-digits", "hsd", 1, [10.0] * 5),
        _rows("latency", "n-digits", "sts", 1, [0.0, 0.0, 0.0, 0.0, 25.0]),
        _rows("latency", "n-digits", "dts", 1, [1.0, 2.0, 3.0, 4.0, None]),  # seed 4 failed
        _rows("latency", "n-digits", "hsd", 2, [10.0] * 3),
        _rows("latency", "n-digits", "sts", 2, [0.0] * 3),
    ]
    r = _tables(*rows[:2], *rows[3:])["rank_stability"]
    first = r.iloc[0]
    assert (first["T"], first["methods"], first["seeds"], first["splits"]) == (1, 2, 5, 10)
    assert first["identical_order"] == pytest.approx(0.6)
    assert first["kendall_tau_mean"] == pytest.approx(0.2) and first["note"] == ""
    assert r.iloc[1]["note"] == "fewer than 2 seeds per half (3 seeds with every method ok)"
    # a third method that failed on seed 4 leaves 4 seeds where every method ran ok
    with_dts = _tables(*rows)["rank_stability"].iloc[0]
    assert (with_dts["methods"], with_dts["seeds"]) == (3, 4)


def test_comparison_tables_written_with_notes(tmp_path):
    rows = pd.DataFrame([r for rs in LATENCY for r in rs])
    written = write_tables(rows, tmp_path / "tables")
    tables = build_tables(rows)
    for name, note in (
        ("paired", comparisons.PAIRED_NOTE),
        ("claims", comparisons.CLAIMS_NOTE),
        ("rank_stability", comparisons.RANK_NOTE),
    ):
        csv, md = written[name]
        assert md.read_text().rstrip().endswith(note)
        assert len(pd.read_csv(csv)) == len(tables[name])


def test_plots_draw_the_intervals(tmp_path):
    from harness.report import plots

    # error bars are the interval's distances from the mean; a one-seed point has none
    yerr = plots._ci_yerr([2.0, 5.0], [1.0, np.nan], [4.0, np.nan])
    assert yerr.tolist() == [[1.0, 0.0], [2.0, 0.0]]
    t = _tables(*LATENCY)
    paths = plots.plot_paired(t["paired"], tmp_path)
    assert [p.name for p in paths] == [f"paired_differences.{e}" for e in ("png", "svg", "pdf")]
    assert all(p.stat().st_size > 0 for p in paths)
    assert plots.plot_paired(t["paired"].iloc[:0], tmp_path / "none") == []
    only_paired = {name: frame.iloc[:0] for name, frame in t.items()} | {"paired": t["paired"]}
    names = [p.name for p in plots.write_plots(only_paired, tmp_path / "all")]
    assert names == [f"paired_differences.{e}" for e in ("png", "svg", "pdf")]
