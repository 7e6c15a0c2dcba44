"""Whether a path the user named can ever be written, answered before any work starts, and the
one way a result file is written (whole or not at all)."""

from __future__ import annotations

import os
from pathlib import Path


def unwritable_reason(path: str | os.PathLike, *, kind: str = "folder") -> str | None:
    """Why `path` can never be written, or None.

    `kind` says what the path names: a ``"folder"`` to create or reuse (an existing file there is
    refused), or a ``"file"`` to create or overwrite (an existing folder there is refused; an
    existing file is fine, it is replaced). Either way the first existing parent must be a
    writable folder, and no name may be over the file system's limit.
    """
    if kind not in ("folder", "file"):
        raise ValueError(f"kind must be 'folder' or 'file', got {kind!r}")
    target = Path(path)
    try:
        exists = target.exists()
    except OSError as err:  # e.g. a name over the file system's limit
        return err.strerror or str(err)
    if exists and kind == "file" and target.is_dir():
        return f"{target} is a folder, not a file"
    if exists and kind == "folder" and not target.is_dir():
        return f"{target} is a file, not a folder"
    # A file is replaced through a temporary file beside it, so its folder must be writable.
    probe = target.parent if kind == "file" else target
    try:
        while not probe.exists():
            probe = probe.parent
    except OSError as err:
        return err.strerror or str(err)
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK):
        return f"{probe} is not writable"
    return None


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and `os.replace`, so a
    reader (or a crash) never sees half a file and an existing file is overwritten whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
