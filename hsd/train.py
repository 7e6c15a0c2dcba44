"""Single-run CLI: train and evaluate one method on one dataset, write one JSON result.

    python -m hsd.train --method hsd --dataset n-digits --T 2 --out result.json

Every run prints a progress bar per training stage and, at the end, accuracy at every t <= T.
The result file is written whole at the end (a temporary file, then a rename): running the same
command again overwrites it, and an interrupted run leaves the previous one intact.
Exit code 2 (with the reason on stderr) for bad input: nothing is trained then.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from hsd.config import PROFILES, ConfigError, RunConfig
from hsd.paths import unwritable_reason, write_atomic

FIELDS = {  # CLI flag -> (RunConfig field, type)
    "frames": int,
    "pre_frames": int,
    "L": int,
    "kd_lambda": float,
    "tau": float,
    "epochs": int,
    "pre_epochs": int,
    "batch_size": int,
    "lr": float,
    "pre_lr": float,
    "weight_decay": float,
    "adam_decay": str,
    "size": int,
    "width": float,
    "dropout": float,
    "neuron": str,
    "augment": str,
}


def parse_option(text: str) -> tuple[str, str]:
    """`name=value`, the value kept as typed: `resolve` parses it with the option's declared type
    (`hsd.params`), so ht=1, ht=true and ht=True are one value and ht=maybe is refused."""
    if "=" not in text:
        raise ConfigError(f"--option expects name=value, got {text!r}")
    name, raw = text.split("=", 1)
    return name.strip(), raw


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hsd.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--method", required=True, help="a registered method (hsd, sts, dts, tet, ...)")
    p.add_argument(
        "--dataset",
        required=True,
        help="cifar10-dvs, n-caltech101, dvs-gesture, n-digits, sim-gestures",
    )
    p.add_argument(
        "--T", type=int, required=True, help="inference time steps (frames seen at test)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="smoke",
        help="smoke: tiny CPU-sized run; paper: the paper's recipe (GPU)",
    )
    for name, typ in FIELDS.items():
        p.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=typ,
            default=None,
            help="override the method's preset",
        )
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="method-specific option, e.g. --option ht=false --option distill=kd; each method "
        "declares its options' types (a bad name or value lists the valid ones)",
    )
    p.add_argument("--root", help="real dataset root (simulated sets are generated when absent)")
    p.add_argument("--cache-dir", help="frame cache folder (default ~/.cache/hsd/frames)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1, as every harness trial: the same run id then gives the "
        "same numbers whichever entry point runs it)",
    )
    p.add_argument("--checkpoint-dir", help="checkpoint every epoch here; a rerun resumes")
    p.add_argument(
        "--out",
        default="result.json",
        help="the JSON result file (default result.json); an existing file is overwritten "
        "atomically when the run finishes",
    )
    return p


def check_writable(path: Path) -> None:
    """Refuse an --out that cannot be written before anything trains."""
    reason = unwritable_reason(path, kind="file")
    if reason:
        raise ConfigError(f"--out {path}: {reason}; name a .json file in a writable folder")


def main(argv: list[str] | None = None) -> int:
    from hsd.data import DatasetError
    from hsd.device import pick_device
    from hsd.execute import execute
    from hsd.method import resolve
    from hsd.progress import EpochBar

    args = build_parser().parse_args(argv)
    try:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        check_writable(Path(args.out))
        for flag, folder in (("--root", args.root), ("--cache-dir", args.cache_dir)):
            if folder and Path(folder).exists() and not Path(folder).is_dir():
                raise ConfigError(f"{flag} {folder} is a file, not a folder; pass a folder")
        pick_device(args.device)
        cfg = RunConfig(
            method=args.method,
            dataset=args.dataset,
            T=args.T,
            seed=args.seed,
            profile=args.profile,
            bf16=args.bf16,
            options=dict(parse_option(o) for o in args.option),
            **{k: getattr(args, k) for k in FIELDS},
        )
        cfg = resolve(cfg)
        with EpochBar() as bar:
            rows = execute(
                cfg,
                root=args.root,
                cache_dir=args.cache_dir,
                device=args.device,
                checkpoint_dir=args.checkpoint_dir,
                on_epoch=bar.update,
                progress=True,
                threads=args.threads,
            )
    except (ConfigError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    # The command as typed (never the interpreter's path), as every row of a sweep records it.
    command = shlex.join(["python", "-m", "hsd.train", *(sys.argv[1:] if argv is None else argv)])
    rows = [{**r, "command": command} for r in rows]
    result = {"command": command, "config": cfg.to_dict(), "rows": rows}
    write_atomic(out, json.dumps(result, indent=1, default=str))
    print("t   acc     stream  energy/sample")
    for r in rows:
        print(f"{r['t']:<3} {r['acc']:.4f}  {r['stream_fraction']:.2f}    {r['energy_j']:.3e} J")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
