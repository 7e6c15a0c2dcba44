"""One driver per output folder: a second process is refused at once, naming the holder; the lock
goes away with its holder however it ends (normal exit, exception, SIGTERM, SIGINT, kill -9)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from harness.common.lock import LOCK_FILE, LockError, StaleLockWarning, SweepLock
from harness.common.store import ResultStore, StoreError

REPO = Path(__file__).resolve().parents[1]
MANIFEST = {"sweep": "latency", "args": {}}

# A second driver: takes the lock, says so, then waits to be stopped (or ends as told).
HOLDER = """
import signal, sys, time
from harness.common.lock import SweepLock
# Ctrl+C as in a terminal, even when the tests run with SIGINT ignored (a background job), which
# a child inherits and which would make the SIGINT case wait forever
signal.signal(signal.SIGINT, signal.default_int_handler)
with SweepLock(sys.argv[1]):
    print("locked", flush=True)
    if sys.argv[2] == "raise":
        raise RuntimeError("boom")
    if sys.argv[2] == "exit":
        sys.exit(0)
    time.sleep(120)
"""


def _start_holder(out: Path, how: str = "wait") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), how],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line == "locked\n", proc.stderr.read()
    return proc


def _lock_cleanly(out: Path) -> None:
    """Taking the lock works, without a stale-lock warning (the holder cleaned up)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with SweepLock(out) as lock:
            assert lock.held


@pytest.fixture
def holder(tmp_path):
    procs = []

    def start(how="wait"):
        procs.append(_start_holder(tmp_path / "out", how))
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


def test_second_driver_is_refused_at_once_naming_the_first(tmp_path, holder):
    proc = holder()
    t0 = time.monotonic()
    with pytest.raises(LockError) as err:
        SweepLock(tmp_path / "out").acquire()
    assert time.monotonic() - t0 < 1  # never waits
    msg = str(err.value)
    assert f"PID {proc.pid} on host {socket.gethostname()}" in msg
    assert "another --out" in msg and str(tmp_path / "out") in msg
    assert isinstance(err.value, StoreError)  # one except clause covers every store problem
    # the same through the store, which is refused before reading anything
    ResultStore.open(tmp_path / "out", MANIFEST, lock=False)
    with pytest.raises(LockError, match=f"PID {proc.pid}"):
        ResultStore.open(tmp_path / "out", MANIFEST, lock=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_releases_the_lock_cleanly(tmp_path, holder, sig):
    proc = holder()
    proc.send_signal(sig)
    assert proc.wait(30) != 0
    _lock_cleanly(tmp_path / "out")  # released and its note removed: no stale warning
    assert (tmp_path / "out" / LOCK_FILE).read_text() == ""


@pytest.mark.parametrize("how", ["exit", "raise"])
def test_normal_exit_and_exception_release_the_lock(tmp_path, holder, how):
    proc = holder(how)
    assert proc.wait(30) == (0 if how == "exit" else 1)
    _lock_cleanly(tmp_path / "out")


def test_kill_9_leaves_a_stale_lock_that_is_taken_over(tmp_path, holder):
    proc = holder()
    note = json.loads((tmp_path / "out" / LOCK_FILE).read_text())
    assert note["pid"] == proc.pid and note["host"] == socket.gethostname()
    proc.kill()
    proc.wait()
    with pytest.warns(StaleLockWarning, match=f"driver that is gone \\(PID {proc.pid} on host"):
        lock = SweepLock(tmp_path / "out").acquire()
    assert json.loads((tmp_path / "out" / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    _lock_cleanly(tmp_path / "out")


def test_store_holds_the_lock_until_closed(tmp_path):
    with ResultStore.open(tmp_path, MANIFEST, lock=True) as store:
        with pytest.raises(LockError, match=f"PID {os.getpid()}"):
            SweepLock(tmp_path).acquire()
        store.append([{"run_id": "a", "status": "failed"}])
    _lock_cleanly(tmp_path)
    # a store refused after locking (corrupted rows) does not keep the lock
    (tmp_path / "results.jsonl").write_text('{"foo": 1}\n')
    with pytest.raises(StoreError, match="line 1 is not a valid result row"):
        ResultStore.open(tmp_path, MANIFEST, lock=True)
    _lock_cleanly(tmp_path)


def test_sigterm_handler_is_installed_and_restored(tmp_path):
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("the test runner has its own SIGTERM handler, which the lock leaves alone")
    with SweepLock(tmp_path):
        with pytest.raises(SystemExit) as exit_:
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        assert exit_.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_lock_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(
        StoreError, match=r"cannot create the lock file .*f is a file, not a folder"
    ):
        SweepLock(tmp_path / "f" / "out").acquire()
