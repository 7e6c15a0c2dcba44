"""Optuna tuning (harness.tune): validation objective, durable study, resume, best params, Ray +
NSGA-II multi-objective. Uses the fake method, whose validation accuracy grows with kd_lambda."""

from __future__ import annotations

import json

import optuna
import pytest
from harness_helpers import read_rows, run_cli

from harness import run as R
from harness import tune as TU
from harness.common import sweeps as S
from harness.common.store import ResultStore
from harness.executors import ExecOptions

TUNE = ["--tune", "--methods", "fake", "--datasets", "n-digits", "--no-progress"]


def _study(out, name="hsd-n-digits"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}")


@pytest.mark.parametrize("dataset", ["cifar10-dvs", "dvs-gesture", "n-caltech101"])
def test_search_space_spans_the_authors_weights_and_temperature(dataset):
    from hsd.data import DATASETS

    space = TU.distributions(dataset, multi=False)
    lam, tau = space["kd_lambda"], space["tau"]
    assert lam.log and tau.log
    # the authors' weight: 1 in classmean units (the default), 1/K in batchmean units
    for weight in (1.0, 1.0 / DATASETS[dataset].num_classes):
        assert lam.low < weight < lam.high, (dataset, weight)
    assert tau.low < 10.0 < tau.high and tau.low <= 2.0
    trial = TU.make_trial(dataset, {"kd_lambda": 0.05, "L": 8, "tau": 3.0}, "smoke", 5)
    assert (trial.cfg.kd_lambda, trial.cfg.tau, trial.cfg.L) == (0.05, 3.0, 8)
    default = TU.make_trial(dataset, {"kd_lambda": 1.0, "L": 16}, "smoke", 5)
    assert default.cfg.tau == 10.0  # τ not tuned: the recipe's default


@pytest.mark.slow
def test_local_tuning_picks_the_best_validation_point_and_resumes(data_env, tmp_path):
    out = tmp_path / "tune"
    assert R.main([*TUNE, "--trials", "3", "--executor", "local", "--out", str(out)]) == 0
    best = json.loads((out / "best_params.json").read_text())
    rows = read_rows(out)
    runs = {r["run_id"]: r for r in rows}
    assert len(runs) == 3 and {r["sweep"] for r in rows} == {"tune"}
    top = max(runs.values(), key=lambda r: r["best_val_acc"])
    b = best["best"]["n-digits"]
    assert b["kd_lambda"] == pytest.approx(top["kd_lambda"]) and b["L"] == top["L"]
    assert b["val_acc"] == pytest.approx(top["best_val_acc"]) and b["T"] == 5
    assert best["objective"].startswith("best_val_acc")
    assert {p.stem for p in (out / "curves").glob("*.json")} == set(runs)  # tuning keeps curves
    assert all(1e-2 <= r["kd_lambda"] <= 10 and r["L"] in (4, 8, 16, 32) for r in rows)
    # Resume: the study continues to 5 finished trials, nothing already run is run again.
    assert R.main([*TUNE, "--trials", "5", "--executor", "local", "--out", str(out)]) == 0
    study = _study(out)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
    assert len({r["run_id"] for r in read_rows(out)}) == len(read_rows(out)) // 5  # T=5 rows each
    # The tuned values feed later sweeps.
    got = R.load_best(str(out / "best_params.json"))
    b = got["n-digits"]
    assert b["val_acc"] == max(r["best_val_acc"] for r in read_rows(out))
    (t,) = S.expand(["latency"], datasets=["n-digits"], methods=["hsd"], T=[2], seeds=1, best=got)
    assert (t.cfg.kd_lambda, t.cfg.L) == (b["kd_lambda"], b["L"])


def test_a_trial_left_running_by_a_killed_driver_is_failed_and_rerun(data_env, tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    study = TU.open_study(out, "n-digits", False)
    stale = study.ask(TU.distributions("n-digits", False))  # never told: the driver "died"
    store = ResultStore.open(out, {"sweep": "tune", "args": {}})
    opts = ExecOptions(out_dir=out, progress=False)
    TU.tune_local("n-digits", 2, store, opts, profile="smoke", T=None, multi=False, method="fake")
    trials = _study(out).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params == stale.params  # re-enqueued, so its checkpoints would be reused


def test_bad_tuning_requests_exit_2(data_env, tmp_path, capsys):
    for args, msg in [
        (["--trials", "0"], "--trials must be >= 1"),
        (["--sweep", "latency"], "runs no sweep"),
        (["--multi-objective", "--T", "3"], "drop --T"),
        (["--T", "10"], "exceeds the 10 frames"),
    ]:
        assert R.main([*TUNE, *args, "--executor", "local", "--out", str(tmp_path / "o")]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("multi", [False, True])
def test_the_ray_searcher_pickles_and_its_sampler_still_samples(tmp_path, multi):
    """Ray Tune pickles its searcher when a tuning starts; optuna 5.1's NSGA-II sampler holds a
    thread lock that plain pickling refuses. The round trip must work and leave a working sampler."""
    import pickle

    from ray import cloudpickle

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    searcher = TU.ray_searcher("n-digits", multi, storage, seed=0, points=[])
    cloudpickle.loads(cloudpickle.dumps(searcher))
    sampler = pickle.loads(pickle.dumps(TU._sampler(multi, seed=0)))
    directions = ["maximize", "minimize"] if multi else ["maximize"]
    study = optuna.create_study(directions=directions, sampler=sampler)
    dists = TU.distributions("n-digits", multi)
    for _ in range(3):
        t = study.ask(dists)
        study.tell(t, [t.params["kd_lambda"], t.params["T"]] if multi else t.params["kd_lambda"])
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3


@pytest.mark.slow
def test_ray_multi_objective_tuning_with_nsga2(data_env, tmp_path):
    out = tmp_path / "mo"
    cp = run_cli(
        [*TUNE, "--multi-objective", "--trials", "3", "--executor", "ray", "--out", out],
        env_extra={"RAY_AUTH_MODE": "disabled"},
    )
    assert cp.returncode == 0, cp.stderr
    study = _study(out, "hsd-n-digits-mo")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 3 and all(1 <= t.params["T"] <= 9 for t in done)
    best = json.loads((out / "best_params.json").read_text())
    front = best["pareto"]["n-digits"]
    assert front and {p["trial"] for p in front} <= {t.number for t in done}
    assert len({r["run_id"] for r in read_rows(out)}) == 3
