"""What both tuning executors share (`harness.tune` locally, `harness.tune_ray` through Ray): a
method's search space as Optuna distributions, the runs of one point (its seeds), their objective,
and the study in ``<out>/optuna.db`` (opened, recovered after a killed driver, counted)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.cli import UsageError
from harness.common import sweeps as S
from hsd.config import RunConfig
from hsd.params import Bool, Choice, Float, Int, Param


def space_of(method: str) -> dict[str, Param]:
    """The method's declared search space (an alias: its target's)."""
    from hsd.method import search_space

    return dict(search_space(method))


def default_point(method: str) -> dict[str, Any]:
    """The declared defaults of a space (its optional values left to the presets): the point
    every config is checked with before anything runs."""
    return {k: p.default for k, p in space_of(method).items() if p.default is not None}


def frames_of(dataset: str) -> int:
    from hsd.data import DATASETS

    return DATASETS[dataset].default_frames


def distribution(param: Param):
    """The Optuna distribution of one declaration: the one place a Param becomes a search range."""
    from optuna.distributions import CategoricalDistribution as Cat
    from optuna.distributions import FloatDistribution, IntDistribution

    if isinstance(param, Bool):
        return Cat([False, True])
    if isinstance(param, Choice):
        return Cat(list(param.values))
    if isinstance(param, (Float, Int)) and (param.lo is None or param.hi is None):
        raise ValueError(f"a searched {type(param).__name__} needs both bounds, got {param}")
    if isinstance(param, Float):
        return FloatDistribution(param.lo, param.hi, log=param.log)
    if isinstance(param, Int):
        return IntDistribution(param.lo, param.hi)
    raise TypeError(f"cannot search over {param!r}: declare it as Bool, Int, Float or Choice")


def distributions(method: str, dataset: str, multi: bool) -> dict:
    d = {name: distribution(p) for name, p in space_of(method).items()}
    if multi:
        import optuna

        d["T"] = optuna.distributions.IntDistribution(1, frames_of(dataset) - 1)
    return d


def make_trial(
    dataset: str, params: dict, profile: str, T: int | None, method: str = "hsd", seed: int = 0
) -> S.Trial:
    """The resolved trial of `method` (HSD unless told otherwise) for one point of its space."""
    from hsd.method import split_point

    table_T = S.T_LISTS["table"][profile].get(dataset, (0,))[0]
    T = int(params.get("T") or T or table_T)
    if T < 1:
        raise UsageError(f"no paper T for {dataset!r}; pass --T")
    point = {k: v for k, v in params.items() if k != "T" and v is not None}
    fields, options = split_point(method, point)
    cfg = RunConfig(method, dataset, T, seed=seed, profile=profile, options=options, **fields)
    (trial,) = S.resolve_all([S.Trial(cfg, (("tune", method),))])
    return trial


def expected_cost(dataset, profile, T, method, runs: int) -> int:
    """Epoch-frames of `runs` runs at the space's default point: what a tuning's progress bar
    expects in all (the searched values do not change a run's epochs or frames, only a sampled T
    with --multi-objective does)."""
    return runs * S.trial_cost(make_trial(dataset, default_point(method), profile, T, method).cfg)


def make_trials(dataset, params, profile, T, method, seeds: int) -> list[S.Trial]:
    """One point's runs: seeds 0..seeds-1, the same for every method (the same budget)."""
    return [make_trial(dataset, params, profile, T, method, seed) for seed in range(seeds)]


def objective(runs: list[list[dict]]) -> float:
    """Mean validation accuracy of a point's runs (one per seed); NaN (Optuna: FAIL) when a run
    did not finish or a seed was not run."""
    values = []
    for rows in runs:
        row = rows[0]
        if row.get("status") != "ok":
            return math.nan
        if row.get("best_val_acc") is None:
            raise UsageError(
                "execute() rows carry no best_val_acc, so there is no validation objective; "
                "the method must set ctx.info['best_val_acc'] (never tune on test accuracy)"
            )
        values.append(float(row["best_val_acc"]))
    return sum(values) / len(values) if values else math.nan


