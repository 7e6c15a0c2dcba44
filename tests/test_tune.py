"""Optuna tuning (harness.tune): every method's declared space, the same budget (seeds per trial,
mean validation objective), durable study, resume, best params with their method, Ray + NSGA-II
multi-objective. Uses the fake method, whose validation accuracy grows with kd_lambda and seed."""

from __future__ import annotations

import json
import math
import os
import random

import optuna
import pytest
from harness_helpers import read_rows, run_cli

from harness import run as R
from harness import run_cli as RC
from harness import tune as TU
from harness import tune_ray as TR
from harness import tune_study as TS
from harness.common import sweeps as S
from harness.common.store import ResultStore
from harness.executors import ExecOptions

TUNE = ["--tune", "--methods", "fake", "--datasets", "n-digits", "--no-progress"]


def _study(out, name="fake-n-digits"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}")


@pytest.mark.parametrize("dataset", ["cifar10-dvs", "dvs-gesture", "n-caltech101"])
def test_search_space_spans_the_authors_weights_and_temperature(dataset):
    from hsd.config import RunConfig
    from hsd.data import DATASETS
    from hsd.method import resolve

    space = TU.distributions("hsd", dataset, multi=False)
    lam, tau = space["kd_lambda"], space["tau"]
    assert lam.log and tau.log
    # the authors' weight: 1 in classmean units (the default), 1/K in batchmean units
    for weight in (1.0, 1.0 / DATASETS[dataset].num_classes):
        assert lam.low < weight < lam.high, (dataset, weight)
    assert tau.low < 10.0 < tau.high and tau.low <= 2.0
    trial = TU.make_trial(dataset, {"kd_lambda": 0.05, "L": 8, "tau": 3.0}, "smoke", 5)
    assert (trial.cfg.kd_lambda, trial.cfg.tau, trial.cfg.L) == (0.05, 3.0, 8)
    default = TU.make_trial(dataset, {"kd_lambda": 1.0, "L": 16}, "smoke", 5)
    preset = resolve(RunConfig("hsd", dataset, 5, profile="smoke"))
    assert default.cfg.tau == preset.tau  # τ not searched: the smoke preset's


def _methods():
    from hsd.method import METHODS

    return METHODS.names()


@pytest.mark.parametrize("method", _methods())
def test_every_methods_space_maps_to_optuna_and_every_sampled_point_resolves(method, data_env):
    """Each registered method's declared space gives Optuna distributions, and points sampled from
    them (and its bounds) resolve to valid configs carrying exactly the sampled values."""
    from hsd.method import METHODS, target

    space = TU.space_of(method)
    assert {"lr", "weight_decay"} <= set(space)  # the shared base
    dists = TU.distributions(method, "n-digits", multi=False)
    assert set(dists) == set(space)
    study = optuna.create_study(direction="maximize", sampler=TS.sampler(False, seed=0))
    rng = random.Random(0)
    for i in range(4):
        params = study.ask(dists).params
        if i == 0:  # the low end of every range
            params = {k: d.low if hasattr(d, "low") else d.choices[0] for k, d in dists.items()}
        trial = TU.make_trial("n-digits", params, "smoke", None, method, seed=rng.randrange(3))
        options = dict(trial.cfg.options)
        for k, v in params.items():
            assert (
                options[k] if k in METHODS[target(method)].options else getattr(trial.cfg, k)
            ) == v
    assert TS.study_name(method, "n-digits", False) == f"{target(method)}-n-digits"


def test_each_declaration_maps_to_its_optuna_distribution():
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from hsd.params import Bool, Choice, Float, Int, Text

    assert TS.distribution(Float(1e-3, 1.0, log=True)) == FloatDistribution(1e-3, 1.0, log=True)
    assert TS.distribution(Float(0.0, 2.0)) == FloatDistribution(0.0, 2.0)
    assert TS.distribution(Int(1, 5, default=2)) == IntDistribution(1, 5)
    assert TS.distribution(Choice((4, 8))) == CategoricalDistribution([4, 8])
    assert TS.distribution(Bool(True)) == CategoricalDistribution([False, True])
    with pytest.raises(ValueError, match="needs both bounds"):
        TS.distribution(Float(lo=0.0, default=None))
    with pytest.raises(TypeError, match="cannot search"):
        TS.distribution(Text("x"))


