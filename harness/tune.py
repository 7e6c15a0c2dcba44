"""Optuna tuning of HSD's distillation weight λ (`kd_lambda`), temperature τ and QCFS step L,
per dataset.

    python -m harness.run --tune --trials 20 --datasets n-digits [--executor local|ray]
    python -m harness.run --tune --multi-objective ...     # maximise accuracy, minimise T (NSGA-II)
    python -m harness.run --sweep latency --use-best runs/tune/best_params.json

Search space: λ log-uniform in [1e-3, 10], τ log-uniform in [1, 20], L ∈ {4, 8, 16, 32}; with
--multi-objective also the inference T ∈ [1, F_total − 1] (HSD keeps at least one pre-training
frame). λ weighs the KL in HSD's default "classmean" units, where the authors' weight is 1 on
every dataset; the range also holds their weight in "batchmean" units, 1/K (0.1 CIFAR10-DVS, 1/11
DVS-Gesture, 1/101 ≈ 0.0099 N-Caltech101), and τ's holds their 10 and the 2 of their other routine.
Objective: the run's best **validation** accuracy (`best_val_acc` of the execute rows: the
engine's model selection on the validation split) — never the test accuracy.

The study lives in ``sqlite:///<out>/optuna.db`` (study ``hsd-<dataset>``) and is written only by
this driver process (SQLite under many writers fails with "database is locked"): with the local
executor through an ask/tell loop, with Ray through `OptunaSearch`, whose searcher runs in the
driver. Each tuning run's rows go to the results store ``<out>/results.jsonl`` (sweep "tune").
Rerunning continues the study up to --trials finished trials; trials left RUNNING by a killed
driver are marked failed and their parameters enqueued again, so they resume from checkpoints.
Failed/diverged runs are told to Optuna as NaN, i.e. FAIL.

Best parameters go to ``<out>/best_params.json``:
``{"objective": ..., "best": {dataset: {"kd_lambda", "L", "T", "val_acc", "trial"}},
"pareto": {dataset: [...]}}`` (pareto only with --multi-objective; "best" is then the
highest-accuracy point of the front).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from harness.cli import UsageError, abs_path, pick_executor
from harness.common import sweeps as S
from harness.executors import ExecOptions, Progress
from harness.trial import record, run_trial
from hsd.config import RunConfig
from hsd.params import Choice, Float

# The search space, declared with the same types as method options (`hsd.params`): every point
# (sampled, enqueued again after a killed driver, or read back) is parsed by its declaration.
SPACE = {
    # λ: the authors' effective weight is 1 in classmean units (the default) and 1/K in batchmean
    # units, down to 1/101 on N-Caltech101; the range spans both with a decade to spare below.
    "kd_lambda": Float(1e-3, 10.0, log=True, default=1.0),
    "tau": Float(1.0, 20.0, log=True, default=10.0),  # authors' running code: 10 (other routine: 2)
    "L": Choice((4, 8, 16, 32), default=16),
}
DEFAULT_POINT = {name: p.default for name, p in SPACE.items()}  # to check configs up front
SPACE_TEXT = "; ".join(f"{name}: {p.describe()}" for name, p in SPACE.items())
OBJECTIVE = "best_val_acc (validation split, never test)"


def frames_of(dataset: str) -> int:
    from hsd.data import DATASETS

    return DATASETS[dataset].default_frames


def distributions(dataset: str, multi: bool) -> dict:
    import optuna

    lam, tau, L = SPACE["kd_lambda"], SPACE["tau"], SPACE["L"]
    d = {
        "kd_lambda": optuna.distributions.FloatDistribution(lam.lo, lam.hi, log=lam.log),
        "tau": optuna.distributions.FloatDistribution(tau.lo, tau.hi, log=tau.log),
        "L": optuna.distributions.CategoricalDistribution(list(L.values)),
    }
    if multi:
        d["T"] = optuna.distributions.IntDistribution(1, frames_of(dataset) - 1)
    return d


def make_trial(
    dataset: str, params: dict, profile: str, T: int | None, method: str = "hsd", seed: int = 0
) -> S.Trial:
    """The resolved trial (HSD unless told otherwise) for one point of the search space."""
    table_T = S.T_LISTS["table"][profile].get(dataset, (0,))[0]
    T = int(params.get("T") or T or table_T)
    if T < 1:
        raise UsageError(f"no paper T for {dataset!r}; pass --T")
    point = {k: p.parse(params[k]) for k, p in SPACE.items() if params.get(k) is not None}
    cfg = RunConfig(method, dataset, T, seed=seed, profile=profile, **point)
    (trial,) = S.resolve_all([S.Trial(cfg, (("tune", method),))])
    return trial


def objective(rows: list[dict]) -> float:
    """Validation accuracy of a finished run; NaN (Optuna: FAIL) for a run that did not finish."""
    row = rows[0]
    if row.get("status") != "ok":
        return math.nan
    if row.get("best_val_acc") is None:
        raise UsageError(
            "execute() rows carry no best_val_acc, so there is no validation objective; "
            "the method must set ctx.info['best_val_acc'] (never tune on test accuracy)"
        )
    return float(row["best_val_acc"])


def values_of(rows: list[dict], multi: bool):
    v = objective(rows)
    return [v, float(rows[0]["T"])] if multi else v


def study_name(dataset: str, multi: bool) -> str:
    return f"hsd-{dataset}" + ("-mo" if multi else "")


def _sampler(multi: bool, seed: int = 0):
    """TPE for one objective, NSGA-II for (accuracy, T), both picklable (`harness.samplers`)."""
    from harness import samplers

    return samplers.NSGAII(seed=seed) if multi else samplers.TPE(seed=seed)


def _recover_stale(study) -> list[dict]:
    """Trials RUNNING in the db come from a killed driver: mark them failed, return their params."""
    import optuna

    params = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # Flag it so it does not count against --trials: its point is enqueued again.
        optuna.trial.Trial(study, t._trial_id).set_user_attr("stale", True)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        params.append(dict(t.params))
    return params


def _finished_count(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    trials = study.get_trials(deepcopy=False, states=states)
    return sum(1 for t in trials if not t.user_attrs.get("stale"))


def open_study(out_dir: Path, dataset: str, multi: bool):
    """Create or load the study. The sampler's seed is the number of trials already in it, so a
    resumed study is reproducible without re-proposing the points of the first run."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kw = {"directions": ["maximize", "minimize"]} if multi else {"direction": "maximize"}
    study = optuna.create_study(
        storage=f"sqlite:///{out_dir / 'optuna.db'}",
        study_name=study_name(dataset, multi),
        load_if_exists=True,
        **kw,
    )
    study.sampler = _sampler(multi, seed=len(study.trials))
    return study