def run_seeds(trials: list[S.Trial], done: dict[str, list[dict]], run) -> list[list[dict]]:
    """The rows of a point's runs in seed order: a finished run's stored rows, else `run(trial)`;
    stops after a run that did not finish (the point is a FAIL whatever the other seeds give)."""
    runs = []
    for trial in trials:
        rows = done.get(trial.run_id) or run(trial)
        runs.append(rows)
        if rows[0].get("status") != "ok":
            break
    return runs


def values_of(runs: list[list[dict]], multi: bool, seeds: int):
    v = objective(runs) if len(runs) == seeds else math.nan
    return [v, float(runs[0][0]["T"])] if multi else v


def study_name(method: str, dataset: str, multi: bool) -> str:
    """``<method>-<dataset>`` (an alias under its target's name: one method, one study)."""
    from hsd.method import target

    return f"{target(method)}-{dataset}" + ("-mo" if multi else "")


def sampler(multi: bool, seed: int = 0):
    """TPE for one objective, NSGA-II for (accuracy, T), both picklable (`harness.samplers`)."""
    from harness import samplers

    return samplers.NSGAII(seed=seed) if multi else samplers.TPE(seed=seed)


def recover_stale(study) -> list[dict]:
    """Trials RUNNING in the db come from a killed driver: mark them failed, return their params."""
    import optuna

    params = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # Flag it so it does not count against --trials: its point is enqueued again.
        optuna.trial.Trial(study, t._trial_id).set_user_attr("stale", True)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        params.append(dict(t.params))
    return params


def finished_count(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    trials = study.get_trials(deepcopy=False, states=states)
    return sum(1 for t in trials if not t.user_attrs.get("stale"))


def open_study(out_dir: Path, method: str, dataset: str, multi: bool):
    """Create or load the study. The sampler's seed is the number of trials already in it, so a
    resumed study is reproducible without re-proposing the points of the first run."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kw = {"directions": ["maximize", "minimize"]} if multi else {"direction": "maximize"}
    study = optuna.create_study(
        storage=f"sqlite:///{out_dir / 'optuna.db'}",
        study_name=study_name(method, dataset, multi),
        load_if_exists=True,
        **kw,
    )
    study.sampler = sampler(multi, seed=len(study.trials))
    return study


def stored_runs(store) -> dict[str, list[dict]]:
    """What the objective reads of every finished run in the store (status, T, best_val_acc), by
    run id, in plain Python types (a Ray trial receives it): a re-proposed point's finished seeds
    are not run again."""
    df = store.rows()
    finished = store.finished_run_ids()
    out: dict[str, list[dict]] = {}
    for rid, g in [] if df.empty else df.groupby("run_id"):
        if rid in finished:
            row = g.iloc[-1]
            val = row.get("best_val_acc")
            out[str(rid)] = [
                {
                    "run_id": str(rid),
                    "status": str(row["status"]),
                    "T": int(row["T"]),
                    "best_val_acc": None if val is None or val != val else float(val),
                }
            ]
    return out


def trials_csv(study) -> str:
    """A study's trials as CSV, one line per trial in order: number, state, objective value(s)
    and every searched parameter (empty where a trial did not get that far). What readers of a
    committed study open instead of its SQLite file; no timestamps, so an unchanged study
    exports the same text."""
    import csv
    import io

    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    n_values = max((len(t.values) for t in trials if t.values), default=1)
    values = ["value"] if n_values == 1 else [f"value_{i}" for i in range(n_values)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "state", *values, *names])
    for t in trials:
        vals = list(t.values) if t.values else [""] * n_values
        w.writerow([t.number, t.state.name, *vals, *(t.params.get(k, "") for k in names)])
    return buf.getvalue()
