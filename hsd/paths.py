"""Whether a path the user named can ever be written, answered before any work starts."""

from __future__ import annotations

import os
from pathlib import Path


def unwritable_reason(path: str | os.PathLike) -> str | None:
    """Why `path` (a file or folder to create or reuse) can never be written, or None: a name over
    the file system's limit, a parent that is a file, or a first existing parent that is not
    writable."""
    probe = Path(path)
    try:
        while not probe.exists():
            probe = probe.parent
    except OSError as err:  # e.g. a name over the file system's limit
        return err.strerror or str(err)
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK):
        return f"{probe} is not writable"
    return None