def _stored(store) -> dict[str, list[dict]]:
    """Rows of the finished runs in the store by run id (a re-proposed point is not rerun)."""
    df = store.rows()
    if df.empty:
        return {}
    df = df.drop(columns=["_chunk"], errors="ignore")
    return {
        rid: [{k: v for k, v in r.items() if k != "_chunk"} for r in g.to_dict("records")]
        for rid, g in df.groupby("run_id")
        if rid in store.finished_run_ids()
    }


def tune_local(dataset, n_trials, store, opts: ExecOptions, *, profile, T, multi, method):
    """Ask/tell loop in this process; returns the study."""
    study = open_study(opts.out_dir, dataset, multi)
    for p in _recover_stale(study):
        study.enqueue_trial(p)
    dists = distributions(dataset, multi)
    todo = max(0, n_trials - _finished_count(study))
    progress = Progress([], enabled=opts.progress, desc=f"tune {dataset}")
    try:
        for _ in range(todo):
            ot = study.ask(dists)
            trial = make_trial(dataset, ot.params, profile, T, method)
            progress.add(trial)
            progress.start(trial.run_id, f"{trial.label()} {ot.params}")
            rows = run_trial(trial, opts)
            rows = [{**r, "optuna_trial": ot.number} for r in rows]
            record(trial.label(), rows, store, opts, progress)
            study.tell(ot, values_of(rows, multi))
    finally:
        progress.close()
    return study


