"""Data command line: prepare the frame cache, describe a dataset, benchmark the data path.

    python -m harness.data prepare --dataset n-digits --frames 10 [--size 48] [--root DIR]
    python -m harness.data info --dataset dvs-gesture --root /data
    python -m harness.data bench [--events 100000] [--repeats 20] [--out bench.json]

`prepare` integrates every sample once (progress bar with ETA) and prints the cache folder;
`info` prints samples per class and split, events per sample and the existing caches;
`bench` times our integration against tonic's ToFrame and SpikingJelly's on the same events
(asserting identical frames where their semantics agree) and the frame-cache read throughput.
Bad input (unknown dataset, missing root, ...) is reported on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hsd.data.cache import (
    dataset_splits,
    default_cache_dir,
    find_caches,
    list_samples,
    load_frames,
)
from hsd.data.frames import SPLIT_BY, integrate_frames
from hsd.data.splits import SPLITS

#: README goals: SpikingJelly's bincount speed, and 10x the 17,000 frames/s a DataLoader reading
#: per-sample .npz frames manages on these machines.
CACHE_GOAL_FRAMES_PER_S = 170_000


class UsageError(Exception):
    """Bad command-line input: printed on stderr, exit code 2."""


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
        f"split: {'official test split, ' if official else '9:1 per class, '}val 10% of train "
        "per class"
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


# ---------------------------------------------------------------- bench


def _random_events(n: int, sensor=(128, 128), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    ev = np.empty(n, dtype)
    ev["x"] = rng.integers(0, sensor[0], n)
    ev["y"] = rng.integers(0, sensor[1], n)
    ev["t"] = np.sort(rng.integers(0, 1_000_000, n))
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    return ev


def _time_blocks(fns: dict, repeats: int, rounds: int = 3) -> dict:
    """Min and median seconds per call of each fn.

    Each fn runs in consecutive blocks (as when integrating a dataset sample after sample), and
    the blocks alternate between fns over `rounds` rounds, so load from other processes on a
    shared machine hits every contender alike. Round-robin per call would be unfair: tonic's
    large temporaries leave the allocator cold for whoever runs next. Min is the robust number.
    """
    times = {k: [] for k in fns}
    per_block = max(1, -(-repeats // rounds))
    for _ in range(rounds):
        for k, fn in fns.items():
            fn()  # warm-up of this block
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def bench_integration(n_events: int, n_frames: int, repeats: int) -> list[dict]:
    """Events/s of ours, SpikingJelly's and tonic's number-split integration on one recording."""
    w = h = 128
    ev = _random_events(n_events, (w, h))
    ours = integrate_frames(ev, n_frames, (w, h, 2))
    fns = {"ours": lambda: integrate_frames(ev, n_frames, (w, h, 2))}
    rows = {"ours": {"what": "integrate: ours (bincount per frame)", "identical": True, "note": ""}}
    try:
        from spikingjelly.datasets import integrate_events_by_fixed_frames_number as sj
    except Exception as err:  # noqa: BLE001 - torchvision mismatches fail in many ways
        rows["sj"] = {
            "what": "integrate: spikingjelly",
            "identical": None,
            "note": f"not importable ({type(err).__name__})",
        }
    else:
        as_dict = {k: ev[k] for k in "txyp"}
        same = bool(np.array_equal(ours, sj(as_dict, "number", n_frames, h, w)))
        assert same, "our frames differ from SpikingJelly's on the same events"
        fns["sj"] = lambda: sj(as_dict, "number", n_frames, h, w)
        rows["sj"] = {
            "what": "integrate: spikingjelly",
            "identical": same,
            "note": "float64 output",
        }
    try:
        from tonic.transforms import ToFrame
    except Exception as err:  # noqa: BLE001
        rows["tonic"] = {
            "what": "integrate: tonic ToFrame",
            "identical": None,
            "note": f"not importable ({type(err).__name__})",
        }
    else:
        to_frame = ToFrame(sensor_size=(w, h, 2), n_event_bins=n_frames)
        if n_events % n_frames == 0:
            same = bool(np.array_equal(ours, to_frame(ev)))
            assert same, "our frames differ from tonic's ToFrame on the same events"
            note = ""
        else:
            same, note = None, f"N mod F = {n_events % n_frames}: tonic drops the leftovers"
        fns["tonic"] = lambda: to_frame(ev)
        rows["tonic"] = {"what": "integrate: tonic ToFrame", "identical": same, "note": note}
    timed = _time_blocks(fns, repeats)
    out = []
    for k, r in rows.items():
        best, median = timed.get(k, (None, None))
        r.update(
            seconds=best,
            median_seconds=median,
            unit="events/s",
            rate=n_events / best if best else None,
        )
        out.append(r)
    return out


def bench_cache(samples: int, n_frames: int, size: int, batch: int, repeats: int) -> dict:
    """Frames/s of random batches of `batch` samples x all frames from a float16 memmap."""
    import torch

    with tempfile.TemporaryDirectory(prefix="hsd-bench-") as tmp:
        path = Path(tmp) / "frames.npy"
        mm = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.float16, shape=(samples, n_frames, 2, size, size)
        )
        rng = np.random.default_rng(0)
        for i in range(0, samples, 256):
            mm[i : i + 256] = rng.random(mm[i : i + 256].shape, dtype=np.float32)
        mm.flush()
        del mm
        frames_npy = np.load(path, mmap_mode="r")

        def read():
            idx = np.sort(rng.choice(samples, size=batch, replace=False))
            return torch.from_numpy(frames_npy[idx])  # float16, as the loader stages it

        seconds, median = _time_blocks({"read": read}, repeats)["read"]
    frames = batch * n_frames
    return {
        "what": f"cache read: {batch} x {n_frames} frames, {size}px fp16 memmap",
        "seconds": seconds,
        "median_seconds": median,
        "rate": frames / seconds,
        "unit": "frames/s",
        "identical": None,
        "note": f"goal >= {CACHE_GOAL_FRAMES_PER_S:,} frames/s (page cache warm)",
    }


def cmd_bench(args) -> int:
    if args.events < args.frames:
        raise UsageError(f"--events {args.events} must be >= --frames {args.frames}")
    rows = bench_integration(args.events, args.frames, args.repeats)
    rows.append(bench_cache(args.samples, args.frames, args.size, args.batch, args.repeats))
    print(f"{'benchmark':<48} {'min ms':>8} {'median':>8} {'rate (at min)':>20}  same  note")
    for r in rows:
        ms = f"{r['seconds'] * 1e3:8.3f} {r['median_seconds'] * 1e3:8.3f}" if r["seconds"] else "-"
        rate = f"{r['rate']:,.0f} {r['unit']}" if r["rate"] else "-"
        same = {True: "yes", False: "NO", None: "-"}[r["identical"]]
        print(f"{r['what']:<48} {ms:>17} {rate:>20}  {same:<4}  {r['note']}")
    ours, sj = rows[0]["rate"], next((r["rate"] for r in rows if "spikingjelly" in r["what"]), None)
    goals = {
        "integration_at_least_spikingjelly": bool(sj is None or ours >= sj),
        "cache_read_goal": bool(rows[-1]["rate"] >= CACHE_GOAL_FRAMES_PER_S),
    }
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    if args.out:
        doc = {
            "events": args.events,
            "frames": args.frames,
            "repeats": args.repeats,
            "rows": rows,
            "goals": goals,
        }
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


# ---------------------------------------------------------------- argument parsing


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


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
    q.add_argument("--frames", type=_positive, help="F_total (default: the dataset's)")
    q.add_argument("--size", type=_positive, help="frame size S (default: the dataset's)")
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

    q = sub.add_parser("bench", help="integration and cache-read throughput")
    q.add_argument("--events", type=_positive, default=100_000)
    q.add_argument("--frames", type=_positive, default=10)
    q.add_argument("--repeats", type=_positive, default=20)
    q.add_argument("--samples", type=_positive, default=1000, help="samples in the bench cache")
    q.add_argument("--size", type=_positive, default=48)
    q.add_argument("--batch", type=_positive, default=128)
    q.add_argument("--out", help="also write the results as JSON here")
    q.set_defaults(fn=cmd_bench)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("prepare", "info"):
        if args.name and args.dataset and args.name != args.dataset:
            print(
                f"error: dataset given twice ({args.name!r} and --dataset {args.dataset!r})",
                file=sys.stderr,
            )
            return 2
        args.dataset = args.dataset or args.name
    if args.command == "bench" and args.batch > args.samples:
        print(f"error: --batch {args.batch} exceeds --samples {args.samples}", file=sys.stderr)
        return 2
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
