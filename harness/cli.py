"""What the harness command lines share: the one usage-error type, caught in one place.

`python -m harness.run` (sweeps and tuning) and `python -m harness.slurm` run their body through
`run_main`: a `UsageError` (or any of the library's own "bad input" errors, `usage_errors`) prints
one paragraph on stderr and exits with code 2, never a traceback; ``--debug`` shows the traceback
as well. `harness.data` (which raises the same `UsageError`) and `harness.report` catch their
errors in their own `main`, with the same result (exit 2, one message): they also turn the data
and store layers' errors (ValueErrors carrying the fix) into messages.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path


class UsageError(Exception):
    """Bad command-line input or environment: printed on stderr, exit code 2."""


class UsageParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so `run_main` prints every error."""

    def error(self, message: str):
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def usage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the request cannot run as given" (exit 2), wherever raised."""
    from harness.common.store import StoreError
    from harness.common.sweeps import SweepError
    from harness.executors import ExecutorError
    from harness.trial import EnvironmentFailure
    from hsd.config import ConfigError
    from hsd.data import DatasetError

    return (
        UsageError,
        SweepError,
        ExecutorError,
        StoreError,
        ConfigError,
        DatasetError,
        EnvironmentFailure,
    )


def run_main(body: Callable[[], int], *, debug: bool = False) -> int:
    """Run a CLI body: usage errors exit 2 with their message, Ctrl+C exits 130."""
    try:
        return body()
    except usage_errors() as err:
        if debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def abs_path(p: str | None) -> str | None:
    return str(Path(p).resolve()) if p else None


def check_creatable(path: Path) -> None:
    """StoreError now if the --out folder `path` can never be created or written
    (`hsd.paths.unwritable_reason`)."""
    from harness.common.store_errors import StoreError
    from hsd.paths import unwritable_reason

    reason = unwritable_reason(path)
    if reason:
        raise StoreError(
            f"cannot use --out {path}: {reason}; choose an --out folder whose parents are all "
            "writable folders"
        )


def check_folder_option(path: str | None, flag: str) -> None:
    """UsageError now for a --root or --cache-dir that names a file, or can never be created."""
    if not path:
        return
    from hsd.paths import unwritable_reason

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a folder; pass a folder")
    reason = unwritable_reason(p)
    if reason:
        raise UsageError(f"cannot use {flag} {path}: {reason}; pass another folder")


def have_ray() -> bool:
    return importlib.util.find_spec("ray") is not None


def pick_executor(requested: str | None) -> str:
    """ "ray" or "local": the requested one, or Ray when it is installed."""
    if requested:
        if requested == "ray" and not have_ray():
            raise UsageError("--executor ray: Ray is not installed here; use --executor local")
        return requested
    return "ray" if have_ray() else "local"


def prepare_data(trials: list, root: str | None, cache_dir: str | None) -> None:
    """Build every frame cache the trials need, once, in the driver, before any trial starts.

    Parallel trials then never generate the same simulated set or cache twice, and missing real
    data is reported (exit 2) before anything runs.
    """
    from hsd.data import load_frames

    needed = sorted({(t.cfg.dataset, t.cfg.frames, t.cfg.size) for t in trials})
    for i, (ds, frames, size) in enumerate(needed, 1):
        print(f"data {i}/{len(needed)}: {ds} frames={frames} size={size}", file=sys.stderr)
        try:
            load_frames(ds, frames=frames, size=size, root=root, cache_dir=cache_dir)
        except OSError as err:  # a folder that cannot be read or written: say which
            raise UsageError(
                f"cannot prepare the frames of {ds} (data root {root or 'default'}, cache "
                f"{cache_dir or 'default'}): {err}; check --root, --cache-dir and the disk"
            ) from None


def exec_options(args, out: Path, command: str | None = None):
    """How trials run, from the run CLI's arguments (`command`: as typed, recorded in each row)."""
    from harness.executors import ExecOptions

    return ExecOptions(
        out_dir=out,
        root=abs_path(args.root),
        cache_dir=abs_path(args.cache_dir),
        device=args.device,
        retries=args.retries,
        keep_checkpoints=args.keep_checkpoints,
        progress=not args.no_progress,
        threads=args.threads,
        command=command,
    )