def _ray_trainable(config: dict, base: dict) -> None:
    from ray import tune

    opts = ExecOptions.from_dict(base["opts"])
    trial = make_trial(base["dataset"], config, base["profile"], base["T"], base["method"])
    rows = run_trial(trial, opts)
    v = objective(rows)
    tune.report({"val_acc": v, "T": float(trial.cfg.T), "rows_json": json.dumps(rows)})


def ray_searcher(dataset: str, multi: bool, storage, *, seed: int, points: list[dict]):
    """The `OptunaSearch` of one study; Ray Tune pickles it (sampler included) when it starts."""
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(
        space=distributions(dataset, multi),
        metric=["val_acc", "T"] if multi else "val_acc",
        mode=["max", "min"] if multi else "max",
        sampler=_sampler(multi, seed=seed),
        storage=storage,
        study_name=study_name(dataset, multi),
        points_to_evaluate=points or None,
    )


def tune_ray(
    dataset, n_trials, store, opts: ExecOptions, *, profile, T, multi, method, address, cpus, gpus
):
    """Ray Tune with `OptunaSearch`; the searcher (the only db writer) runs in this driver."""
    import optuna
    from ray import tune

    from harness.executors import ray_exec

    ray_exec.check_trial_request(cpus, gpus)
    ray_exec.init(address)
    storage = optuna.storages.RDBStorage(f"sqlite:///{opts.out_dir / 'optuna.db'}")
    name = study_name(dataset, multi)
    pre = open_study(opts.out_dir, dataset, multi)  # creates it / recovers a killed driver's trials
    stale = _recover_stale(pre)
    todo = max(0, n_trials - _finished_count(pre))
    if todo == 0:
        return pre
    searcher = ray_searcher(dataset, multi, storage, seed=len(pre.trials), points=stale)
    if gpus is None:
        import ray

        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    ray_exec.check_cluster_fits(cpus, gpus)
    ray_exec.check_shared_storage(opts)
    progress = Progress([], enabled=opts.progress, desc=f"tune {dataset}")

    class Collector(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "rows_json" in result:
                rows = json.loads(result["rows_json"])
                if rows[0]["run_id"] not in store.finished_run_ids():  # a re-proposed point
                    label = f"tune {dataset} run {rows[0]['run_id']}"
                    progress.cost[rows[0]["run_id"]] = 1
                    record(label, rows, store, opts, progress)

    base = {
        "dataset": dataset,
        "method": method,
        "profile": profile,
        "T": T,
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
    return open_study(opts.out_dir, dataset, multi)


def best_of_study(study, multi: bool, T: int) -> dict[str, Any]:
    """Best point (and the Pareto front with --multi-objective) of a finished study at T."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return {}
    if multi:
        front = [
            {**t.params, "val_acc": t.values[0], "T": int(t.params["T"]), "trial": t.number}
            for t in study.best_trials
        ]
        front.sort(key=lambda p: (p["T"], -p["val_acc"]))
        best = max(front, key=lambda p: (p["val_acc"], -p["T"]))
        return {"best": best, "pareto": front}
    t = study.best_trial
    return {
        "best": {
            **t.params,
            "val_acc": t.value,
            "T": int(T),
            "trial": t.number,
        }
    }


def main_from_args(args, argv) -> int:
    """`python -m harness.run --tune ...` (validation, store, tuning per dataset, best params)."""
    import time

    from harness.cli import check_creatable, prepare_data
    from harness.common.store import ResultStore
    from hsd.device import pick_device

    start = time.time()
    if args.sweep or args.use_best:
        raise UsageError("--tune runs no sweep: drop --sweep/--use-best")
    if args.methods and len(args.methods) != 1:
        raise UsageError("--tune tunes one method (default hsd): pass at most one --methods")
    method = args.methods[0] if args.methods else "hsd"
    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    if args.T and len(args.T) != 1:
        raise UsageError("--tune takes at most one --T (the inference T to tune at)")
    if args.multi_objective and args.T:
        raise UsageError("--multi-objective searches T itself; drop --T")
    if args.seeds is not None:
        raise UsageError("--tune runs seed 0 for every point; drop --seeds")
    datasets = list(args.datasets or S.DEFAULT_DATASETS)
    T = args.T[0] if args.T else None
    S.check_datasets(datasets)
    probes = []  # every config resolvable before anything runs
    for ds in datasets:
        probes.append(make_trial(ds, DEFAULT_POINT, args.profile, T, method))
        if args.multi_objective:
            point = {**DEFAULT_POINT, "T": frames_of(ds) - 1}
            probes.append(make_trial(ds, point, args.profile, T, method))
    executor = pick_executor(args.executor)
    if args.dry_run:
        kind = "NSGA-II (accuracy, T)" if args.multi_objective else "TPE (accuracy)"
        print(
            f"tune {method} on {', '.join(datasets)}: {args.trials} trials each, {kind}, "
            f"space {SPACE_TEXT}, executor {executor}"
        )
        return 0
    pick_device(args.device)
    if executor == "ray":
        from harness.executors import ray_exec

        ray_exec.announce(args.address)
        ray_exec.check_address(args.address)
    out = Path(args.out or "runs/tune").resolve()
    manifest = {
        "sweep": "tune",
        "args": {
            "datasets": datasets,
            "method": method,
            "T": T,
            "profile": args.profile,
            "multi": args.multi_objective,
        },
    }
    store = ResultStore(out)
    store.check_manifest(manifest)
    check_creatable(out)
    prepare_data(probes, abs_path(args.root), abs_path(args.cache_dir))  # data present: exit 2
    store.claim(manifest, lock=True)  # a second driver on this folder stops here (exit 2)
    try:
        result = _tune_locked(args, argv, store, probes, executor, method, datasets, T, start)
    finally:
        store.close()
    path = out / "best_params.json"
    print(f"best parameters: {path}")
    for ds, b in result["best"].items():
        shown = " ".join(f"{k}={b[k]:.4g}" for k in ("kd_lambda", "tau") if k in b)
        print(f"  {ds}: {shown} L={b['L']} T={b['T']} val_acc={b['val_acc']:.4f}")
    print(f"use them with: python -m harness.run --sweep <name> --use-best {path}")
    return 0


def _tune_locked(args, argv, store, probes, executor, method, datasets, T, start) -> dict:
    """Tuning under the folder's lock: every dataset's study, best_params.json, provenance."""
    import time

    from harness.cli import exec_options
    from harness.provenance import typed_command, write_provenance

    out = store.out_dir
    opts = exec_options(args, out, typed_command("harness.run", argv))
    result: dict[str, Any] = {"objective": OBJECTIVE, "best": {}, "pareto": {}}
    path = out / "best_params.json"
    if path.exists():
        old = json.loads(path.read_text())
        result["best"].update(old.get("best", {}))
        result["pareto"].update(old.get("pareto", {}))
    try:
        for ds in datasets:
            kw = dict(profile=args.profile, T=T, multi=args.multi_objective, method=method)
            if executor == "ray":
                study = tune_ray(
                    ds,
                    args.trials,
                    store,
                    opts,
                    address=args.address,
                    cpus=args.cpus_per_trial,
                    gpus=args.gpus_per_trial,
                    **kw,
                )
            else:
                study = tune_local(ds, args.trials, store, opts, **kw)
            ds_T = next(p.cfg.T for p in probes if p.cfg.dataset == ds)
            best = best_of_study(study, args.multi_objective, T or ds_T)
            if best:
                result["best"][ds] = best["best"]
                if "pareto" in best:
                    result["pareto"][ds] = best["pareto"]
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)
    finally:
        if executor == "ray":
            from harness.executors import ray_exec

            ray_exec.shutdown()
    write_provenance(
        out,
        typed_command("harness.run", argv),
        {"mode": "tune", "executor": executor, "best": json.dumps(result["best"])},
        start=start,
        end=time.time(),
    )
    return result
