"""Sweeps as data (harness.common.sweeps) and one robust trial (harness.trial)."""

from __future__ import annotations

import math

import pytest

from harness.common import sweeps as S
from harness.executors import ExecOptions
from harness.trial import EnvironmentFailure, run_trial
from hsd.config import ConfigError, RunConfig


def test_latency_grid_is_datasets_x_T_x_methods_x_seeds():
    trials = S.expand(
        ["latency"], datasets=["n-digits"], methods=["hsd", "sts"], T=[1, 2, 3], seeds=2
    )
    assert len(trials) == 1 * 3 * 2 * 2
    assert {(t.variant, t.cfg.T, t.cfg.seed) for t in trials} == {
        (m, T, s) for m in ("hsd", "sts") for T in (1, 2, 3) for s in (0, 1)
    }
    assert all(t.sweep == "latency" and t.variant == t.cfg.method for t in trials)


def test_default_latency_grid_serves_figure2_and_table1_without_extra_cells():
    smoke = S.expand(["latency"])
    assert {t.cfg.dataset for t in smoke} == set(S.DEFAULT_DATASETS)
    per = {}
    for t in smoke:
        per.setdefault((t.cfg.dataset, t.variant), set()).add(t.cfg.T)
    # Figure 2's methods walk the grid; Table 1's only at Table 1's T
    assert per["n-digits", "hsd"] == per["n-digits", "dts"] == {1, 3, 5}
    assert per["n-digits", "sltt"] == per["n-digits", "tcja"] == {5}
    assert {t.cfg.seed for t in smoke} == {0, 1, 2}  # 3 seeds by default
    paper = S.expand(["latency"], datasets=["cifar10-dvs"], methods=["hsd"], profile="paper")
    assert sorted({t.cfg.T for t in paper}) == list(range(1, 10))  # T <= F_total - 1
    assert len(paper) == 9 * 3


def test_shared_runs_train_once_and_serve_every_cell():
    """sts = tet (one run id), DTS once for every T, and --sweep all shares runs across tables."""
    trials = S.resolve_all(
        S.expand(
            ["latency"], datasets=["n-digits"], methods=["hsd", "sts", "tet", "dts"],
            T=[1, 3, 5], seeds=1,
        )
    )  # fmt: skip
    by = {}
    for t in trials:
        by.setdefault(t.cfg.method, []).append(t)
    assert len(by["hsd"]) == 3 and len(by["tet"]) == 3 and len(by["dts"]) == 1
    assert "sts" not in by  # an alias of tet
    assert all(set(t.cells) == {("latency", "sts"), ("latency", "tet")} for t in by["tet"])
    every = S.resolve_all(S.expand(["latency", "ablation", "quantization"], datasets=["n-digits"]))
    hsd5 = [t for t in every if t.cfg.method == "hsd" and t.cfg.T == 5 and t.cfg.seed == 0]
    shared = [t for t in hsd5 if ("ablation", "HT+SKD") in t.cells]
    assert len(shared) == 1
    # Table 3's cell at the preset's L (16 in the paper, the tuned 8 on smoke n-digits)
    assert {("latency", "hsd"), ("quantization", f"L={shared[0].cfg.L}")} <= set(shared[0].cells)


def test_table_sweeps_use_the_paper_T_and_the_contract_variants():
    abl = S.expand(["ablation"], datasets=["n-digits", "sim-gestures"], seeds=1)
    assert {(t.cfg.dataset, t.cfg.T) for t in abl} == {("n-digits", 5), ("sim-gestures", 10)}
    got = {t.variant: dict(t.cfg.options) for t in abl if t.cfg.dataset == "n-digits"}
    assert got == {
        "none": {"ht": False, "distill": "none"},
        "HT": {"ht": True, "distill": "none"},
        "SKD": {"ht": False, "distill": "skd"},
        "HT+KD": {"ht": True, "distill": "kd"},
        "HT+SKD": {"ht": True, "distill": "skd"},
    }
    q = S.expand(["quantization"], datasets=["n-digits"], seeds=1)
    assert [(t.variant, t.cfg.L) for t in q] == [(f"L={L}", L) for L in (4, 8, 16, 32)]
    ht = S.expand(["ht"], datasets=["n-digits"], seeds=1)
    assert [(t.variant, t.cfg.method, t.cfg.option("ht")) for t in ht] == [
        ("TET w/o HT", "tet", False),
        ("TET w/ HT", "tet", True),
        ("SLTT w/o HT", "sltt", False),
        ("SLTT w/ HT", "sltt", True),
    ]
    kd = S.expand(["kd"], datasets=["n-digits"], T=[4], seeds=1)
    assert [(t.variant, t.cfg.method, t.cfg.T) for t in kd] == [
        ("baseline", "sts", 4),
        ("response", "kd-response", 4),
        ("feature", "kd-feature", 4),
        ("both", "kd-both", 4),
    ]


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"sweep": "latency", "profile": "huge"}, "unknown profile"),
        ({"sweep": "latency", "seeds": 0}, "--seeds must be >= 1"),
        ({"sweep": "ablation", "datasets": ["mystery"]}, "no default T"),
    ],
)
def test_expand_rejects_bad_requests(kw, msg):
    sweep = kw.pop("sweep")
    with pytest.raises(S.SweepError, match=msg):
        S.expand([sweep], **kw)


