"""Optuna tuning of any registered method, per dataset, every method with the same budget.

    python -m harness.run --tune --methods tet --trials 12 --datasets n-digits [--tune-seeds 2]
    python -m harness.run --tune --multi-objective ...     # maximise accuracy, minimise T (NSGA-II)
    python -m harness.run --sweep latency --use-best runs/tune/best_params.json

Search space: the method's own declaration (`hsd.method.Method.search_space`, typed with
`hsd.params` like its options): the learning rate and weight decay every method shares
(`hsd.params.BASE_SPACE`) plus its own knobs (HSD: λ, τ, L and the pre-training learning rate; the
KD baselines: λ and τ). `distribution` maps each declaration to an Optuna distribution; every point
(sampled, enqueued again after a killed driver, or read back) is split into config fields and
options and parsed by its declarations (`hsd.method.split_point`). With --multi-objective also the
inference T ∈ [1, F_total − 1] (HSD keeps at least one pre-training frame); a method whose one
model serves every T (`any_t`, DTS) has no T to trade and is refused.

The same budget for every method: the same sampler (TPE; NSGA-II for two objectives) and sampler
seed, the same number of trials (--trials) and the same training seeds per trial (--tune-seeds N:
seeds 0..N-1, run one after another). Objective: the **mean** over those seeds of each run's best
**validation** accuracy (`best_val_acc` of the execute rows: the engine's model selection on the
validation split) — never the test accuracy — at the method's T (the table T; DTS trains on all
its frames, its largest T). A trial with a seed that did not finish is a FAIL for Optuna (its
remaining seeds are not run).

The study lives in ``sqlite:///<out>/optuna.db`` (study ``<method>-<dataset>``, an alias under its
target's name) and is written only by this driver process (SQLite under many writers fails with
"database is locked"): with the local executor through an ask/tell loop, with Ray through
`OptunaSearch` (`harness.tune_ray`), whose searcher runs in the driver while a Ray trial trains
its seeds in turn. Each
run's rows go to the results store ``<out>/results.jsonl`` (sweep "tune"), once per seed. Rerunning
continues the study up to --trials finished trials; trials left RUNNING by a killed driver are
marked failed and their parameters enqueued again, so their finished seeds are reused from the
store and the unfinished one resumes from its checkpoints. One --out holds one method's tuning.

Every trial of a dataset's study, in order, also goes to ``<out>/trials-<dataset>.csv`` (number,
state, objective, parameters: `harness.tune_study.trials_csv`). Best parameters go to
``<out>/best_params.json``:
``{"objective": ..., "method": m, "seeds_per_trial": N, "sampler": ..., "best": {dataset: {param:
value, ..., "val_acc", "T", "trial"}}, "pareto": {dataset: [...]}}`` (pareto only with
--multi-objective; "best" is then the highest-accuracy point of the front).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.cli import UsageError, abs_path, pick_executor
from harness.common import sweeps as S
from harness.executors import ExecOptions, Progress
from harness.trial import record, run_trial
from harness.tune_study import (
    default_point,
    distributions,
    expected_cost,
    finished_count,
    frames_of,
    make_trial,
    make_trials,
    open_study,
    recover_stale,
    run_seeds,
    space_of,
    stored_runs,
    trials_csv,
    values_of,
)
from hsd.paths import write_atomic

DEFAULT_TUNE_SEEDS = 2  # --tune-seeds: training seeds per trial, 0..N-1


def objective_text(seeds: int) -> str:
    return f"mean best_val_acc over seeds 0..{seeds - 1} (validation split, never test)"


def tune_local(dataset, n_trials, store, opts: ExecOptions, *, profile, T, multi, method, seeds):
    """Ask/tell loop in this process, a point's seeds one after another; returns the study."""
    study = open_study(opts.out_dir, method, dataset, multi)
    for p in recover_stale(study):
        study.enqueue_trial(p)
    dists = distributions(method, dataset, multi)
    todo = max(0, n_trials - finished_count(study))
    done = stored_runs(store)  # a re-proposed point's finished seeds are not run again
    expected = expected_cost(dataset, profile, T, method, todo * seeds)
    progress = Progress(
        [],
        enabled=opts.progress,
        desc=f"tune {method} {dataset}",
        expected=expected,
        planned=todo * seeds,
    )
    try:
        for _ in range(todo):
            ot = study.ask(dists)

            def run(trial, number=ot.number, params=ot.params):
                progress.add(trial)
                progress.start(trial.run_id, f"{trial.label()} {params}")
                rows = [{**r, "optuna_trial": number} for r in run_trial(trial, opts)]
                record(trial.label(), rows, store, opts, progress)
                done[trial.run_id] = rows
                return rows

            trials = make_trials(dataset, ot.params, profile, T, method, seeds)
            study.tell(ot, values_of(run_seeds(trials, done, run), multi, seeds))
    finally:
        progress.close()
    return study


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


