"""The one error type of the results folder (`StoreError`) and how file-system failures become it
(`fs_error`: what is wrong and how to fix it), shared by the store, its lock and its provenance."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class StoreError(RuntimeError):
    """The results folder cannot be used as asked; the message says what is wrong and what to do."""


def _is_file(path: Path) -> bool:
    try:
        return path.exists() and not path.is_dir()
    except OSError:
        return False


def fs_error(err: OSError, path: str | os.PathLike, action: str) -> StoreError:
    """A StoreError for a failed file-system `action` on `path`: what is wrong and how to fix it."""
    code = err.errno
    if code in (errno.ENOTDIR, errno.EEXIST):
        parent = next((p for p in Path(path).parents if _is_file(p)), None)
        where = f"{parent} is a file, not a folder" if parent else "a part of it is not a folder"
        fix = "choose an --out folder whose parents are all folders"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        where = "permission denied" if code != errno.EROFS else "the filesystem is read-only"
        fix = (
            "choose a writable --out folder, or make it writable (chmod u+w); a finished store "
            "made read-only on purpose can still be read by `python -m harness.report`"
        )
    elif code == errno.ENAMETOOLONG:
        where = "the name is too long (usually 255 bytes per name, 4096 per path)"
        fix = "choose a shorter --out path"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        where = "no space left on the device (or quota exceeded)"
        fix = "free some space or choose an --out folder on another disk"
    else:
        where = err.strerror or str(err)
        fix = "check the path and choose another --out folder if needed"
    return StoreError(f"cannot {action} {path}: {where}; {fix}")