def test_unknown_sweep_names_the_valid_ones():
    with pytest.raises(S.SweepError, match="valid: latency.*all"):
        S.sweep_names("nope")
    assert S.sweep_names("all") == list(S.SWEEPS)


def test_sweep_registry_is_the_one_source_of_variant_orders():
    from harness.report import aggregate

    assert aggregate.VARIANT_ORDER["ablation"] == ("none", "HT", "SKD", "HT+KD", "HT+SKD")
    assert aggregate.LATENCY_ORDER == S.SWEEPS["latency"].order


def test_best_params_apply_to_hsd_only_and_keep_the_quantization_variable():
    best = S.Tuned("hsd", {"n-digits": {"kd_lambda": 0.3, "L": 8, "tau": 4.0}})
    lat = S.expand(["latency"], datasets=["n-digits"], methods=["hsd", "sts"], T=[2], best=best)
    by = {t.variant: t.cfg for t in lat}
    assert (by["hsd"].kd_lambda, by["hsd"].L, by["hsd"].tau) == (0.3, 8, 4.0)
    assert (by["sts"].kd_lambda, by["sts"].L, by["sts"].tau) == (None, None, None)
    q = S.expand(["quantization"], datasets=["n-digits"], best=best, seeds=1)
    assert [t.cfg.L for t in q] == [4, 8, 16, 32] and {t.cfg.kd_lambda for t in q} == {0.3}


def test_trial_round_trip_keeps_the_run_id():
    t = S.Trial(RunConfig("hsd", "n-digits", 5, options={"ht": True}), (("ablation", "HT"),))
    back = S.Trial.from_dict(t.to_dict())
    assert back == t and back.run_id == t.run_id


def test_trial_cost_counts_the_epoch_frames_of_every_training_stage():
    shape = dict(frames=10, pre_frames=7, epochs=4, pre_epochs=5)
    hsd = RunConfig("hsd", "n-digits", 3, **shape, options={"ht": True, "distill": "skd"})
    assert S.trial_cost(hsd) == 5 * 7 + 4 * 3  # ANN on [0, 7), SNN on the 3 after
    # without HT: no pre-training on [0, 7), but a teacher ANN on the SNN's 3 frames when the
    # distillation term needs one
    teacher = hsd.replace(options={"ht": False, "distill": "skd"})
    assert S.trial_cost(teacher) == 5 * 3 + 4 * 3
    assert S.trial_cost(hsd.replace(options={"ht": False, "distill": "none"})) == 4 * 3
    kd = RunConfig("kd-response", "n-digits", 3, frames=3, pre_frames=0, epochs=4, pre_epochs=5)
    assert S.trial_cost(kd) == 5 * 3 + 4 * 3  # its teacher, then the student
    assert S.trial_cost(RunConfig("tet", "n-digits", 3, frames=3, epochs=4)) == 4 * 3


def test_measured_rate_costs_each_stored_run_by_the_stages_it_trained():
    import pandas as pd

    from harness.dry_run import measured_rate

    shape = dict(method="hsd", dataset="n-digits", T=3, frames=10, pre_frames=7, status="ok")
    rows = pd.DataFrame(
        [
            {**shape, "epochs": 4, "pre_epochs": 5, "run_id": "a", "opt_ht": True, "wall_s": 94.0},
            {**shape, "epochs": 4, "pre_epochs": 5, "run_id": "b", "opt_ht": False, "wall_s": 54.0},
            {"run_id": "p", "sweep": "params", "status": "ok"},  # no method, no cost
        ]
    )
    rows["opt_distill"] = "skd"
    assert measured_rate(rows) == (94 + 54) / ((5 * 7 + 4 * 3) + (5 * 3 + 4 * 3))