def sampler_text(multi: bool) -> str:
    kind = "NSGA-II (accuracy, T)" if multi else "TPE (accuracy)"
    return f"{kind}, seed = trials already in the study (0 for a new one)"


def space_table() -> str:
    """The README's table of this project's methods and what tuning searches for each (a test
    holds the README to it): ``python -c "from harness.tune import space_table; print(space_table())"``."""
    from hsd.method import METHODS, search_space, target
    from hsd.params import describe_space

    own = [n for n, ep in METHODS.providers().items() if ep.split(".")[0] in ("hsd", "baselines")]
    lines = ["| method | search space (name: values) |", "|---|---|"]
    for name in sorted(own):
        text = describe_space(search_space(name))
        if target(name) != name:
            text = f"= `{target(name)}`'s (alias)"
        lines.append(f"| `{name}` | {text} |")
    return "\n".join(lines)


def check_request(args) -> tuple[str, int]:
    """The method (its registered name) and seeds per trial of a --tune request; UsageError for
    anything that does not apply."""
    from hsd.method import METHODS, target

    if args.sweep or args.use_best:
        raise UsageError("--tune runs no sweep: drop --sweep/--use-best")
    if args.methods and len(args.methods) != 1:
        raise UsageError("--tune tunes one method (default hsd): pass at most one --methods")
    method = args.methods[0] if args.methods else "hsd"
    target(method)  # an unknown method: ConfigError naming the registered ones
    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    seeds = DEFAULT_TUNE_SEEDS if args.tune_seeds is None else args.tune_seeds
    if seeds < 1:
        raise UsageError(f"--tune-seeds must be >= 1, got {seeds}")
    if args.T and len(args.T) != 1:
        raise UsageError("--tune takes at most one --T (the inference T to tune at)")
    if args.multi_objective and args.T:
        raise UsageError("--multi-objective searches T itself; drop --T")
    if args.multi_objective and METHODS[target(method)].any_t:
        raise UsageError(
            f"--multi-objective trades accuracy against T, but {method} trains one model for "
            "every T (its T is always all its frames); tune it without --multi-objective"
        )
    if args.seeds is not None:
        raise UsageError(
            "--tune trains seeds 0..N-1 for every point, N from --tune-seeds; drop --seeds"
        )
    return method, seeds


def print_base(probes: list[S.Trial], trials: int, seeds: int, profile: str) -> None:
    """What every trial trains per dataset (the shared base the study tunes at) and its cost."""
    from harness.dry_run import SECONDS_PER_UNIT

    rate = SECONDS_PER_UNIT.get(profile)
    shown = set()
    for t in probes:
        c = t.cfg
        if c.dataset in shown:
            continue
        shown.add(c.dataset)
        pre = f" (+{c.pre_epochs} pre-training)" if c.pre_epochs else ""
        units = trials * seeds * S.trial_cost(c)
        time = f", about {units * rate / 60:.0f} min of trial time" if rate else ""
        print(
            f"  {c.dataset}: base {c.epochs} epochs{pre}, {c.size} px, width {c.width}, batch "
            f"{c.batch_size}, T = {c.T}; {trials} trials x {seeds} seeds = {units} epoch-frames"
            f"{time}"
        )


