"""One driver per output folder: an exclusive, non-blocking `flock` on ``<out>/driver.lock``.

Two drivers writing one store would run the same trials twice and race on checkpoints, so the
second one must stop at once, saying who holds the folder. An `flock` belongs to an open file, so
the kernel releases it whenever the holder's descriptor closes: on a normal exit, an exception, a
signal, even `kill -9`. A lock can therefore never outlive its process; what can outlive it is the
holder's note in the file (PID, host, start, command). Taking the lock while a note is there means
the previous holder died without cleaning up: the lock is taken over with a `StaleLockWarning`.

The lock file is never deleted (deleting a lock file races with a process about to lock it), only
emptied on release. On a shared filesystem (NFS) Linux maps `flock` onto NFS locks, so drivers on
different nodes exclude each other too.

    with SweepLock(out_dir):   # LockError (a StoreError) when another driver holds out_dir
        ...run the sweep...
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import shlex
import signal
import socket
import sys
import threading
import warnings
from pathlib import Path

from harness.common.store_errors import StoreError, fs_error

LOCK_FILE = "driver.lock"


class LockError(StoreError):
    """Another driver holds the output folder; the message names its PID and host."""


class StaleLockWarning(UserWarning):
    """The lock was left by a driver that is gone (killed); it was taken over."""


def _describe(note: dict) -> str:
    pid, host = note.get("pid", "?"), note.get("host", "?")
    since = f", since {note['started']}" if note.get("started") else ""
    cmd = f", command: {note['command']}" if note.get("command") else ""
    return f"PID {pid} on host {host}{since}{cmd}"


def _read_note(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    try:
        note = json.loads(data) if data.strip() else {}
    except ValueError:
        note = {"pid": "?", "host": "?", "command": f"unreadable note {data[:80]!r}"}
    return note if isinstance(note, dict) else {}


class SweepLock:
    """Exclusive lock of one output folder for the lifetime of a driver (a context manager).

    `acquire()` raises LockError at once (never waits) when another process holds the folder, and
    StoreError when the folder cannot hold a lock file (the message says how to fix it). While held,
    SIGTERM is turned into `SystemExit` (when its handler was the default) so that `finally` blocks
    and `__exit__` run on `kill`; the kernel releases the lock even without them.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir).absolute()
        self.path = self.out_dir / LOCK_FILE
        self._fd: int | None = None
        self._old_sigterm = None

    def __repr__(self) -> str:
        return f"SweepLock({str(self.out_dir)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> SweepLock:
        if self.held:
            return self
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise fs_error(err, self.path, "create the lock file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            note = _read_note(fd)
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise fs_error(err, self.path, "lock") from None
            raise LockError(
                f"{self.out_dir} is in use by another driver ({_describe(note)}). Wait for it to "
                "finish or stop it, or choose another --out folder; two drivers on one folder "
                "would run the same trials twice"
            ) from None
        stale = _read_note(fd)
        if stale:
            warnings.warn(
                f"{self.path}: taking over a lock left by a driver that is gone ({_describe(stale)})",
                StaleLockWarning,
                stacklevel=2,
            )
        note = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": shlex.join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(note) + "\n").encode(), 0)
        self._fd = fd
        self._catch_sigterm()
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        self._restore_sigterm()
        try:
            os.ftruncate(fd, 0)  # no note left: the next driver sees a clean release
        except OSError:
            pass  # the lock itself is released by close() below either way
        os.close(fd)

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # SIGTERM's default action kills the process without running `finally`; as an exception it
    # unwinds like Ctrl+C does, so the driver shuts Ray down and releases its lock cleanly.
    def _catch_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._old_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is None:
            return
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is _exit_on_sigterm
        ):
            signal.signal(signal.SIGTERM, self._old_sigterm)
        self._old_sigterm = None


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
