"""Run a sweep of the paper (or tune any method) and write tables and plots.

    python -m harness.run --sweep latency                      # default: simulated data, smoke, Ray
    python -m harness.run --sweep latency --executor local --profile smoke \\
        --datasets n-digits --methods hsd,sts --T 1,2 --seeds 1 --out runs/demo
    python -m harness.run --sweep all --profile paper --datasets cifar10-dvs --root /data --gpus-per-trial 0.5
    python -m harness.run --sweep latency --dry-run --json     # every planned run's resolved config
    python -m harness.run --tune --methods tet --trials 12 --datasets n-digits  # Optuna, any method
    python -m harness.run --sweep ablation --use-best runs/tune/best_params.json

Sweeps (`harness.common.sweeps.SWEEPS`): latency (Figure 2, Table 1), ablation (Table 2), quantization
(Table 3), ht (Table 4), kd (Table 6), params (Table 5, no training), all (every one, one store:
a run that serves several tables trains once).

Everything is checked before anything is written or trained: every config resolves, the device
exists, the data is present, the output folder is writable and holds this sweep (or nothing), no
other driver is running on it, and a Ray cluster answers and can place a trial. Bad input exits
with code 2 and a message on stderr, and leaves the store untouched.

Resuming: rerunning the same command in the same --out skips finished runs (by run id) and resumes
unfinished ones from their per-epoch checkpoints; a killed driver loses at most the epochs in flight.
The same command with more --seeds extends the folder: only the new seeds train.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from harness.cli import (
    UsageError,
    abs_path,
    check_creatable,
    exec_options,
    pick_executor,
    prepare_data,
    run_main,
)
from harness.common import sweeps as S
from harness.run_cli import build_parser, load_best, normalise


def plan(args) -> list[S.Trial]:
    """Expand and resolve every training run asked for (raises SweepError on any bad config)."""
    names = [n for n in S.sweep_names(args.sweep) if S.SWEEPS[n].trains]
    if not names:
        S.check_datasets(args.datasets or S.DEFAULT_DATASETS)
        return []
    trials = S.expand(
        names,
        datasets=args.datasets,
        methods=args.methods,
        T=args.T,
        seeds=args.seeds,
        profile=args.profile,
        best=load_best(args.use_best),
    )
    return S.resolve_all(trials)


def manifest(args) -> dict:
    """What makes an --out folder this sweep: resuming with other grid arguments is refused."""
    return {
        "sweep": args.sweep,
        "args": {
            "datasets": list(args.datasets or S.DEFAULT_DATASETS),
            "methods": list(args.methods or S.DEFAULT_METHODS)
            if "latency" in S.sweep_names(args.sweep)
            else None,
            "T": args.T,
            "seeds": args.seeds if args.seeds is not None else S.DEFAULT_SEEDS[args.profile],
            "profile": args.profile,
            "use_best": str(Path(args.use_best).resolve()) if args.use_best else None,
        },
    }


def out_dir(args) -> Path:
    return Path(args.out or f"runs/{args.sweep}").resolve()


# -- running -------------------------------------------------------------------------------------
def ray_address_text(address: str | None) -> str:
    """Where a Ray sweep ran, for the provenance: "local ray", the --address, or "RAY_ADDRESS=..."."""
    from harness.executors import ray_exec

    named = ray_exec.chosen_address(address)[1]
    return "local ray" if named == "local" else address or named


def run_report(out: Path) -> None:
    """Run `python -m harness.report OUT` and pass on where the tables and plots are."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness.report", str(out)], capture_output=True, text=True
    )
    if proc.returncode == 0:
        print(proc.stdout.strip() or f"report written under {out}")
    else:
        print(
            f"report for {out} failed (exit {proc.returncode}); rows are safe in the store. "
            f"Rerun: python -m harness.report {out}\n{proc.stderr.strip()[-2000:]}",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    return run_main(lambda: _main(argv), debug=debug)


def _main(argv: list[str]) -> int:
    from harness.common.shared_cells import record_planned_cells, widened
    from harness.common.stale import set_aside, stale_error, stale_runs
    from harness.common.store import ResultStore
    from hsd.device import pick_device

    start = time.time()
    args = build_parser(__doc__).parse_args(argv)
    normalise(args)
    if args.tune:
        from harness import tune

        return tune.main_from_args(args, argv)
    trials = plan(args)  # every config resolved before anything runs
    out = out_dir(args)
    store = ResultStore(out)  # read once (and validated) for the whole command
    store.check_manifest(manifest(args))
    finished = store.finished_run_ids()
    stale = stale_runs(trials, records := store.records())  # one read for both checks
    if stale and not (args.dry_run or args.set_aside_stale):
        raise UsageError(stale_error(out, stale))
    if args.dry_run:
        from harness.dry_run import measured_rate, print_dry_run

        if stale:
            print(f"warning: {stale_error(out, stale)}", file=sys.stderr)
        if more := widened(trials, records, finished):
            print(
                f"note: {len(more)} finished run(s) would be recorded under cells of this sweep "
                f"that their rows do not name (not retrained): {', '.join(sorted(more))}",
                file=sys.stderr,
            )
        print_dry_run(trials, args, out, finished, measured_rate(store.rows()))
        return 0
    pick_device(args.device)  # a device that does not exist stops here, before any row
    check_creatable(out)  # an --out under a file or in a read-only folder, before the data work
    todo = [t for t in trials if t.run_id not in finished]
    executor = pick_executor(args.executor) if todo else "local"
    if executor == "ray":
        from harness.executors import ray_exec

        ray_exec.announce(args.address)  # where the trials run, RAY_ADDRESS included
        ray_exec.check_address(args.address)  # fail fast, before any folder is touched
    try:
        if store.manifest_path.exists():  # resuming: a second driver on it stops here at once
            store.claim(manifest(args), lock=True)
        prepare_data(todo, abs_path(args.root), abs_path(args.cache_dir))
        if not store.holds_lock:  # a new folder is made only once everything checked out
            store.claim(manifest(args), lock=True)
        if stale:
            print(set_aside(out, set(stale)), file=sys.stderr)
        if widened := record_planned_cells(store, trials, records):
            print(widened, file=sys.stderr)
        return _run_locked(args, argv, start, trials, store, executor)
    finally:
        store.close()


def _run_locked(args, argv, start, trials, store, executor) -> int:
    """The part of a sweep that writes: under the folder's lock, every run not yet finished."""
    from harness.common.store import ResultStore
    from harness.provenance import stop_reason, typed_command, write_provenance

    out = store.out_dir
    finished = store.finished_run_ids()  # re-read under the lock
    todo = [t for t in trials if t.run_id not in finished]
    summary: dict = {}
    if "params" in S.sweep_names(args.sweep):
        new = [
            r
            for r in S.params_rows(args.datasets or S.DEFAULT_DATASETS)
            if r["run_id"] not in finished
        ]
        for r in new:
            store.append([r])
        summary["params"] = f"{len(new)} new rows"
    print(
        f"{args.sweep}: {len(trials)} runs, {len(trials) - len(todo)} already finished, "
        f"{len(todo)} to run -> {out}",
        file=sys.stderr,
    )
    command = typed_command("harness.run", argv)
    opts = exec_options(args, out, command)
    try:
        if todo and executor == "ray":
            from harness.executors import ray_exec

            try:
                summary["runs"] = ray_exec.run(
                    todo,
                    store,
                    opts,
                    address=args.address,
                    cpus_per_trial=args.cpus_per_trial,
                    gpus_per_trial=args.gpus_per_trial,
                )
            finally:
                ray_exec.shutdown()
        elif todo:
            from harness.executors import local

            summary["runs"] = local.run(todo, store, opts)
    except BaseException as err:  # Ctrl+C, SIGTERM, a failure: the block still records this part
        # read back from the file: a stop between a run's write and the store's bookkeeping
        # leaves that run on disk, finished, and it counts
        new = len(ResultStore(out).finished_run_ids() - finished)
        summary["runs"] = f"{stop_reason(err)} after {new} of the {len(todo)} runs to do finished"
        raise
    finally:
        end = time.time()
        from hsd.execute import git_commit

        write_provenance(
            out,
            opts.command,
            {
                "sweep": args.sweep,
                "executor": executor,
                "address": ray_address_text(args.address) if executor == "ray" else "-",
                "git_commit": git_commit(),
                "runs": len(trials),
                "result": {k: dict(v) if hasattr(v, "items") else v for k, v in summary.items()}
                or "nothing to run",
            },
            start=start,
            end=end,
        )
    if not args.no_report:
        run_report(out)
    print(f"results: {out} ({end - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
