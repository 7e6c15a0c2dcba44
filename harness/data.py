"""Data command line: prepare the frame cache, describe a dataset, benchmark the data path.

    python -m harness.data prepare --dataset n-digits --frames 10 [--size 48] [--root DIR]
    python -m harness.data info --dataset dvs-gesture --root /data
    python -m harness.data bench [--events 100000] [--repeats 20] [--out bench.json]
    python -m harness.data probe --dataset sim-gestures [--epochs 30] [--seeds 3] [--out FILE]

`prepare` integrates every sample once (progress bar with ETA) and prints the cache folder;
`info` prints samples per class and split, events per sample and the existing caches;
`probe` trains a small method-neutral ANN on the whole stream and on its first tenth
(`harness.probe`): how hard the set is and how much its early events hold;
`bench` is `python -m harness.bench data` (frame integration against tonic's and SpikingJelly's,
frame-cache reads; see `harness.bench.data`), kept under this name too.
Bad input (unknown dataset, missing root, ...) is reported on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path

import numpy as np

from harness.bench import data as bench_data
from harness.cli import UsageError, positive_int
from hsd.data.cache import (
    TEST_FRACTION,
    dataset_splits,
    default_cache_dir,
    find_caches,
    list_samples,
    load_frames,
)
from hsd.data.frames import SPLIT_BY
from hsd.data.splits import SPLITS


def _spec(name: str):
    from hsd.data.datasets import DATASETS

    if not name:
        raise UsageError("missing dataset: pass --dataset NAME (one of " + _names() + ")")
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; valid: {_names()}")
    return DATASETS[name]


def _names() -> str:
    from hsd.data.datasets import DATASETS

    return ", ".join(DATASETS.names())


def _root(args) -> Path | None:
    if args.root is None:
        return None
    root = Path(args.root).expanduser()
    if not root.is_dir() and not (args.command == "prepare" and args.download):
        spec = _spec(args.dataset)
        if not spec.simulated:  # simulated sets are generated under a new root
            spec.locate(root)  # raises DatasetError with the expected layout and data sources
    return root


# ---------------------------------------------------------------- prepare / info


def cmd_prepare(args) -> int:
    spec = _spec(args.dataset)
    root = _root(args)
    if args.download:
        spec.download(root)
    fs = load_frames(
        spec,
        frames=args.frames,
        size=args.size,
        split_by=args.split_by,
        root=root,
        cache_dir=args.cache_dir,
        progress=not args.quiet,
    )
    counts = ", ".join(f"{s} {len(fs.split(s))}" for s in SPLITS)
    print(f"{spec.name}: F={fs.frames} S={fs.size} split_by={fs.split_by} ({counts})")
    print(fs.path)
    return 0


def cmd_info(args) -> int:
    spec = _spec(args.dataset)
    root = _root(args)
    samples, names, labels = list_samples(spec, root)
    splits = dataset_splits(spec, root, names, labels)
    official = spec.official_split(root) is not None
    print(
        f"{spec.name}: {len(samples)} samples, {spec.num_classes} classes, sensor "
        f"{spec.sensor_size[0]}x{spec.sensor_size[1]}, defaults F={spec.default_frames} "
        f"S={spec.default_size}, arch {spec.arch}" + (" (simulated)" if spec.simulated else "")
    )
    print(
        f"split: {'official test split' if official else f'test {TEST_FRACTION:.0%} per class'}, "
        f"val {spec.val_fraction:.0%} of train per class"
    )
    width = max(len(c) for c in spec.classes)
    print(f"{'class':<{width}}  " + "  ".join(f"{s:>6}" for s in SPLITS))
    label_arr = np.asarray(labels)
    per = {s: np.bincount(label_arr[splits[s]], minlength=spec.num_classes) for s in SPLITS}
    for k, c in enumerate(spec.classes):
        print(f"{c:<{width}}  " + "  ".join(f"{per[s][k]:>6}" for s in SPLITS))
    print(f"{'total':<{width}}  " + "  ".join(f"{len(splits[s]):>6}" for s in SPLITS))
    k = len(samples) if args.max_samples <= 0 else min(args.max_samples, len(samples))
    pick = np.linspace(0, len(samples) - 1, k).round().astype(int) if k else []
    counts = [len(spec.read_events(samples[i])) for i in pick]
    if counts:
        print(
            f"events per sample ({k} of {len(samples)} samples): min {min(counts)}, "
            f"median {int(statistics.median(counts))}, max {max(counts)}"
        )
    caches = find_caches(spec, args.cache_dir)
    base = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    print(f"caches under {base / spec.name}: {len(caches) or 'none'}")
    for folder, manifest in caches:
        p = manifest["params"]
        print(
            f"  F={p['frames']} S={p['size']} split_by={p['split_by']} "
            f"v{p['cache_version']}: {folder}"
        )
    return 0


# ---------------------------------------------------------------- probe


def cmd_probe(args) -> int:
    import json

    from harness.probe import run_probe
    from hsd.paths import unwritable_reason, write_atomic

    spec = _spec(args.dataset)
    if args.out and (reason := unwritable_reason(args.out, kind="file")):
        raise UsageError(f"--out {args.out}: {reason}; choose another --out")
    result = run_probe(
        spec.name,
        size=args.size,
        epochs=args.epochs,
        seeds=args.seeds,
        root=_root(args),
        cache_dir=args.cache_dir,
    )
    result["command"] = "python -m harness.data " + shlex.join(args.argv)
    print(f"{spec.name}: probe ANN test accuracy (%), mean [95 % CI] over {args.seeds} seeds")
    for which, r in result["test_acc_pct"].items():
        print(f"  {which:<12} {r['mean']:.1f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}]")
    if args.out:
        write_atomic(Path(args.out), json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


# ---------------------------------------------------------------- bench (old name)


def cmd_bench(args) -> int:
    """`python -m harness.bench data` under its older name; bad input raises BenchError."""
    return bench_data.run(args, "python -m harness.data " + shlex.join(args.argv))


# ---------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.data", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def dataset_args(q):
        q.add_argument("name", nargs="?", help="dataset name (same as --dataset)")
        q.add_argument("--dataset", help="registered dataset name")
        q.add_argument("--root", help="data root (default $HSD_DATA_DIR or ~/.cache/hsd/data)")
        q.add_argument(
            "--cache-dir", help="frame cache (default $HSD_CACHE_DIR or ~/.cache/hsd/frames)"
        )

    q = sub.add_parser("prepare", help="integrate every sample once into the frame cache")
    dataset_args(q)
    q.add_argument("--frames", type=positive_int, help="F_total (default: the dataset's)")
    q.add_argument("--size", type=positive_int, help="frame size S (default: the dataset's)")
    q.add_argument("--split-by", choices=SPLIT_BY, default="number")
    q.add_argument("--download", action="store_true", help="download with tonic first")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(fn=cmd_prepare)

    q = sub.add_parser("info", help="samples per class and split, events per sample, caches")
    dataset_args(q)
    q.add_argument(
        "--max-samples",
        type=int,
        default=200,
        help="read events of this many evenly spaced samples (0 = all)",
    )
    q.set_defaults(fn=cmd_info)

    q = sub.add_parser("probe", help="a method-neutral ANN on the whole stream and its first tenth")
    dataset_args(q)
    q.add_argument("--size", type=positive_int, help="frame size S (default: the smoke profile's)")
    q.add_argument("--epochs", type=positive_int, default=30, help="training epochs (default 30)")
    q.add_argument("--seeds", type=positive_int, default=3, help="seeds per input (default 3)")
    q.add_argument("--out", help="write the result as JSON to this file (overwritten)")
    q.set_defaults(fn=cmd_probe)

    q = sub.add_parser("bench", help="integration and cache-read throughput (= harness.bench data)")
    bench_data.add_arguments(q)
    q.set_defaults(fn=cmd_bench)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by the bench's JSON
    if args.command in ("prepare", "info", "probe"):
        if args.name and args.dataset and args.name != args.dataset:
            print(
                f"error: dataset given twice ({args.name!r} and --dataset {args.dataset!r})",
                file=sys.stderr,
            )
            return 2
        args.dataset = args.dataset or args.name
    try:
        return args.fn(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, FileNotFoundError, NotADirectoryError) as err:
        # DatasetError / CacheError are ValueErrors carrying what is wrong and how to fix it
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