def main_from_args(args, argv) -> int:
    """`python -m harness.run --tune ...` (validation, store, tuning per dataset, best params)."""
    import time

    from harness.cli import check_creatable, prepare_data
    from harness.common.store import ResultStore
    from hsd.device import pick_device
    from hsd.method import target
    from hsd.params import describe_searched

    start = time.time()
    method, seeds = check_request(args)
    datasets = list(args.datasets or S.DEFAULT_DATASETS)
    T = args.T[0] if args.T else None
    S.check_datasets(datasets)
    probes = []  # every config resolvable before anything runs
    point = default_point(method)
    for ds in datasets:
        probes += make_trials(ds, point, args.profile, T, method, seeds)
        if args.multi_objective:
            probes.append(
                make_trial(ds, {**point, "T": frames_of(ds) - 1}, args.profile, T, method)
            )
    executor = pick_executor(args.executor)
    if args.dry_run:
        print(
            f"tune {method}{'' if target(method) == method else f' (= {target(method)})'} on "
            f"{', '.join(datasets)}: {args.trials} trials each, "
            f"{seeds} training seeds per trial (0..{seeds - 1}), sampler "
            f"{sampler_text(args.multi_objective)}, executor {executor}; objective "
            f"{objective_text(seeds)}; search space:"
        )
        for name, p in space_of(method).items():
            print(f"  {name}: {describe_searched(p)}")
        print_base(probes, args.trials, seeds, args.profile)
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
            "method": target(method),  # one folder, one method's tuning
            "T": T,
            "profile": args.profile,
            "multi": args.multi_objective,
        },
    }
    if seeds != 1:  # a folder tuned with one seed per trial (before --tune-seeds) resumes with 1
        manifest["args"]["tune_seeds"] = seeds
    store = ResultStore(out)
    stored = store.manifest  # None for a new folder
    if isinstance(stored, dict) and stored.get("sweep") == "tune":
        # the folder's datasets stay listed: another dataset adds its study (`adds_datasets`)
        before = list(stored.get("args", {}).get("datasets") or [])
        manifest["args"]["datasets"] = before + [d for d in datasets if d not in before]
    store.check_manifest(manifest)
    check_creatable(out)
    prepare_data(probes, abs_path(args.root), abs_path(args.cache_dir))  # data present: exit 2
    store.claim(manifest, lock=True)  # a second driver on this folder stops here (exit 2)
    try:
        result = _tune_locked(
            args, argv, store, probes, executor, method, seeds, datasets, T, start
        )
    finally:
        store.close()
    path = out / "best_params.json"
    print(f"best parameters of {result['method']}: {path}")
    for ds, b in result["best"].items():
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in b.items() if k not in S.Tuned.META)  # fmt: skip
        print(f"  {ds}: {shown} T={b['T']} val_acc={b['val_acc']:.4f}")
    print(f"use them with: python -m harness.run --sweep <name> --use-best {path}")
    return 0


def _tune_locked(args, argv, store, probes, executor, method, seeds, datasets, T, start) -> dict:
    """Tuning under the folder's lock: every dataset's study, best_params.json, provenance."""
    import time

    from harness.cli import exec_options
    from harness.provenance import stop_reason, typed_command, write_provenance
    from hsd.method import target

    out = store.out_dir
    command = typed_command("harness.run", argv)
    opts = exec_options(args, out, command)
    result: dict[str, Any] = {
        "objective": objective_text(seeds),
        "method": target(method),
        "seeds_per_trial": seeds,
        "sampler": sampler_text(args.multi_objective),
        "best": {},
        "pareto": {},
    }
    path = out / "best_params.json"
    if path.exists():
        old = json.loads(path.read_text())
        result["best"].update(old.get("best", {}))
        result["pareto"].update(old.get("pareto", {}))
    stopped = None
    try:
        for ds in datasets:
            kw = dict(
                profile=args.profile, T=T, multi=args.multi_objective, method=method, seeds=seeds
            )
            if executor == "ray":
                from harness.tune_ray import tune_ray

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
            ds_T = next(p.cfg.T for p in probes if p.cfg.dataset == ds)  # DTS: all its frames
            write_atomic(out / f"trials-{ds}.csv", trials_csv(study))
            best = best_of_study(study, args.multi_objective, ds_T)
            if best:
                result["best"][ds] = best["best"]
                if "pareto" in best:
                    result["pareto"][ds] = best["pareto"]
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)
    except BaseException as err:  # Ctrl+C, SIGTERM, a failure: the block still records this part
        stopped = stop_reason(err)
        raise
    finally:
        if executor == "ray":
            from harness.executors import ray_exec

            ray_exec.shutdown()
        extra = {"mode": "tune", "executor": executor, "best": json.dumps(result["best"])}
        write_provenance(
            out,
            opts.command,
            {**extra, "result": stopped or "finished"},
            start=start,
            end=time.time(),
        )
    return result
