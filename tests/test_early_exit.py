"""Early exit: the exit rule on hand-made arrays, threshold choice on validation only, the
per-sample file round trip, and the tables of a sweep folder."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.common import samples
from harness.common.store import ResultStore
from harness.report import aggregate, early_exit
from harness.trial import save_samples


def hand_split(**overrides) -> samples.Split:
    """3 samples, T = 2, labels 0, 1, 2.

    sample 0: right at t=1 and t=2, confidence .9, .95
    sample 1: wrong at t=1, right at t=2, confidence .4, .8
    sample 2: wrong at t=1, right at t=2, confidence .6, .7
    -> accuracy 1/3 at t = 1 and 1 at t = 2.
    """
    arrays = dict(
        pred=np.array([[0, 0], [0, 1], [1, 2]]),
        confidence=np.array([[0.9, 0.95], [0.4, 0.8], [0.6, 0.7]], dtype=np.float32),
        margin=np.array([[0.8, 0.9], [0.1, 0.6], [0.3, 0.5]], dtype=np.float32),
        label=np.array([0, 1, 2]),
        macs=np.array([[10.0, 20.0]] * 3),
        acs=np.array([[1.0, 3.0], [2.0, 5.0], [0.0, 4.0]]),
        stream_fraction=np.array([0.5, 1.0]),
    )
    arrays.update(overrides)
    return samples.Split(**arrays)


def test_exit_steps_first_confident_step_else_last():
    score = np.array([[0.1, 0.5, 0.9], [0.9, 0.1, 0.1], [0.1, 0.1, 0.1]])
    assert early_exit.exit_steps(score, 0.5).tolist() == [1, 0, 2]


def test_hand_case_exact_values():
    r = early_exit.at_threshold(hand_split(), 0.5)
    # exits: sample 0 at t=1 (right), 1 at t=2 (.4 < .5 ≤ .8; right), 2 at t=1 (wrong)
    assert r["acc"] == pytest.approx(2 / 3)
    assert r["mean_exit"] == pytest.approx(4 / 3)
    assert r["p95_exit"] == pytest.approx(1.9)  # numpy's linear percentile of [1, 1, 2]
    assert r["stream_fraction"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    # ops at exit: (10 MAC, 1 AC), (20, 5), (10, 0); 4.6 pJ per MAC, 0.9 pJ per AC
    assert r["energy_j"] == pytest.approx((46 + 0.9 + 92 + 4.5 + 46) / 3 * 1e-12)
    m = early_exit.at_threshold(hand_split(), 0.5, score="margin")
    # margin: sample 0 exits at 1, sample 1 at 2, sample 2 at 2 (.3 < .5 ≤ .5)
    assert (m["acc"], m["mean_exit"]) == (1.0, pytest.approx(5 / 3))
    with pytest.raises(ValueError, match="unknown early-exit score"):
        early_exit.at_threshold(hand_split(), 0.5, score="entropy")


def test_threshold_zero_is_t1_and_above_one_is_t_max():
    split = hand_split()
    acc_t = [(split.pred[:, i] == split.label).mean() for i in range(split.T)]
    c = early_exit.curve(split, [0.0, 1.01, math.inf])
    assert c["acc"].tolist() == [pytest.approx(acc_t[0]), acc_t[-1], acc_t[-1]]
    assert c["mean_exit"].tolist() == [1.0, 2.0, 2.0]
    assert c["stream_fraction"].tolist() == [0.5, 1.0, 1.0]


def test_same_rule_on_random_data_matches_per_t_accuracy():
    rng = np.random.default_rng(0)
    n, T = 50, 4
    split = hand_split(
        pred=rng.integers(0, 3, (n, T)),
        confidence=rng.random((n, T)).astype(np.float32),
        margin=rng.random((n, T)).astype(np.float32),
        label=rng.integers(0, 3, n),
        macs=np.cumsum(rng.random((n, T)), 1),
        acs=np.cumsum(rng.random((n, T)), 1),
        stream_fraction=np.arange(1, T + 1) / T,
    )
    lo, hi = early_exit.at_threshold(split, 0.0), early_exit.at_threshold(split, 2.0)
    assert lo["acc"] == pytest.approx((split.pred[:, 0] == split.label).mean())
    assert hi["acc"] == pytest.approx((split.pred[:, -1] == split.label).mean())
    assert hi["energy_j"] == pytest.approx(
        (split.macs[:, -1] * 4.6e-12 + split.acs[:, -1] * 0.9e-12).mean()
    )
    exits = early_exit.curve(split)["mean_exit"]
    assert exits.is_monotonic_increasing  # a higher threshold never exits earlier


def test_threshold_is_chosen_on_validation_never_test():
    val = hand_split()
    grid = [0.0, 0.5, 0.85, math.inf]
    # on val, budget 1.5 steps: θ=0 (acc 1/3, exit 1), θ=.5 (2/3, 4/3); θ=.85 exits at 5/3 > 1.5
    assert early_exit.pick_threshold(val, 1.5, grid) == 0.5
    assert early_exit.pick_threshold(val, 2, grid) == 0.85  # acc 1 at 5/3 beats acc 1 at 2
    test_a = hand_split()
    test_b = hand_split(label=np.array([2, 2, 2]), confidence=np.full((3, 2), 0.99, np.float32))
    a = early_exit.budget_result(val, test_a, 1.5, grid)
    b = early_exit.budget_result(val, test_b, 1.5, grid)
    assert a["threshold"] == b["threshold"] == 0.5
    # test_b: every sample exits at t = 1 with predictions 0, 0, 1 against label 2
    assert (a["acc"], b["acc"]) == (pytest.approx(2 / 3), 0.0)
    with pytest.raises(ValueError, match="budgets start at 1"):
        early_exit.pick_threshold(val, 0.5, grid)


def test_pareto_mask():
    cost = [1, 2, 2, 3, 1.5]
    acc = [50, 60, 55, 60, 40]
    # (2, 55) loses to (2, 60); (3, 60) to (2, 60); (1.5, 40) to (1, 50)
    assert early_exit.pareto_mask(cost, acc).tolist() == [True, True, False, False, False]


def test_ci95_student_t():
    # n = 2, values 70 and 80: std = 7.0711, t(0.975, 1) = 12.7062 -> 12.7062 · 7.0711 / √2
    assert early_exit.ci95([70, 80]) == pytest.approx(12.7062047 * 5.0)
    assert math.isnan(early_exit.ci95([70]))


class _Eval:
    def __init__(self, split):
        self.per_sample = {"test": split, "val": split}


def test_samples_round_trip_and_atomic(tmp_path):
    split = hand_split()
    rows = [
        {"run_id": "r1", "t": 2, "stream_fraction": 1.0},
        {"run_id": "r1", "t": 1, "stream_fraction": 0.5},
    ]
    path = save_samples(tmp_path, rows, _Eval(split))
    assert path == tmp_path / "samples" / "r1.npz"
    assert [p.name for p in path.parent.iterdir()] == ["r1.npz"]  # no temporary left behind
    back = samples.load(path)
    assert set(back) == {"test", "val"}
    for name in (*samples.FIELDS, "stream_fraction"):
        np.testing.assert_array_equal(getattr(back["test"], name), getattr(split, name))
    assert save_samples(tmp_path, rows, object()) is None  # an evaluation without outcomes
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable per-sample file"):
        samples.load(tmp_path / "bad.npz")


def _rows(run_id, variant, seed, accs):
    T = len(accs)
    return [
        {"run_id": run_id, "sweep": "latency", "variant": variant, "dataset": "n-digits",
         "T": T, "seed": seed, "t": t, "acc": a, "stream_fraction": t / T, "status": "ok"}
        for t, a in enumerate(accs, start=1)
    ]  # fmt: skip


def test_tables_of_a_sweep_folder(tmp_path):
    store = ResultStore.open(tmp_path, {"sweep": "latency", "args": {}})
    store.append(_rows("a0", "hsd", 0, [1 / 3, 1.0]))
    store.append(_rows("a1", "hsd", 1, [1 / 3, 1.0]))
    store.append(_rows("b0", "sts", 0, [0.5, 0.5]))  # an old run: no per-sample file
    for rid in ("a0", "a1"):
        save_samples(tmp_path, _rows(rid, "hsd", 0, [0, 0]), _Eval(hand_split()))
    rows = aggregate.prepare_rows(store.rows())
    tabs, notes = early_exit.tables(tmp_path, rows, thresholds=[0.0, 0.5, math.inf])
    assert len(notes) == 1 and "missing for 1 of 3 ok runs" in notes[0]
    ee = tabs["early_exit"]
    assert ee["threshold"].tolist() == [0.0, 0.5, math.inf]
    assert ee["acc (%)"].tolist() == pytest.approx([100 / 3, 200 / 3, 100.0])
    assert ee["n"].tolist() == [2, 2, 2] and ee["acc (%) ci95"].tolist() == [0.0, 0.0, 0.0]
    # every point is on the frontier: each costs more and is more accurate
    assert tabs["early_exit_frontier"]["threshold"].tolist() == [0.0, 0.5, math.inf]
    budget = tabs["early_exit_budget"]
    assert budget.loc[0, "acc (%) at ≤ 1 step"] == "33.33 ± 0.00"
    assert budget.loc[0, "acc (%) at ≤ 2 steps"] == "100.00 ± 0.00"
    assert budget.loc[0, "test mean exit at ≤ 1 step"] == 1.0
    tabs, _ = early_exit.tables(tmp_path, rows, thresholds=[0.0, 0.1, 0.5])
    # θ = 0.1 exits exactly like θ = 0 (every confidence is ≥ 0.4): one point, the lower θ
    assert tabs["early_exit_frontier"]["threshold"].tolist() == [0.0, 0.5]


def test_tables_without_any_samples(tmp_path):
    store = ResultStore.open(tmp_path, {"sweep": "latency", "args": {}})
    store.append(_rows("b0", "sts", 0, [0.5, 0.5]))
    tabs, notes = early_exit.tables(tmp_path, aggregate.prepare_rows(store.rows()))
    assert all(t.empty for t in tabs.values()) and "missing for 1 of 1" in notes[0]
    assert isinstance(tabs["early_exit"], pd.DataFrame)
