"""Run a sweep of the paper (or tune HSD) and write tables and plots.

    python -m harness.run --sweep latency                      # default: simulated data, smoke, Ray
    python -m harness.run --sweep latency --executor local --profile smoke \\
        --datasets n-digits --methods hsd,sts --T 1,2 --seeds 1 --out runs/demo
    python -m harness.run --sweep all --profile paper --datasets cifar10-dvs --root /data --gpus-per-trial 0.5
    python -m harness.run --tune --trials 20 --datasets n-digits      # Optuna: HSD's λ and L
    python -m harness.run --sweep ablation --use-best runs/tune/best_params.json

Sweeps (the results vocabulary of harness.aggregate): latency (Figure 2, Table 1), ablation
(Table 2), quantization (Table 3), ht (Table 4), kd (Table 6), params (Table 5, no training), all.

Resuming: rerunning the same command in the same --out skips finished runs (by run id) and
resumes unfinished ones from their per-epoch checkpoints; a killed driver loses at most the epochs
in flight. Every config is resolved and validated before anything runs; bad input (unknown
sweep/method/dataset, a T the frames cannot give, an unreachable --address, an --out folder that
holds another sweep) exits with code 2 and a message on stderr, and leaves the store untouched.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import sweeps as S
from harness.executors import ExecutorError

# Seconds per epoch-frame of one trial (sum of run wall times / sum of costs), measured with the
# smoke profile: the latency sweep at T = 1, 5 (24 runs, 1236 epoch-frames) summed 485 s of run
# time on the 2-core CPU VM and took 4.6 min end to end with 2 parallel Ray trials (2026-11-28).
# --dry-run uses it until finished runs in the output folder give a better rate. None for paper
# (GPU-dependent).
SECONDS_PER_UNIT = {"smoke": 0.39, "paper": None}


class UsageError(Exception):
    """Bad command-line input: printed on stderr, exit code 2."""


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("what to run")
    g.add_argument(
        "--sweep",
        choices=[*S.SWEEPS, "all"],
        help="which paper experiment to run (required unless --tune)",
    )
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
        help=f"latency sweep only: comma-separated methods (default: {','.join(S.DEFAULT_METHODS)})",
    )
    g.add_argument(
        "--T",
        type=_csv("int"),
        default=None,
        help="comma-separated inference time steps; default: the profile's grid for latency "
        f"(smoke {S.T_GRID['smoke']}), the paper's T for the table sweeps {S.MAIN_T}",
    )
    g.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"number of seeds, run as 0..N-1 (default: {S.DEFAULT_SEEDS})",
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
        help="best_params.json written by --tune: use its kd_lambda and L for HSD runs",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="list the resolved grid with its estimated cost and exit without running",
    )
    t = p.add_argument_group("tuning (Optuna)")
    t.add_argument(
        "--tune",
        action="store_true",
        help="tune HSD's kd_lambda (log-uniform 1e-2..10) and L in {4,8,16,32} per dataset on "
        "validation accuracy; writes <out>/best_params.json and <out>/optuna.db",
    )
    t.add_argument("--trials", type=int, default=8, help="tuning trials per dataset (default 8)")
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
        help="Ray cluster to join, host:port of the head's GCS (e.g. 10.0.0.1:6379). Default: "
        "start a local Ray instance. Multi-node needs --out on a filesystem shared by all nodes",
    )
    e.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="ray: GPUs per trial, fractions allowed (0.25 packs 4 trials per GPU); default 1 "
        "when CUDA is available, else 0",
    )
    e.add_argument(
        "--cpus-per-trial",
        type=float,
        default=1.0,
        help="ray: CPU cores reserved per trial (also its torch threads) (default 1)",
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
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.add_argument("--no-report", action="store_true", help="skip the report at the end")
    return p


# -- planning ------------------------------------------------------------------------------------
def _load_best(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"--use-best {path}: cannot read best params ({err})") from None
    best = data.get("best") if isinstance(data, dict) and "best" in data else data
    if not isinstance(best, dict) or not all(isinstance(v, dict) for v in best.values()):
        raise UsageError(
            f"--use-best {path}: expected {{dataset: {{kd_lambda, L, ...}}}} as written by --tune"
        )
    return best


def plan(args) -> dict[str, list[S.Trial]]:
    """Expand and resolve every training sweep asked for (raises SweepError on any bad config)."""
    names = [s for s in S.SWEEPS if s != "params"] if args.sweep == "all" else [args.sweep]
    best = _load_best(args.use_best)
    out = {}
    if args.sweep in ("params", "all"):
        S.check_datasets(args.datasets or S.DEFAULT_DATASETS)
    for name in names:
        if name == "params":
            continue
        methods = args.methods if name == "latency" else None
        trials = S.expand(
            name,
            datasets=args.datasets,
            methods=methods,
            T=args.T,
            seeds=args.seeds,
            profile=args.profile,
            best=best,
        )
        out[name] = S.resolve_all(trials)
    return out


def manifest(args, sweep: str) -> dict:
    """What makes an --out folder this sweep: resuming with other grid arguments is refused."""
    return {
        "sweep": sweep,
        "args": {
            "datasets": list(args.datasets or S.DEFAULT_DATASETS),
            "methods": list(args.methods or S.DEFAULT_METHODS) if sweep == "latency" else None,
            "T": args.T,
            "seeds": args.seeds if args.seeds is not None else S.DEFAULT_SEEDS[args.profile],
            "profile": args.profile,
            "use_best": str(Path(args.use_best).resolve()) if args.use_best else None,
        },
    }


def out_dirs(args) -> dict[str, Path]:
    base = Path(args.out or f"runs/{args.sweep}").resolve()
    if args.sweep == "all":  # one store per sweep: the same config may serve two tables
        return {s: base / s for s in S.SWEEPS}
    return {args.sweep: base}


def print_dry_run(planned: dict[str, list[S.Trial]], args, dirs: dict[str, Path]) -> None:
    from collections import Counter

    total_units = 0
    for name, trials in planned.items():
        finished = _finished(dirs[name])
        print(f"sweep {name}: {len(trials)} trials -> {dirs[name]}")
        print(
            f"  {'variant':<14} {'dataset':<13} {'T':>3} {'seed':>4} {'frames':>6} {'T_p':>4} "
            f"{'pre_ep':>6} {'ep':>4} {'cost':>6}  run_id            state"
        )
        for t in trials:
            c = t.cfg
            cost = S.trial_cost(c)
            total_units += cost if t.run_id not in finished else 0
            state = "done" if t.run_id in finished else "todo"
            print(
                f"  {t.variant:<14} {c.dataset:<13} {c.T:>3} {c.seed:>4} {c.frames:>6} "
                f"{c.pre_frames or 0:>4} {c.pre_epochs or 0:>6} {c.epochs or 0:>4} {cost:>6}  "
                f"{t.run_id}  {state}"
            )
        per_ds = Counter(t.cfg.dataset for t in trials)
        print(f"  per dataset: {dict(per_ds)}")
    if args.sweep in ("params", "all"):
        print(
            f"sweep params: {len(list(args.datasets or S.DEFAULT_DATASETS)) * 2} rows, no training"
        )
    print(
        f"estimated cost of the runs still to do: {total_units} epoch-frames "
        "(cost = pre_epochs x T_p + epochs x (frames - T_p) per run; x training samples = "
        "single-frame forward+backward passes)."
    )
    rate = _measured_rate(dirs)
    if rate:
        print(
            f"time estimate: ~{total_units * rate / 60:.1f} min sequentially "
            f"(at {rate:.2f} s per epoch-frame, measured from finished runs in these folders)"
        )
    elif SECONDS_PER_UNIT.get(args.profile):
        rate = SECONDS_PER_UNIT[args.profile]
        print(
            f"time estimate: ~{total_units * rate / 60:.1f} min sequentially (at {rate} s per "
            f"epoch-frame, measured for the {args.profile} profile on a shared 2-core CPU VM; "
            "the ray executor runs trials in parallel, one per --cpus-per-trial cores)"
        )
    else:
        print("time estimate: none (no finished runs in these folders to calibrate from)")


def prepare_data(
    planned: dict[str, list[S.Trial]], root: str | None, cache_dir: str | None
) -> None:
    """Build every frame cache the trials need, once, in the driver, before any trial starts.

    Parallel trials then never generate the same simulated set or cache twice, and missing real
    data is reported (exit 2) before anything runs.
    """
    from hsd.data import DatasetError, load_frames

    needed = sorted(
        {(t.cfg.dataset, t.cfg.frames, t.cfg.size) for ts in planned.values() for t in ts}
    )
    for i, (ds, frames, size) in enumerate(needed, 1):
        print(f"data {i}/{len(needed)}: {ds} frames={frames} size={size}", file=sys.stderr)
        try:
            load_frames(ds, frames=frames, size=size, root=root, cache_dir=cache_dir)
        except DatasetError as err:
            raise UsageError(str(err)) from None


def _finished(out_dir: Path) -> set[str]:
    from harness.store import RESULTS_FILE, ResultStore

    if not (out_dir / RESULTS_FILE).exists():
        return set()
    return ResultStore(out_dir).finished_run_ids()


def _measured_rate(dirs: dict[str, Path]) -> float | None:
    """Seconds per epoch-frame from the wall time of finished ok runs already in the stores."""
    from harness.store import RESULTS_FILE, ResultStore
    from hsd.config import RunConfig

    secs = units = 0.0
    fields = set(RunConfig.__dataclass_fields__)
    for d in dirs.values():
        if not (d / RESULTS_FILE).exists():
            continue
        df = ResultStore(d).rows()
        if df.empty or "wall_s" not in df:
            continue
        for _, r in df[df["status"] == "ok"].drop_duplicates("run_id").iterrows():
            try:
                cfg = RunConfig(**{k: r[k] for k in fields if k in r and k != "options"})
                u = S.trial_cost(cfg)
            except (TypeError, ValueError):
                continue
            if u > 0:
                secs, units = secs + float(r["wall_s"]), units + u
    return secs / units if units else None


# -- running -------------------------------------------------------------------------------------
def pick_executor(args) -> str:
    if args.executor:
        if args.executor == "ray" and not _have_ray():
            raise UsageError("--executor ray: Ray is not installed here; use --executor local")
        return args.executor
    return "ray" if _have_ray() else "local"


def _have_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def run_report(out_dir: Path) -> None:
    """Run `python -m harness.report OUT` and pass on where the tables and plots are."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness.report", str(out_dir)],
        capture_output=True,
        text=True,
    )
    if proc.returncode == 0:
        print(proc.stdout.strip() or f"report written under {out_dir}")
    else:
        print(
            f"report for {out_dir} failed (exit {proc.returncode}); rows are safe in the store. "
            f"Rerun: python -m harness.report {out_dir}\n{proc.stderr.strip()[-2000:]}",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    start = time.time()
    from harness.tune import TuneError

    try:
        return _main(args, argv, start)
    except (UsageError, S.SweepError, ExecutorError, TuneError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def _main(args, argv, start) -> int:
    from harness.store import ResultStore, StoreError, write_provenance

    if args.tune:
        from harness import tune

        return tune.main_from_args(args, argv)
    if not args.sweep:
        raise UsageError(
            "--sweep is required (latency|ablation|quantization|ht|kd|params|all), or --tune"
        )
    if args.retries < 0:
        raise UsageError(f"--retries must be >= 0, got {args.retries}")
    if args.use_best and args.sweep == "params":
        raise UsageError("--use-best does not apply to the params sweep (no training)")
    planned = plan(args)  # every config resolved before anything runs
    dirs = out_dirs(args)
    params_datasets = list(args.datasets or S.DEFAULT_DATASETS)
    if args.dry_run:
        print_dry_run(planned, args, dirs)
        return 0
    executor = pick_executor(args) if planned else "local"
    if executor == "ray":
        from harness.executors import ray_exec

        ray_exec.check_address(args.address)  # fail fast, before any folder is touched
    unfinished = {
        n: [t for t in ts if t.run_id not in _finished(dirs[n])] for n, ts in planned.items()
    }
    prepare_data(unfinished, _abs(args.root), _abs(args.cache_dir))
    try:
        stores = {name: ResultStore.open(d, manifest(args, name)) for name, d in dirs.items()}
    except StoreError as err:
        raise UsageError(str(err)) from None

    from harness.executors import ExecOptions

    summary = {}
    if "params" in stores:
        st = stores["params"]
        done = st.finished_run_ids()
        rows = [r for r in S.params_rows(params_datasets) if r["run_id"] not in done]
        for r in rows:
            st.append([r])
        summary["params"] = f"{len(rows)} new rows"
    todo = {
        name: [t for t in trials if t.run_id not in stores[name].finished_run_ids()]
        for name, trials in planned.items()
    }
    for name, trials in planned.items():
        skipped = len(trials) - len(todo[name])
        print(
            f"sweep {name}: {len(trials)} trials, {skipped} already finished, "
            f"{len(todo[name])} to run -> {dirs[name]}",
            file=sys.stderr,
        )

    def exec_options(name: str) -> ExecOptions:
        return ExecOptions(
            out_dir=dirs[name],
            root=_abs(args.root),
            cache_dir=_abs(args.cache_dir),
            device=args.device,
            retries=args.retries,
            keep_checkpoints=args.keep_checkpoints,
            progress=not args.no_progress,
        )

    pending = {name: trials for name, trials in todo.items() if trials}
    if pending and executor == "ray":
        from harness.executors import ray_exec

        for name, trials in pending.items():
            summary[name] = ray_exec.run(
                trials,
                stores[name],
                exec_options(name),
                address=args.address,
                cpus_per_trial=args.cpus_per_trial,
                gpus_per_trial=args.gpus_per_trial,
            )
        ray_exec.shutdown()
    elif pending:
        from harness.executors import local

        for name, trials in pending.items():
            summary[name] = local.run(trials, stores[name], exec_options(name))
    end = time.time()
    from hsd.method import git_commit

    for name, d in dirs.items():
        write_provenance(
            d,
            [sys.executable, "-m", "harness.run", *argv],
            {
                "sweep": name,
                "executor": executor,
                "address": args.address or ("local ray" if executor == "ray" else "-"),
                "git_commit": git_commit(),
                "trials": len(planned.get(name, [])),
                "result": dict(summary[name])
                if isinstance(summary.get(name), dict)
                else summary.get(name, "nothing to run"),
            },
            start=start,
            end=end,
        )
    if not args.no_report:
        for d in dirs.values():
            run_report(d)
    print(f"results: {', '.join(str(d) for d in dirs.values())} ({end - start:.0f} s)")
    return 0


def _abs(p: str | None) -> str | None:
    return str(Path(p).resolve()) if p else None


if __name__ == "__main__":
    sys.exit(main())
