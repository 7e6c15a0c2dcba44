"""Provenance of a sweep folder: `COMMAND.txt`, one appended block per command that wrote there
(the command as a user types it, machine, CPU and its ISA level, GPU, library versions,
start/end, wall time, and whatever the caller adds). No absolute path of the machine that ran it
is written: a reader needs the command, commit, versions and machine model, not its folders."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
from collections.abc import Iterable
from pathlib import Path

from harness.common.store import PROVENANCE_FILE
from harness.common.store_errors import fs_error


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def typed_command(module: str, argv: Iterable[str]) -> str:
    """The command as a user types it: ``python -m <module> <args>``, quoted so it can be pasted
    back into a shell (never the interpreter's absolute path)."""
    return shlex.join(["python", "-m", module, *[str(a) for a in argv]])


def machine_lines() -> list[str]:
    """``machine``, ``gpu`` and ``versions`` lines: what the numbers depend on besides the code."""
    import torch

    from hsd.device import RECORDED_LIBRARIES, cpu_model, gpu_driver, provenance

    fields = provenance(torch.device("cpu"))
    lines = [
        f"machine: {cpu_model()} ({os.cpu_count()} cores; torch CPU kernels at "
        f"{fields['cpu_isa']}), {platform.system()} {platform.machine()}, "
        f"python {platform.python_version()}"
    ]
    if torch.cuda.is_available():
        gpus = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        lines.append(f"gpu: {', '.join(gpus)} (driver {gpu_driver()}, CUDA {torch.version.cuda})")
    else:
        lines.append("gpu: none")
    libs = ", ".join(f"{d} {fields['ver_' + d]}" for d in RECORDED_LIBRARIES)
    lines.append(f"versions: torch {torch.__version__}, {libs}")
    return lines


def write_provenance(
    out_dir: str | os.PathLike,
    command: str,
    extra: dict | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
) -> Path:
    """Append one block to `out_dir/COMMAND.txt`: the command, machine, versions, start/end, wall.

    `command` is the command as typed (`typed_command`). `start`/`end` are `time.time()` values;
    `extra` adds ``key: value`` lines (git commit, executor...). Blocks are appended, so a resumed
    sweep keeps the history of every command that wrote to the folder. A folder that cannot be
    written raises StoreError saying what is wrong and how to fix it.
    """
    out = Path(out_dir)
    lines = [f"command: {command}", *machine_lines()]
    if start is not None:
        lines.append(f"start: {_iso(start)}")
    if end is not None:
        lines.append(f"end: {_iso(end)}")
    if start is not None and end is not None:
        lines.append(f"wall_s: {end - start:.1f}")
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    path = out / PROVENANCE_FILE
    try:
        out.mkdir(parents=True, exist_ok=True)
        block = ("\n" if path.exists() and path.stat().st_size else "") + "\n".join(lines) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, block.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        raise fs_error(err, path, "write the provenance file") from None
    return path


def stop_reason(err: BaseException) -> str:
    """How a command that was writing to a folder ended early, for its provenance block."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl+C)"
    if isinstance(err, SystemExit):
        if err.code == 128 + 15:  # the sweep lock turns SIGTERM into this exit
            return "stopped by SIGTERM (scancel, a time limit or kill)"
        return f"stopped (exit {err.code})"
    return f"stopped by {type(err).__name__}: {err}"