def test_a_space_over_an_unknown_name_or_a_point_outside_it_is_refused(monkeypatch):
    from hsd.config import ConfigError
    from hsd.method import METHODS, split_point

    with pytest.raises(ConfigError, match="tunes no frames"):
        split_point("tet", {"frames": 3})
    with pytest.raises(ConfigError, match=r"lr=0\.5: 0\.5 is not a number in \[0\.0001, 0\.3\]"):
        split_point("tet", {"lr": 0.5})
    assert split_point("tet", {"lr": "0.01"}) == ({"lr": 0.01}, {})
    from hsd.params import Bool

    monkeypatch.setattr(METHODS["tet"], "search_space", {"ht": Bool(), "seed": Bool()})
    with pytest.raises(ConfigError, match="search space over seed"):
        split_point("tet", {"ht": True})


def test_the_objective_is_the_mean_of_the_seeds_and_a_failed_seed_fails_the_point():
    ok = [[{"status": "ok", "best_val_acc": 0.5, "T": 5}], [{"status": "ok", "best_val_acc": 0.7}]]
    assert TS.objective(ok) == (0.5 + 0.7) / 2
    assert TU.values_of(ok, True, 2) == [(0.5 + 0.7) / 2, 5.0]
    assert math.isnan(TU.values_of(ok[:1], False, 2))  # a seed missing: not a mean of one
    assert math.isnan(TS.objective([ok[0], [{"status": "diverged", "best_val_acc": None}]]))
    ran = []

    def run(trial):
        ran.append(trial)
        return [{"status": "failed"}]

    class T:
        def __init__(self, rid):
            self.run_id = rid

    assert TS.run_seeds([T("a"), T("b")], {}, run) == [[{"status": "failed"}]]  # b is not run
    assert TS.run_seeds([T("a"), T("b")], {"a": ok[0], "b": ok[1]}, run) == ok and len(ran) == 1


@pytest.mark.slow
def test_local_tuning_averages_the_seeds_stores_each_run_once_and_resumes(data_env, tmp_path):
    counter = tmp_path / "counter.txt"
    os.environ["HSD_FAKE_COUNTER"] = str(counter)  # the fake method logs each start here
    try:
        out = tmp_path / "tune"
        args = [*TUNE, "--executor", "local", "--out", str(out), "--tune-seeds", "2"]
        assert R.main([*args, "--trials", "3"]) == 0
        best = json.loads((out / "best_params.json").read_text())
        rows = read_rows(out)
        runs = {r["run_id"]: r for r in rows}
        assert len(runs) == 6 and {r["sweep"] for r in rows} == {"tune"}
        assert sorted(r["seed"] for r in runs.values()) == [0, 0, 0, 1, 1, 1]
        assert len(rows) == 6 * 5  # T=5 rows of each run, stored once
        study = _study(out)
        for t in study.trials:  # the objective: the mean of the two seeds' best_val_acc, exactly
            mine = [r for r in runs.values() if r["optuna_trial"] == t.number]
            accs = [r["best_val_acc"] for r in sorted(mine, key=lambda r: r["seed"])]
            assert len(accs) == 2 and t.value == (accs[0] + accs[1]) / 2
        b = best["best"]["n-digits"]
        assert best["method"] == "fake" and best["seeds_per_trial"] == 2
        assert b["val_acc"] == max(t.value for t in study.trials) and b["T"] == 5
        assert best["objective"].startswith("mean best_val_acc over seeds 0..1")
        assert {p.stem for p in (out / "curves").glob("*.json")} == set(runs)  # tuning keeps curves
        assert all(1e-3 <= r["kd_lambda"] <= 10 and r["L"] in (4, 8, 16, 32) for r in rows)
        starts = [x for x in counter.read_text().splitlines() if x.startswith("start")]
        assert len(starts) == 6
        # Resume: the study continues to 4 finished trials, nothing already run is run again.
        assert R.main([*args, "--trials", "4"]) == 0
        assert [t.state.name for t in _study(out).trials] == ["COMPLETE"] * 4
        rows = read_rows(out)
        assert len({r["run_id"] for r in rows}) == 8 and len(rows) == 8 * 5
        starts = [x for x in counter.read_text().splitlines() if x.startswith("start")]
        assert len(starts) == 8 and len(set(starts)) == 8
        # The tuned values feed later sweeps, for the method they were tuned for only.
        got = RC.load_best(str(out / "best_params.json"))
        b = json.loads((out / "best_params.json").read_text())["best"]["n-digits"]
        (t,) = S.expand(
            ["latency"], datasets=["n-digits"], methods=["fake"], T=[2], seeds=1, best=got
        )
        assert (t.cfg.kd_lambda, t.cfg.L, t.cfg.lr) == (b["kd_lambda"], b["L"], b["lr"])
        assert R.main(["--sweep", "latency", "--methods", "hsd", "--datasets", "n-digits",
                       "--use-best", str(out / "best_params.json"), "--dry-run"]) == 2  # fmt: skip
        # A second method cannot be tuned into the same folder.
        other = [*TUNE[:2], "fake-fail", *TUNE[3:], "--executor", "local", "--out", str(out)]
        assert R.main([*other, "--trials", "1", "--tune-seeds", "2"]) == 2
    finally:
        os.environ.pop("HSD_FAKE_COUNTER", None)


