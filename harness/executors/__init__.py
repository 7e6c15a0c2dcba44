"""Executors run a list of resolved trials and append each finished trial's rows to the store.

- `local`: in-process, sequential, no Ray import (works on the GPU machine, which has no Ray).
- `ray`: Ray Tune, one Tune trial per run, fractional resources, local instance or a cluster.

Both share `ExecOptions` and the contract: the driver is the only writer of the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class ExecutorError(RuntimeError):
    """The executor cannot start (e.g. unreachable Ray address); the CLI exits with code 2."""


@dataclass(frozen=True)
class ExecOptions:
    out_dir: Path  # absolute
    root: str | None = None
    cache_dir: str | None = None
    device: str = "auto"
    retries: int = 1
    keep_checkpoints: bool = False
    progress: bool = True
