"""`python -m harness.run`'s command line: its arguments, their canonical form and every check
that needs nothing but the arguments (`normalise`), and the tuned values of ``--use-best``.

`harness.run` parses with it, and so does `harness.slurm`, which checks a sweep's arguments
before it submits the job.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli import UsageError, UsageParser, check_folder_option
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


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """`python -m harness.run`'s arguments (description: its --help text, the module's docstring)."""
    p = UsageParser(
        prog="python -m harness.run",
        description=description,
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
