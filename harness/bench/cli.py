"""Command line of the benchmarks (see the package docstring for what each measures).

    python -m harness.bench train   [--quick] [--out FILE] [--size S --width W --batch N --T T ...]
    python -m harness.bench packing [--quick] [--out FILE] [--trials 1,2,4] [--profiles smoke,paper]
    python -m harness.bench data    [--events 100000] [--frames 10] [--repeats 20] [--out FILE]
    python -m harness.bench kernels [--quick] [--rounds 9] [--steps 3] [--measures qcfs,...]

`train`, `packing` and `kernels` write JSON (``--out``; default ``results/bench/<cpu|gpu>-<command>-<date>.json``)
with the device, versions, exact command and every measured number; `data` writes it to --out.
Bad arguments are reported on stderr with exit code 2. Nothing here imports Ray: the GPU machines
may run this without it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from harness.bench import data as data_bench
from harness.bench.anchors import IMPLS
from harness.bench.config import QUICK, SIZE_PROFILES, BenchError, TrainConfig
from hsd.config import ConfigError
from hsd.device import DEVICE_CHOICES, pick_device, versions
from hsd.paths import unwritable_reason, write_atomic


def _positive(kind):
    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a positive {kind.__name__}, got {s!r}"
            ) from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {s!r}")
        return v

    return parse


def _int_list(s: str) -> list[int]:
    try:
        out = [int(v) for v in s.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return out


_DESCRIPTION = (
    "Benchmarks: training step vs the ANN floor (train), trials per device (packing), "
    "frame integration and cache reads (data), CPU kernels vs the code they replace (kernels)"
)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m harness.bench", description=_DESCRIPTION)
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", help="tiny sizes, ~10 s on CPU (CI)")
    common.add_argument("--out", type=Path, help="JSON output (default results/bench/...)")
    common.add_argument("--device", default="auto", help=DEVICE_CHOICES)
    common.add_argument("--size", type=_positive(int), help="input size (multiple of 16)")
    common.add_argument("--width", type=_positive(float), help="channel width multiplier")
    common.add_argument("--batch", type=_positive(int), help="batch size N")
    common.add_argument("--T", type=_positive(int), help="time steps")
    common.add_argument("--repeats", type=_positive(int), help="measured steps")
    common.add_argument("--warmup", type=int, help="unmeasured steps first")
    common.add_argument(
        "--threads", type=_positive(int), help="torch CPU threads (default: torch's; --quick: 1)"
    )
    common.add_argument(
        "--precision", choices=("bf16", "fp32"), help="default: bf16 on CUDA, fp32 on CPU"
    )
    common.add_argument(
        "--floor-precision", choices=("bf16", "fp32"), help="floor's precision (default: same)"
    )
    common.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="channels_last layout (default: on for CUDA, off for CPU)",
    )
    tr = sub.add_parser("train", parents=[common], help="step time/memory vs the ANN floor")
    tr.add_argument("--impls", default=None, help=f"comma list from {','.join(IMPLS)}")
    tr.add_argument("--epoch-batches", type=int, default=None, help="0 skips the epoch timing")
    tr.add_argument("--dataset", default="n-digits", help="data set of the epoch timing")
    pk = sub.add_parser("packing", parents=[common], help="aggregate throughput, 1/2/4 trials")
    pk.add_argument("--trials", type=_int_list, default=[1, 2, 4])
    pk.add_argument("--profiles", default=None, help="smoke,paper (CPU default: smoke)")
    pk.add_argument("--impl", default="ours-lean", choices=IMPLS)
    pk.add_argument("--seconds", type=_positive(float), default=None, help="run time per trial")
    kn = sub.add_parser("kernels", help="CPU kernels vs the plain code they replace")
    kn.add_argument("--quick", action="store_true", help="2 rounds of 1 step (tests)")
    kn.add_argument("--out", type=Path, help="JSON output (default results/bench/...)")
    kn.add_argument("--rounds", type=_positive(int), default=9, help="alternating rounds")
    kn.add_argument("--steps", type=_positive(int), default=3, help="timed steps per round")
    kn.add_argument("--measures", default=None, help="comma list from qcfs,neuron-train,...")
    kn.add_argument("--threads", type=_positive(int), default=1, help="torch CPU threads (1)")
    dt = sub.add_parser("data", help="frame integration and frame-cache read throughput")
    data_bench.add_arguments(dt)
    sub.add_parser("_worker").add_argument("spec")
    return ap


def _config(args, base: TrainConfig) -> TrainConfig:
    over = {k: getattr(args, k) for k in ("size", "width", "batch", "T", "repeats", "warmup")}
    cfg = replace(base, **{k: v for k, v in over.items() if v is not None})
    cuda = pick_device(args.device).type == "cuda"
    # CPU defaults: fp32 and NCHW, CPU's fast paths (bf16 autocast on a CPU without native bf16
    # is emulated and would measure the emulation, not the network).
    precision = args.precision or ("bf16" if cuda else "fp32")
    channels_last = cuda if args.channels_last is None else args.channels_last
    cfg = replace(
        cfg,
        precision=precision,
        floor_precision=args.floor_precision,
        channels_last=channels_last,
        device=args.device,
    )
    if cfg.size % 16:
        raise BenchError(
            f"--size must be a multiple of 16 (VGG has four 2×2 pools), got {cfg.size}"
        )
    if cfg.warmup < 0:
        raise BenchError(f"--warmup must be >= 0, got {cfg.warmup}")
    return cfg


def default_out(command: str, dev_type: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("results/bench") / f"{'cpu' if dev_type == 'cpu' else 'gpu'}-{command}-{stamp}.json"


def _train(args, threads: int | None) -> dict:
    from harness.bench.train import print_train, run_train

    dev = pick_device(args.device)
    if dev.type == "cpu" and not args.quick and (args.size is None or args.batch is None):
        # full size on 2 CPU cores takes minutes per step; say so rather than hang silently
        print("note: CPU run at the full paper size is slow; pass --size/--width/--batch",
              file=sys.stderr)  # fmt: skip
    cfg = _config(args, TrainConfig(**QUICK) if args.quick else TrainConfig())
    impls = args.impls.split(",") if args.impls else list(IMPLS)
    bad = [i for i in impls if i not in IMPLS]
    if bad:
        raise BenchError(f"unknown implementation(s) {bad}; valid: {', '.join(IMPLS)}")
    if args.epoch_batches is not None and args.epoch_batches < 0:
        raise BenchError("--epoch-batches must be >= 0")
    eb = args.epoch_batches if args.epoch_batches is not None else (0 if args.quick else 20)
    report = run_train(cfg, impls, eb, args.dataset)
    print_train(report)
    return report


def _packing(args, threads: int | None) -> dict:
    from harness.bench.packing import print_packing, run_packing

    dev = pick_device(args.device)
    names = (args.profiles or ("smoke" if dev.type == "cpu" else "smoke,paper")).split(",")
    bad = [p for p in names if p not in SIZE_PROFILES]
    if bad:
        raise BenchError(f"unknown profile(s) {bad}; valid: {', '.join(SIZE_PROFILES)}")
    profiles = {}
    for p in names:
        s, w, b, t = SIZE_PROFILES[p]
        pbase = TrainConfig(size=s, width=w, batch=b, T=t, repeats=1, warmup=2)
        if args.quick:
            pbase = replace(pbase, **{k: v for k, v in QUICK.items() if k != "repeats"})
        profiles[p] = _config(args, pbase)
    seconds = args.seconds or (1.0 if args.quick else 10.0)
    report = run_packing(profiles, args.impl, args.trials, seconds, min_steps=2, threads=threads)
    print_packing(report)
    return report


def _kernels(args, threads: int | None) -> dict:
    from harness.bench.kernels import PAIRS, print_kernels, run_kernels

    measures = args.measures.split(",") if args.measures else list(PAIRS)
    bad = [m for m in measures if m not in PAIRS]
    if bad:
        raise BenchError(f"unknown measure(s) {bad}; valid: {', '.join(PAIRS)}")
    rounds, steps = (2, 1) if args.quick else (args.rounds, args.steps)
    report = run_kernels(rounds, steps, measures)
    print_kernels(report)
    return report


def _provenance(argv: list[str]) -> dict:
    """What a result file records besides its numbers: command, host, date, thread count and the
    versions of everything the speed depends on (the lean IF neuron's backend included)."""
    from hsd.execute import git_commit
    from hsd.kernels import triton_available

    return {
        "command": "python -m harness.bench " + shlex.join(argv),
        "host": platform.node(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_threads": torch.get_num_threads(),
        "versions": versions()
        | {
            "lean_if_triton": str(triton_available()),
            "HSD_IF_SCAN_BACKEND": os.environ.get("HSD_IF_SCAN_BACKEND", "auto"),
            "HSD_CPU_SCAN": os.environ.get("HSD_CPU_SCAN", "1"),
            "git_commit": git_commit(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.command == "_worker":
        from harness.bench.packing import worker

        worker(json.loads(args.spec))
        return 0
    try:
        if args.out:  # checked before the benchmark runs, not after
            reason = unwritable_reason(args.out, kind="file")
            if reason:
                raise BenchError(f"--out {args.out}: {reason}; name a .json file")
        if args.command == "data":
            return data_bench.run(args, "python -m harness.bench " + shlex.join(argv))
        threads = args.threads or (1 if args.quick else None)
        if threads:  # a 2-core CI box under load spends most of a tiny step in OpenMP barriers
            torch.set_num_threads(threads)
        run = {"train": _train, "packing": _packing, "kernels": _kernels}[args.command]
        report = run(args, threads)
    except (BenchError, ConfigError) as e:  # ConfigError: a --device this machine cannot give
        print(f"harness.bench: error: {e}", file=sys.stderr)
        return 2
    report |= _provenance(argv)
    out = args.out or default_out(args.command, report["device_type"])
    write_atomic(out, json.dumps(report, indent=2) + "\n")  # a rerun overwrites it whole
    print(f"wrote {out}")
    return 0
