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

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from harness.cli import (
    UsageError,
    abs_path,
    check_creatable,
    check_folder_option,
    exec_options,
    pick_executor,
    prepare_data,
    run_main,
)
from harness.common import sweeps as S
from hsd.config import ConfigError

SWEEP_CHOICES = (*S.SWEEPS, "all")


def _csv(kind):
    def parse(text: str):
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"empty list for {kind}")
        if kind == "int":
            try:
                return [int(x) for x in items]
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated integers, got {text!r}"
                ) from None
        return items

    return parse


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so one place prints every error."""

    def error(self, message: str):
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m harness.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("what to run")
    g.add_argument("--sweep", choices=SWEEP_CHOICES, help="which paper experiment (or --tune)")
    g.add_argument(
        "--datasets",
        type=_csv("str"),
        default=None,
        help=f"comma-separated datasets (default: {','.join(S.DEFAULT_DATASETS)}, the simulated "
        "stand-ins; real ones: cifar10-dvs, n-caltech101, dvs-gesture with --root)",
    )
    g.add_argument(
        "--methods",
        type=_csv("str"),
        default=None,
        help="latency sweep (or --tune): comma-separated methods "
        f"(default: {','.join(S.DEFAULT_METHODS)})",
    )
    g.add_argument(
        "--T",
        type=_csv("int"),
        default=None,
        help="comma-separated inference time steps for every variant; default: each variant's "
        "T list (latency grid, Table 1's T or the tables' T; harness.common.sweeps.T_LISTS)",
    )
    g.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"number of seeds, run as 0..N-1 (default: {S.DEFAULT_SEEDS['smoke']}); more seeds "
        "than an --out folder holds extend it",
    )
    g.add_argument(
        "--profile",
        choices=S.PROFILES,
        default="smoke",
        help="smoke: tiny CPU-sized runs (minutes); paper: the paper's recipes (GPUs, days)",
    )
    g.add_argument(
        "--use-best",
        metavar="PATH",
        help="best_params.json written by --tune: its values for the runs of the method it names "
        "(a file without a method is HSD's)",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="list the resolved grid with its estimated cost and exit without running",
    )
    g.add_argument(
        "--json",
        action="store_true",
        help="with --dry-run: one JSON line per planned run (run id, cells, resolved config)",
    )
    t = p.add_argument_group("tuning (Optuna)")
    t.add_argument(
        "--tune",
        action="store_true",
        help="tune one method (--methods, default hsd) over its declared search space per "
        "dataset on validation accuracy; writes <out>/best_params.json and <out>/optuna.db",
    )
    t.add_argument(
        "--trials",
        type=int,
        default=8,
        help="tuning trials per dataset (default 8; a fair comparison of methods gives every "
        "method the same number, at least 12)",
    )
    t.add_argument(
        "--tune-seeds",
        type=int,
        default=None,
        metavar="N",
        help="with --tune: training seeds per trial, 0..N-1; the objective is the mean of their "
        "validation accuracies (default 2)",
    )
    t.add_argument(
        "--multi-objective",
        action="store_true",
        help="with --tune: maximise validation accuracy and minimise T with NSGA-II",
    )
    e = p.add_argument_group("where and how")
    e.add_argument(
        "--executor",
        choices=["ray", "local"],
        default=None,
        help="ray: Ray Tune (local instance or --address cluster); local: in-process, one trial "
        "after another, no Ray. Default: ray when Ray is installed, else local",
    )
    e.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join: host:port of the head's GCS (e.g. 10.0.0.1:6379), or auto for "
        "the local cluster `ray start --head` last started. Default: $RAY_ADDRESS when set (as "
        "`ray job submit` sets it), else a private local Ray instance, whatever other clusters "
        "run. Multi-node needs --out on a filesystem shared by all nodes",
    )
    e.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="ray: GPUs per trial, fractions allowed (0.25 packs 4 trials per GPU); default 1 "
        "when the cluster has GPUs, else 0",
    )
    e.add_argument(
        "--cpus-per-trial",
        type=float,
        default=1.0,
        help="ray: CPU cores reserved per trial (default 1)",
    )
    e.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per trial (default 1; recorded in every row: the same config gives "
        "the same numbers with the same thread count whichever executor runs it)",
    )
    e.add_argument(
        "--out",
        default=None,
        help="output folder (default runs/<sweep>, runs/tune for --tune); rerun with the same "
        "folder to resume",
    )
    e.add_argument(
        "--root",
        default=None,
        help="data root with the real datasets; simulated sets are generated there or in "
        "$HSD_DATA_DIR (default ~/.cache/hsd/data)",
    )
    e.add_argument("--cache-dir", default=None, help="frame cache folder (default: data layer's)")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    e.add_argument(
        "--retries",
        type=int,
        default=1,
        help="retries of a failed trial, resuming from its checkpoints (default 1)",
    )
    e.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep <out>/checkpoints/<run_id> of finished runs (deleted by default)",
    )
    e.add_argument(
        "--set-aside-stale",
        action="store_true",
        help="move runs that the plan now trains under another run id to <out>/stale",
    )
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.add_argument("--no-report", action="store_true", help="skip the report at the end")
    e.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


# -- checking and normalising the request -----------------------------------------------------
def _unique(items):
    return list(dict.fromkeys(items)) if items else items


def normalise(args) -> None:
    """Lists in one canonical form (order of T, duplicates) and options that apply to the request;
    every problem here is a UsageError before anything is touched."""
    args.datasets = _unique(args.datasets)
    args.methods = _unique(args.methods)
    args.T = sorted(set(args.T)) if args.T else None
    if args.T and min(args.T) < 1:
        raise UsageError(f"--T values must be >= 1, got {args.T}")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.retries < 0:
        raise UsageError(f"--retries must be >= 0, got {args.retries}")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.cpus_per_trial <= 0:
        raise UsageError(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial}")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise UsageError(f"--gpus-per-trial must be >= 0, got {args.gpus_per_trial}")
    check_folder_option(args.root, "--root")
    check_folder_option(args.cache_dir, "--cache-dir")
    if args.json and not args.dry_run:
        raise UsageError("--json goes with --dry-run (it prints the planned runs)")
    if args.tune:
        return
    if args.tune_seeds is not None:
        raise UsageError("--tune-seeds goes with --tune (a sweep's seeds are --seeds)")
    if not args.sweep:
        raise UsageError(f"--sweep is required ({'|'.join(SWEEP_CHOICES)}), or --tune")
    names = S.sweep_names(args.sweep)
    if args.methods and "latency" not in names:
        raise UsageError(
            f"--methods applies to the latency sweep; {args.sweep!r} fixes its methods"
        )
    trains = [n for n in names if S.SWEEPS[n].trains]
    if not trains:
        ignored = [f for f in ("T", "seeds", "use_best", "methods") if getattr(args, f)]
        if ignored:
            flags = ", ".join("--" + f.replace("_", "-") for f in ignored)
            raise UsageError(f"--sweep {args.sweep} trains nothing, so {flags} would be ignored")
    if args.multi_objective:
        raise UsageError("--multi-objective goes with --tune")


def load_best(path: str | None) -> S.Tuned | None:
    """best_params.json of --tune, every value parsed by the search space of the method it names
    (a file without "method" is HSD's, as --tune wrote before it tuned other methods)."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"--use-best {path}: cannot read best params ({err})") from None
    best = data.get("best") if isinstance(data, dict) and "best" in data else data
    method = data.get("method", "hsd") if isinstance(data, dict) and "best" in data else "hsd"
    if not isinstance(best, dict) or not all(isinstance(v, dict) for v in best.values()):
        raise UsageError(
            f"--use-best {path}: expected {{dataset: {{kd_lambda, tau, L, ...}}}} as written by --tune"
        )
    try:
        tuned = S.Tuned(str(method), best)
        for ds in best:
            tuned.point(ds)  # parsed by the method's declarations: ConfigError names the values
    except ConfigError as err:
        raise UsageError(f"--use-best {path}: {err}") from None
    return tuned


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
    from harness.common.shared_cells import record_planned_cells
    from harness.common.stale import set_aside, stale_error, stale_runs
    from harness.common.store import ResultStore
    from hsd.device import pick_device

    start = time.time()
    args = build_parser().parse_args(argv)
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
