"""Provenance of a sweep folder: `COMMAND.txt`, one appended block per command that wrote there
(the exact command line, machine, start/end, wall time, and whatever the caller adds)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import socket
from collections.abc import Iterable
from pathlib import Path

from harness.store import PROVENANCE_FILE
from harness.store_errors import fs_error


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def write_provenance(
    out_dir: str | os.PathLike,
    argv: Iterable[str],
    extra: dict | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
) -> Path:
    """Append one block to `out_dir/COMMAND.txt`: the exact command line, machine, start/end, wall.

    `argv` is the full command (e.g. ``[sys.executable, "-m", "harness.run", *sys.argv[1:]]``),
    quoted with `shlex` so it can be pasted back into a shell. `start`/`end` are `time.time()`
    values; `extra` adds ``key: value`` lines (git commit, device, executor...). Blocks are appended,
    so a resumed sweep keeps the history of every command that wrote to the folder. A folder that
    cannot be written raises StoreError saying what is wrong and how to fix it.
    """
    out = Path(out_dir)
    lines = [
        f"command: {shlex.join([str(a) for a in argv])}",
        f"cwd: {os.getcwd()}",
        f"machine: {socket.gethostname()} ({platform.platform()}, python {platform.python_version()}, "
        f"{os.cpu_count()} cpus)",
    ]
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