def test_a_tuning_folder_takes_another_datasets_study(data_env, tmp_path):
    """One folder, one method's tuning: a later command with another dataset adds that dataset's
    study (its own Optuna study) beside the stored one, keeps the stored best, and either dataset
    alone resumes afterwards."""
    out = tmp_path / "t"
    base = ["--tune", "--methods", "fake", "--executor", "local", "--trials", "1", "--T", "3"]
    base += ["--no-progress", "--out", str(out)]
    assert R.main([*base, "--datasets", "n-digits"]) == 0
    assert R.main([*base, "--datasets", "sim-gestures"]) == 0
    assert json.loads((out / "sweep.json").read_text())["args"]["datasets"] == [
        "n-digits",
        "sim-gestures",
    ]
    assert set(json.loads((out / "best_params.json").read_text())["best"]) == {
        "n-digits",
        "sim-gestures",
    }
    for ds in ("n-digits", "sim-gestures"):
        assert [t.state.name for t in _study(out, f"fake-{ds}").trials] == ["COMPLETE"]
    rows = len(read_rows(out))
    assert R.main([*base, "--datasets", "n-digits"]) == 0  # resumes: nothing left to run
    assert len(read_rows(out)) == rows


def test_only_a_tuning_folder_takes_more_datasets():
    from harness.common.manifest import adds_datasets

    tune = {"sweep": "tune", "args": {"datasets": ["a"], "method": "tet", "T": None}}
    more = {**tune, "args": {**tune["args"], "datasets": ["a", "b"]}}
    assert adds_datasets(tune, more)
    assert not adds_datasets(more, tune)  # fewer
    assert not adds_datasets(tune, {**more, "args": {**more["args"], "method": "hsd"}})
    sweep = {"sweep": "latency", "args": tune["args"]}
    assert not adds_datasets(sweep, {**sweep, "args": more["args"]})  # a sweep's grid is fixed


