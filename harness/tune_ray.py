"""Tuning through Ray Tune (`python -m harness.run --tune --executor ray`): `OptunaSearch` over
the method's declared space, its searcher (the only writer of the Optuna db) in this driver; each
Ray trial trains the point's seeds one after another and reports their rows, which the driver
stores once per seed (`Collector`). The study, objective and points are `harness.tune_study`'s."""

from __future__ import annotations

import json
import os

from harness.executors import ExecOptions, Progress
from harness.trial import record, run_trial
from harness.tune_study import (
    distributions,
    expected_cost,
    finished_count,
    make_trials,
    open_study,
    recover_stale,
    run_seeds,
    sampler,
    stored_runs,
    study_name,
    values_of,
)


def _ray_trainable(config: dict, base: dict) -> None:
    """One Ray trial: the point's seeds in turn (runs finished before this tuning are reused)."""
    from ray import tune

    opts = ExecOptions.from_dict(base["opts"])
    trials = make_trials(
        base["dataset"], config, base["profile"], base["T"], base["method"], base["seeds"]
    )
    runs = run_seeds(trials, base["done"], lambda trial: run_trial(trial, opts))
    v = values_of(runs, False, base["seeds"])
    tune.report({"val_acc": v, "T": float(trials[0].cfg.T), "runs_json": json.dumps(runs)})


def ray_searcher(method: str, dataset: str, multi: bool, storage, *, seed: int, points: list[dict]):
    """The `OptunaSearch` of one study; Ray Tune pickles it (sampler included) when it starts."""
    from harness.ray_search import FailingOptunaSearch

    return FailingOptunaSearch(
        space=distributions(method, dataset, multi),
        metric=["val_acc", "T"] if multi else "val_acc",
        mode=["max", "min"] if multi else "max",
        sampler=sampler(multi, seed=seed),
        storage=storage,
        study_name=study_name(method, dataset, multi),
        points_to_evaluate=points or None,
    )


def tune_ray(
    dataset,
    n_trials,
    store,
    opts: ExecOptions,
    *,
    profile,
    T,
    multi,
    method,
    seeds,
    address,
    cpus,
    gpus,
):
    """Ray Tune with `OptunaSearch`; the searcher (the only db writer) runs in this driver."""
    import optuna
    from ray import tune

    from harness.executors import ray_exec

    ray_exec.check_trial_request(cpus, gpus)
    ray_exec.init(address)
    storage = optuna.storages.RDBStorage(f"sqlite:///{opts.out_dir / 'optuna.db'}")
    name = study_name(method, dataset, multi)
    pre = open_study(
        opts.out_dir, method, dataset, multi
    )  # creates it / recovers a killed driver's trials
    stale = recover_stale(pre)
    todo = max(0, n_trials - finished_count(pre))
    if todo == 0:
        return pre
    searcher = ray_searcher(method, dataset, multi, storage, seed=len(pre.trials), points=stale)
    if gpus is None:
        import ray

        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    ray_exec.check_cluster_fits(cpus, gpus)
    ray_exec.check_shared_storage(opts)
    # Runs are seen here only when they finish (in the callback below): each counts its cost then.
    per_run = expected_cost(dataset, profile, T, method, 1)
    progress = Progress(
        [],
        enabled=opts.progress,
        desc=f"tune {method} {dataset}",
        expected=todo * seeds * per_run,
        planned=todo * seeds,
    )

    class Collector(tune.Callback):
        """Stores each seed's rows once, in the driver (the store's single writer)."""

        def on_trial_result(self, iteration, trials, trial, result, **info):
            for rows in json.loads(result.get("runs_json", "[]")):
                if rows[0]["run_id"] not in store.finished_run_ids():  # a re-proposed point
                    label = f"tune {method} {dataset} run {rows[0]['run_id']}"
                    progress.arrived(rows[0]["run_id"], per_run)
                    record(label, rows, store, opts, progress)

    base = {
        "dataset": dataset,
        "method": method,
        "profile": profile,
        "T": T,
        "seeds": seeds,
        "done": stored_runs(store),
        "opts": opts.to_dict(),
    }
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(_ray_trainable, base=base), {"cpu": cpus, "gpu": gpus}
        ),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=todo, reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"{name}-{os.getpid()}",
            storage_path=str(opts.out_dir / "ray_results"),
            callbacks=[Collector()],
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    finally:
        progress.close()
    return open_study(opts.out_dir, method, dataset, multi)
