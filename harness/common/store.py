"""The results store of one sweep output folder: append-only JSON lines that survive `kill -9`.

Layout of a sweep folder ``OUT``::

    OUT/sweep.json      the manifest: which sweep this folder holds (name + grid-defining arguments)
    OUT/results.jsonl   one JSON object per line, one line per result row
    OUT/COMMAND.txt     provenance: every command that wrote here, machine, start/end, wall time

Why the file survives crashes: all rows of one run are serialised into one chunk of complete lines
and written with a single ``os.write`` on an ``O_APPEND`` descriptor, then fsync'ed. A process killed
mid-write can therefore only leave a torn *last* line; every line before it was complete when its
own write returned. Writers also hold an exclusive ``flock`` on the file while appending, so chunks
of concurrent processes never interleave, and the next writer moves a torn tail aside (into
``results.jsonl.torn``) before appending, so a torn tail never ends up in the middle.

Each stored line carries two store fields, ``_chunk`` (random id of its chunk) and ``_chunk_rows``
(rows in that chunk), so a chunk cut short by a crash is recognised even when the cut fell exactly
on a line boundary. Lines without them (hand-written stores) are accepted; consecutive such lines with
the same ``run_id`` and ``status`` and rising ``t`` count as one chunk (one attempt of a run).

Reading: a torn or incomplete final chunk is ignored with a `TornTailWarning` (so its run does not
count as finished and will be run again); a bad line anywhere else is a `StoreError` naming the file
and line, and nothing is modified.

Every complete line must also be a valid result row (`row_problem`: run_id, status, t/T, acc...).
No crash can write a complete line that is not, so such a line anywhere, last line included, is a
`StoreError` too: a store is either read whole or refused, never read with rows silently dropped.
`append` checks rows the same way before writing, so a bad row never reaches the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from harness.common.manifest import adds_datasets, adds_seeds, canonical, describe_difference
from harness.common.row_schema import TERMINAL_STATUSES, jsonable, row_problem
from harness.common.store_errors import StoreError, fs_error

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "sweep.json"
PROVENANCE_FILE = "COMMAND.txt"
TORN_FILE = "results.jsonl.torn"


#: column added by `ResultStore.rows()`: ordinal of the chunk (one append = one run attempt)
CHUNK_COLUMN = "_chunk"


class TornTailWarning(UserWarning):
    """The store ends in a torn or incomplete chunk (a writer was killed mid-append); it is ignored."""


# -- serialisation ---------------------------------------------------------------------------------
def _encode_chunk(rows: list[dict]) -> bytes:
    chunk_id = uuid.uuid4().hex[:16]
    lines = []
    for row in rows:
        if not isinstance(row, dict):
            raise TypeError(f"ResultStore.append expects a list of dicts, got {type(row).__name__}")
        clean = {k: jsonable(v) for k, v in row.items() if not k.startswith("_chunk")}
        clean["_chunk"] = chunk_id
        clean["_chunk_rows"] = len(rows)
        lines.append(json.dumps(clean, allow_nan=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def _after(t: Any, prev: Any) -> bool:
    try:
        return t > prev
    except TypeError:
        return True


# -- parsing ---------------------------------------------------------------------------------------
def _parse(path: Path, data: bytes) -> tuple[list[dict], int | None]:
    """Rows of the complete chunks in `data`, and the byte offset where an ignored tail starts.

    Raises StoreError for a bad line that is not part of the final chunk.
    """
    raw_lines = data.split(b"\n")
    ends_clean = data.endswith(b"\n") or not data
    if ends_clean:
        raw_lines = raw_lines[:-1]  # the empty string after the final newline

    # parsed: (line number, byte offset, row or None when invalid)
    parsed: list[tuple[int, int, dict | None]] = []
    problems: dict[int, str] = {}  # line number -> why a JSON object there is no valid row
    offset = 0
    for i, raw in enumerate(raw_lines):
        row = None
        if raw.strip():
            try:
                obj = json.loads(raw)
                row = obj if isinstance(obj, dict) else None
            except (ValueError, UnicodeDecodeError, RecursionError):
                row = None
            parsed.append((i + 1, offset, row))
            if row is not None and (problem := row_problem(row)):
                problems[i + 1] = problem
        offset += len(raw) + 1
    if parsed and not ends_clean:
        # The last line has no newline: whatever it holds, its write did not finish.
        lineno, off, _ = parsed[-1]
        parsed[-1] = (lineno, off, None)
        problems.pop(lineno, None)

    # Group into chunks: explicit `_chunk` ids, or runs of marker-less lines with one run_id.
    chunks: list[list[tuple[int, int, dict | None]]] = []
    prev_key: Any = object()
    prev_t: Any = None
    for entry in parsed:
        row = entry[2]
        if row is None:
            key = ("invalid", entry[0])
        elif "_chunk" in row:
            key = ("chunk", row["_chunk"])
        else:
            key = ("plain", row.get("run_id"), row.get("status"))
        t = row.get("t") if row is not None else None
        # One attempt of a run has one status and rising t; a repeat of t starts a new attempt.
        rising = key[0] != "plain" or prev_t is None or t is None or _after(t, prev_t)
        if key == prev_key and key[0] != "invalid" and rising:
            chunks[-1].append(entry)
        else:
            chunks.append([entry])
        prev_key, prev_t = key, t

    def complete(chunk: list[tuple[int, int, dict | None]]) -> bool:
        first = chunk[0][2]
        if first is None:
            return False
        expected = first.get("_chunk_rows")
        return expected is None or expected == len(chunk)

    # A crash tears only the final chunk: either its last line is cut (an invalid line after the
    # chunk's complete lines) or the chunk simply ends early. Anything incomplete before that is
    # corruption.
    last = len(chunks) - 1
    tail_start = len(chunks)
    if chunks and not complete(chunks[last]):
        tail_start = last
        prev = chunks[last - 1] if last >= 1 else None
        if (
            prev is not None
            and chunks[last][0][2] is None
            and prev[0][2] is not None
            and not complete(prev)
        ):
            tail_start = last - 1
    rows: list[dict] = []
    for n, chunk in enumerate(chunks):
        in_tail = n >= tail_start
        if not in_tail and not complete(chunk):
            lineno = chunk[0][0]
            bad = chunk[0][2] is None
            what = "is not a valid JSON object" if bad else "starts a chunk with missing rows"
            raise StoreError(
                f"{path}: line {lineno} {what}, and it is not the last line, so the store is "
                "corrupted (a crash can only tear the last line). Nothing was changed. Inspect that "
                "line; if the data is unimportant, remove the line by hand or start a new --out folder."
            )
        for lineno, _, row in chunk:
            if lineno in problems:
                # A complete line that is no valid row cannot come from a crash, even at the end.
                raise StoreError(
                    f"{path}: line {lineno} is not a valid result row ({problems[lineno]}), so the "
                    "store is corrupted or was edited by hand. Nothing was changed. Fix or remove "
                    "that line by hand, or start a new --out folder."
                )
            if in_tail:
                continue
            row = dict(row)
            row.pop("_chunk", None)
            row.pop("_chunk_rows", None)
            row[CHUNK_COLUMN] = n
            rows.append(row)
    tail_offset = chunks[tail_start][0][1] if tail_start < len(chunks) else None
    return rows, tail_offset


class ResultStore:
    """Append-only result rows of one sweep folder (see the module docstring for the guarantees).

    `ResultStore(out_dir)` only names the folder; use `ResultStore.open(out_dir, manifest)` to start or
    resume a sweep (creates the folder and checks the manifest) and `ResultStore.existing(out_dir)` to
    read a folder that must already hold results (reports).
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir).absolute()
        self.path = self.out_dir / RESULTS_FILE
        self.manifest_path = self.out_dir / MANIFEST_FILE
        self._lock = (
            None  # a harness.common.lock.SweepLock while claim(..., lock=True) holds the folder
        )
        self._finished: set[str] | None = None  # read once, then kept up to date by `append`

    def __repr__(self) -> str:
        return f"ResultStore({str(self.out_dir)!r})"

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, out_dir: str | os.PathLike, manifest: dict, *, lock: bool = False) -> ResultStore:
        """Create the sweep folder with `manifest`, or check that an existing one holds the same
        sweep (`claim`); with `lock=True` the store holds the folder's lock until `close()`."""
        store = cls(out_dir)
        store.claim(manifest, lock=lock)
        return store

    def check_manifest(self, manifest: dict) -> None:
        """Raise StoreError if the folder cannot be this sweep's: it is a file, or it holds another
        sweep, or rows without a manifest. Writes nothing (dry runs and plans call it first)."""
        if not isinstance(manifest, dict):
            raise TypeError(f"manifest must be a dict, got {type(manifest).__name__}")
        try:
            if self.out_dir.exists() and not self.out_dir.is_dir():
                raise StoreError(
                    f"--out {self.out_dir} exists and is not a folder; choose another --out"
                )
            has_manifest, has_rows = self.manifest_path.exists(), self.path.exists()
        except OSError as err:
            raise fs_error(err, self.out_dir, "read") from None
        if not has_manifest:
            if has_rows:
                raise StoreError(
                    f"{self.out_dir} holds {RESULTS_FILE} but no {MANIFEST_FILE}, so it is unknown "
                    "which sweep produced those rows; choose another --out folder"
                )
            return
        have, wanted = self.manifest, canonical(manifest)
        if have != wanted and not (adds_seeds(have, wanted) or adds_datasets(have, wanted)):
            diff = describe_difference(have, wanted)
            raise StoreError(
                f"{self.out_dir} already holds a different sweep ({diff}). Resuming only works with "
                "the same sweep and grid arguments (more --seeds than stored extend it); choose "
                "another --out folder for this one."
            )

    def claim(self, manifest: dict, *, lock: bool = False) -> None:
        """Make the folder this sweep's, checking before any training everything that could stop
        the sweep later: the manifest (`check_manifest`), that the folder and its files are
        writable (StoreError saying how to fix it), and that every stored row is valid. With
        `lock=True` the store also takes the folder's `harness.common.lock.SweepLock` (LockError, a
        StoreError, when another driver has it) until `close()` or the end of a ``with`` block.
        """
        self.check_manifest(manifest)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise fs_error(err, self.out_dir, "create the output folder") from None
        self._check_writable()
        if not self.manifest_path.exists():
            self._create_manifest(canonical(manifest))
        self.check_manifest(manifest)  # another process may have created it first
        if lock:
            from harness.common.lock import SweepLock

            self._lock = SweepLock(self.out_dir).acquire()
        if self.manifest != canonical(manifest):  # more seeds or tuned datasets: it holds them all
            self._replace_manifest(canonical(manifest))
        try:
            self._finished = None
            self.finished_run_ids()  # fail fast on a corrupted store (and read it once)
        except BaseException:
            self.close()
            raise

    @property
    def holds_lock(self) -> bool:
        return self._lock is not None

    def close(self) -> None:
        """Release the folder's lock, if this store holds it (`open(..., lock=True)`)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_writable(self) -> None:
        """StoreError now, rather than an OSError after the first trial, if a write would fail."""
        probe = self.out_dir / f".write-test.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.unlink(probe)
        except OSError as err:
            raise fs_error(err, self.out_dir, "write into the output folder") from None
        for path in (self.path, self.out_dir / PROVENANCE_FILE):
            if path.exists():
                try:  # opening for append writes nothing but fails like a real append would
                    os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
                except OSError as err:
                    raise fs_error(err, path, "append to") from None

    @classmethod
    def existing(cls, out_dir: str | os.PathLike) -> ResultStore:
        """A store that must already exist (for reports); StoreError says what is missing."""
        store = cls(out_dir)
        try:
            found = store.out_dir.is_dir(), store.path.exists()
        except OSError as err:
            raise fs_error(err, store.out_dir, "read") from None
        if not found[0]:
            raise StoreError(f"no such folder: {store.out_dir} (pass the --out folder of a sweep)")
        if not found[1]:
            raise StoreError(
                f"{store.out_dir} holds no results store ({RESULTS_FILE} is missing); pass the --out "
                "folder of a sweep that has finished at least one run"
            )
        return store

    def _create_manifest(self, manifest: Any) -> None:
        # Hard-link a private temp file into place: link() fails if another process created the
        # manifest first, so two concurrent openers cannot overwrite each other.
        self._put_manifest(manifest, os.link, "create")

    def _replace_manifest(self, manifest: Any) -> None:
        # Rename over the old one, so a reader sees the old manifest or the new one, never half.
        self._put_manifest(manifest, os.replace, "update")

    def _put_manifest(self, manifest: Any, place, action: str) -> None:
        """Write `manifest` to a private temp file, then `place(tmp, sweep.json)` it."""
        tmp = self.out_dir / f".{MANIFEST_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            try:
                place(tmp, self.manifest_path)
            except FileExistsError:
                pass  # link(): someone else won; the caller compares against theirs
            finally:
                tmp.unlink(missing_ok=True)  # replace() has moved it already
        except OSError as err:
            raise fs_error(err, self.manifest_path, action) from None

    @property
    def manifest(self) -> dict | None:
        """The folder's sweep manifest (`sweep.json`), or None when there is none."""
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except ValueError as e:
            raise StoreError(
                f"{self.manifest_path} is not valid JSON ({e}); fix or remove it"
            ) from e

    # -- writing ---------------------------------------------------------------------------------
    def append(self, rows: list[dict]) -> None:
        """Append the rows of one run as one chunk: one `os.write` on O_APPEND, then fsync.

        Call it once per run with all of that run's rows, so a crash can never leave a partial run
        that looks finished.
        """
        rows = list(rows)
        if not rows:
            return
        data = _encode_chunk(rows)
        for i, line in enumerate(data.splitlines()):  # checked as it will read back
            problem = row_problem(json.loads(line))
            if problem:
                raise StoreError(
                    f"refusing to store row {i + 1} of run {rows[0].get('run_id')!r}: {problem}"
                )
        if not self.out_dir.is_dir():
            raise StoreError(
                f"{self.out_dir} does not exist; create the store with ResultStore.open"
            )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise fs_error(err, self.path, "append to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one writer at a time; released on close or death
            self._set_aside_torn_tail(fd)
            written = os.write(fd, data)
            while written < len(data):  # only for enormous chunks or interrupted writes
                written += os.write(fd, data[written:])
            os.fsync(fd)
        except OSError as err:  # e.g. disk full: a partial chunk is a torn tail, set aside later
            raise fs_error(err, self.path, "append to") from None
        finally:
            os.close(fd)  # also releases the lock
        if self._finished is not None:
            self._finished |= _finished_ids(rows)

    def _set_aside_torn_tail(self, fd: int) -> None:
        """Under the writer lock: move an incomplete final chunk to `results.jsonl.torn`.

        Without this the next chunk would be appended behind the torn bytes and the torn line would
        sit in the middle of the file, where it is indistinguishable from real corruption.
        """
        size = os.fstat(fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            data = f.read()
        _, tail = _parse(self.path, data)
        if tail is None:
            return
        with open(self.out_dir / TORN_FILE, "ab") as f:
            f.write(data[tail:] if data.endswith(b"\n") else data[tail:] + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.ftruncate(fd, tail)
        warnings.warn(
            f"{self.path}: moved an incomplete final chunk ({size - tail} bytes, left by a writer that "
            f"was killed) to {TORN_FILE}; its run will be run again",
            TornTailWarning,
            stacklevel=3,
        )

    # -- reading ---------------------------------------------------------------------------------
    def _read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)  # a consistent snapshot, not a chunk in flight
            try:
                data = f.read()
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        rows, tail = _parse(self.path, data)
        if tail is not None:
            warnings.warn(
                f"{self.path}: ignoring an incomplete final chunk ({len(data) - tail} bytes after "
                f"byte {tail}), left by a writer that was killed; that run is not counted as finished",
                TornTailWarning,
                stacklevel=3,
            )
        return rows

    def records(self) -> list[dict]:
        """All complete rows as stored (dicts), in file order."""
        return self._read()

    def rows(self) -> pd.DataFrame:
        """All complete rows, in file order, plus the `_chunk` column (ordinal of the append)."""
        return pd.DataFrame.from_records(self._read())

    def finished_run_ids(self) -> set[str]:
        """Run ids with a terminal status (ok, failed, diverged, infeasible) in a complete chunk.

        The file is read once per store object; this process's appends keep the set current
        (the folder's lock makes this process its only writer)."""
        if self._finished is None:
            self._finished = _finished_ids(self._read())
        return set(self._finished)


def _finished_ids(rows: Iterable[dict]) -> set[str]:
    return {
        str(r["run_id"])
        for r in rows
        if r.get("status") in TERMINAL_STATUSES and r.get("run_id") is not None
    }