def test_a_second_method_into_the_same_folder_exits_2(data_env, tmp_path, capsys):
    out = tmp_path / "t"
    ResultStore.open(out, TU_manifest("fake"), lock=False).close()
    args = ["--tune", "--methods", "tet", "--datasets", "n-digits", "--executor", "local"]
    assert R.main([*args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "choose another --out" in err and "method" in err


def TU_manifest(method: str) -> dict:
    return {
        "sweep": "tune",
        "args": {
            "datasets": ["n-digits"],
            "method": method,
            "T": None,
            "profile": "smoke",
            "multi": False,
            "tune_seeds": 2,
        },
    }


def test_use_best_applies_a_files_values_to_the_runs_of_its_method_only(tmp_path, capsys):
    path = tmp_path / "best_params.json"
    best = {"n-digits": {"lr": 0.01, "weight_decay": 1e-4, "val_acc": 0.9, "T": 5, "trial": 3}}
    path.write_text(json.dumps({"method": "tet", "best": best}))
    tuned = RC.load_best(str(path))
    trials = S.expand(["latency"], datasets=["n-digits"], methods=["hsd", "sts", "dts"], T=[3],
                      seeds=1, best=tuned)  # fmt: skip
    got = {t.cfg.method: (t.cfg.lr, t.cfg.weight_decay) for t in trials}
    assert got == {"hsd": (None, None), "sts": (0.01, 1e-4), "dts": (None, None)}  # sts = tet
    # A file without "method" is HSD's, as written before other methods were tuned.
    path.write_text(json.dumps({"best": {"n-digits": {"kd_lambda": 2, "tau": 4, "L": 8}}}))
    tuned = RC.load_best(str(path))
    assert tuned.method == "hsd"
    (t,) = S.expand(["latency"], datasets=["n-digits"], methods=["hsd"], T=[3], seeds=1,
                    best=tuned)  # fmt: skip
    assert (t.cfg.kd_lambda, t.cfg.tau, t.cfg.L, t.cfg.lr) == (2.0, 4.0, 8, None)
    q = S.expand(["quantization"], datasets=["n-digits"], T=[3], seeds=1, best=tuned)
    assert sorted(t.cfg.L for t in q) == [4, 8, 16, 32]  # the variant's own L stays
    # Values outside the method's space, and a method the sweep does not run: exit 2.
    for doc, msg in [
        ({"method": "tet", "best": {"n-digits": {"lr": 5.0}}}, "5.0 is not a number in"),
        ({"method": "tet", "best": {"n-digits": {"kd_lambda": 1.0}}}, "'tet' tunes no kd_lambda"),
        ({"method": "banana", "best": {"n-digits": {}}}, "unknown method 'banana'"),
        ({"method": "sltt", "best": {"n-digits": {"lr": 0.1}}}, "does not run"),
    ]:
        path.write_text(json.dumps(doc))
        argv = ["--sweep", "latency", "--methods", "hsd,sts", "--datasets", "n-digits",
                "--use-best", str(path), "--dry-run"]  # fmt: skip
        assert R.main(argv) == 2
        assert msg in capsys.readouterr().err


def test_tuning_dry_run_prints_the_space_trials_seeds_and_sampler(data_env, capsys):
    argv = ["--tune", "--methods", "hsd", "--datasets", "n-digits", "--trials", "12",
            "--tune-seeds", "3", "--dry-run", "--executor", "local"]  # fmt: skip
    assert R.main(argv) == 0
    out = capsys.readouterr().out
    assert "12 trials each, 3 training seeds per trial (0..2), sampler TPE" in out
    for name, p in TU.space_of("hsd").items():
        assert f"  {name}: {p.describe().removesuffix(', or none')}\n" in out
    # the shared base every trial trains, and the study's cost (12 trials x 3 seeds)
    (probe,) = TS.make_trials("n-digits", TS.default_point("hsd"), "smoke", None, "hsd", 1)
    c = probe.cfg
    assert (
        f"  n-digits: base {c.epochs} epochs (+{c.pre_epochs} pre-training), {c.size} px, "
        f"width {c.width}, batch {c.batch_size}, T = {c.T}; 12 trials x 3 seeds = "
        f"{36 * S.trial_cost(c)} epoch-frames, about "
    ) in out


def test_a_trial_left_running_by_a_killed_driver_is_failed_and_rerun(data_env, tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    study = TS.open_study(out, "fake", "n-digits", False)
    stale = study.ask(TU.distributions("fake", "n-digits", False))  # never told: the driver "died"
    store = ResultStore.open(out, {"sweep": "tune", "args": {}})
    opts = ExecOptions(out_dir=out, progress=False)
    TU.tune_local(
        "n-digits", 2, store, opts, profile="smoke", T=None, multi=False, method="fake", seeds=1
    )
    trials = _study(out).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params == stale.params  # re-enqueued, so its checkpoints would be reused


def test_a_killed_drivers_point_reuses_its_finished_seeds(data_env, tmp_path, monkeypatch):
    """The driver died after seed 0 of a point was stored: the point is proposed again, seed 0 is
    read back from the store (not trained again) and only seed 1 runs."""
    from harness.trial import record, run_trial

    counter = tmp_path / "counter.txt"
    monkeypatch.setenv("HSD_FAKE_COUNTER", str(counter))
    out = tmp_path / "t"
    out.mkdir()
    study = TS.open_study(out, "fake", "n-digits", False)
    stale = study.ask(TU.distributions("fake", "n-digits", False))
    store = ResultStore.open(out, {"sweep": "tune", "args": {}})
    opts = ExecOptions(out_dir=out, progress=False)
    seed0, seed1 = TS.make_trials("n-digits", stale.params, "smoke", None, "fake", 2)

    class Quiet:
        def write(self, *a):
            pass

        def finish(self, *a):
            pass

    record("seed 0", run_trial(seed0, opts), store, opts, Quiet())
    TU.tune_local(
        "n-digits", 1, store, opts, profile="smoke", T=None, multi=False, method="fake", seeds=2
    )
    (done,) = [t for t in _study(out).trials if t.state.name == "COMPLETE"]
    starts = [x.split()[1] for x in counter.read_text().splitlines() if x.startswith("start")]
    assert starts == [seed0.run_id, seed1.run_id]  # seed 0 trained once, before the "kill"
    accs = {r["run_id"]: r["best_val_acc"] for r in read_rows(out)}
    assert (
        done.params == stale.params and done.value == (accs[seed0.run_id] + accs[seed1.run_id]) / 2
    )


def test_bad_tuning_requests_exit_2(data_env, tmp_path, capsys):
    for args, msg in [
        (["--trials", "0"], "--trials must be >= 1"),
        (["--sweep", "latency"], "runs no sweep"),
        (["--multi-objective", "--T", "3"], "drop --T"),
        (["--T", "10"], "exceeds the 10 frames"),
        (["--tune-seeds", "0"], "--tune-seeds must be >= 1"),
        (["--seeds", "2"], "from --tune-seeds; drop --seeds"),
        (["--methods", "dts", "--multi-objective"], "dts trains one model for every T"),
        (["--methods", "banana"], "unknown method 'banana'"),
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
    searcher = TR.ray_searcher("fake", "n-digits", multi, storage, seed=0, points=[])
    cloudpickle.loads(cloudpickle.dumps(searcher))
    sampler = pickle.loads(pickle.dumps(TS.sampler(multi, seed=0)))
    directions = ["maximize", "minimize"] if multi else ["maximize"]
    study = optuna.create_study(directions=directions, sampler=sampler)
    dists = TU.distributions("fake", "n-digits", multi)
    for _ in range(3):
        t = study.ask(dists)
        study.tell(t, [t.params["kd_lambda"], t.params["T"]] if multi else t.params["kd_lambda"])
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3


@pytest.mark.parametrize("multi", [False, True])
def test_the_ray_searcher_records_a_point_without_objective_as_failed(tmp_path, multi):
    """A point whose seed did not finish reports NaN; Ray's own OptunaSearch left such a trial
    RUNNING in the study (Optuna refuses NaN for COMPLETE, Ray only logs it)."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    TS.open_study(tmp_path, "fake", "n-digits", multi)
    searcher = TR.ray_searcher("fake", "n-digits", multi, storage, seed=0, points=[])
    for trial_id, val in (("a", math.nan), ("b", 0.5)):
        assert searcher.suggest(trial_id) is not None
        searcher.on_trial_complete(trial_id, {"val_acc": val, "T": 3.0})
    study = TS.open_study(tmp_path, "fake", "n-digits", multi)
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert TS.finished_count(study) == 2


@pytest.mark.slow
def test_ray_multi_objective_tuning_with_nsga2(data_env, tmp_path):
    out = tmp_path / "mo"
    cp = run_cli(
        [*TUNE, "--multi-objective", "--trials", "3", "--executor", "ray", "--out", out],
        env_extra={"RAY_AUTH_MODE": "disabled"},
    )
    assert cp.returncode == 0, cp.stderr
    study = _study(out, "fake-n-digits-mo")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 3 and all(1 <= t.params["T"] <= 9 for t in done)
    best = json.loads((out / "best_params.json").read_text())
    front = best["pareto"]["n-digits"]
    assert front and {p["trial"] for p in front} <= {t.number for t in done}
    rows = read_rows(out)
    assert len({r["run_id"] for r in rows}) == 6  # two seeds per trial (the default)
    assert len(rows) == sum(r["T"] for r in {r["run_id"]: r for r in rows}.values())  # once each
    for t in done:  # the objective: the mean of the trial's two seeds
        mine = {r["run_id"]: r for r in rows if r["T"] == t.params["T"]
                and r["kd_lambda"] == t.params["kd_lambda"]}.values()  # fmt: skip
        assert len(mine) == 2
        assert t.values[0] == pytest.approx(sum(r["best_val_acc"] for r in mine) / 2)


def test_the_readme_space_table_is_the_declarations():
    from harness_helpers import REPO

    table = TU.space_table()
    assert "| `hsd` | lr: a number in [1e-05, 0.3], log scale;" in table
    assert "| `sts` | = `tet`'s (alias) |" in table and "`fake`" not in table
    assert table in (REPO / "README.md").read_text(), "regenerate with harness.tune.space_table"


def test_trials_csv_lists_every_trial_with_its_state_value_and_parameters():
    """The exported trials of a study: one line per trial in order, a failed trial's value empty,
    a parameter a trial did not sample empty; the same study exports the same text."""
    import optuna

    from harness.tune_study import trials_csv

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"lr": 0.01})
    study.enqueue_trial({"lr": 0.1, "L": 8})

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        if lr > 0.05:
            trial.suggest_categorical("L", [4, 8])
            return float("nan")  # Optuna records a NaN objective as a failed trial
        return 0.5

    study.optimize(objective, n_trials=2)
    text = trials_csv(study)
    assert text.splitlines() == ["number,state,value,L,lr", "0,COMPLETE,0.5,,0.01", "1,FAIL,,8,0.1"]
    assert trials_csv(study) == text