def test_resolve_all_validates_before_running_and_dedupes(data_env):
    good = S.expand(["latency"], datasets=["n-digits"], methods=["fake"], T=[1, 2], seeds=1)
    resolved = S.resolve_all(good + good)  # the same configs twice: kept once
    assert [t.cfg.T for t in resolved] == [1, 2]
    assert all(t.cfg.frames == 10 and t.cfg.epochs == 3 for t in resolved)
    bad = S.expand(
        ["latency"], datasets=["n-digits"], methods=["fake", "nosuch"], T=[2, 10], seeds=1
    )
    with pytest.raises(S.SweepError) as err:
        S.resolve_all(bad)
    text = str(err.value)
    assert "unknown method 'nosuch'" in text and "exceeds the 10 frames" in text
    assert text.startswith("3 invalid trial config(s)")  # nosuch T=2, nosuch T=10, fake T=10


def test_params_rows_count_the_paper_architectures(data_env):
    rows = S.params_rows(["n-digits", "sim-gestures"])
    by = {(r["dataset"], r["variant"]): r for r in rows}
    assert set(by) == {("n-digits", "vgg"), ("sim-gestures", "snn5")}
    assert by["n-digits", "vgg"]["params"] == 9_271_498  # the paper's "9.3M" VGG-SNN, 10 classes
    assert by["sim-gestures", "snn5"]["size"] == 32
    assert all(r["sweep"] == "params" and r["status"] == "ok" for r in rows)


def _trial():
    return S.Trial(RunConfig("fake", "n-digits", 3, frames=10, epochs=1), (("latency", "fake"),))


def _opts(tmp_path, retries=1):
    return ExecOptions(out_dir=tmp_path, retries=retries)


@pytest.mark.parametrize(
    "exc, status, calls",
    [
        (RuntimeError("boom"), "failed", 3),  # retried twice, then recorded
        (MemoryError(), "infeasible", 1),  # deterministic: no retry
    ],
)
def test_run_trial_maps_exceptions_to_rows(tmp_path, exc, status, calls):
    seen = []

    def execute(cfg, **kw):
        seen.append(kw["checkpoint_dir"])
        raise exc

    rows = run_trial(_trial(), _opts(tmp_path, retries=2), execute=execute)
    assert len(seen) == calls and len(set(seen)) == 1  # every retry resumes the same checkpoints
    assert seen[0] == tmp_path.resolve() / "checkpoints" / _trial().run_id
    (row,) = rows
    assert row["status"] == status and row["t"] == 3 and math.isnan(row["acc"])
    assert (row["sweep"], row["variant"], row["attempts"]) == ("latency", "fake", calls)
    assert row["run_id"] == _trial().run_id and type(exc).__name__ in row["error"]


def test_run_trial_diverged_and_torch_oom(tmp_path):
    import torch

    from hsd.engine import DivergedError

    for exc, status in (
        (DivergedError("nan"), "diverged"),
        (torch.OutOfMemoryError("oom"), "infeasible"),
    ):

        def execute(cfg, _e=exc, **kw):
            raise _e

        assert run_trial(_trial(), _opts(tmp_path), execute=execute)[0]["status"] == status


def test_run_trial_recovers_on_retry(tmp_path):
    calls = []

    def execute(cfg, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")
        return [{"run_id": cfg.run_id(), "t": t, "acc": 0.5, "status": "ok"} for t in (1, 2, 3)]

    rows = run_trial(_trial(), _opts(tmp_path), execute=execute)
    assert [r["t"] for r in rows] == [1, 2, 3] and {r["attempts"] for r in rows} == {2}
    assert {r["variant"] for r in rows} == {"fake"}


def test_environment_failures_leave_no_row(tmp_path):
    """A device or data problem is not a result of the run: it raises, nothing is stored."""

    def execute(cfg, **kw):
        raise ConfigError("device 'cuda' requested but no CUDA device is available")

    with pytest.raises(EnvironmentFailure, match="no CUDA device"):
        run_trial(_trial(), _opts(tmp_path), execute=execute)
