"""The results store: round trips, crash tolerance, corruption detection, concurrency, manifests."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from harness.common.row_schema import row_problem, rows_problem
from harness.common.store import (
    RESULTS_FILE,
    TORN_FILE,
    ResultStore,
    StoreError,
    TornTailWarning,
    _encode_chunk,
)
from harness.provenance import stop_reason, typed_command, write_provenance

MANIFEST = {"sweep": "latency", "args": {"datasets": ["n-digits"], "T": [1, 2], "seeds": [0, 1]}}


def run_rows(run_id: str, T: int = 2, status: str = "ok", seed: int = 0) -> list[dict]:
    if status != "ok":
        return [{"run_id": run_id, "T": T, "t": T, "acc": float("nan"), "status": status}]
    return [
        {"run_id": run_id, "T": T, "t": t, "acc": 0.5 + 0.1 * t, "seed": seed, "status": "ok"}
        for t in range(1, T + 1)
    ]


def test_round_trip_and_finished(tmp_path):
    store = ResultStore.open(tmp_path / "out", MANIFEST)
    store.append(run_rows("a"))
    store.append(run_rows("b", status="failed"))
    store.append(run_rows("c", status="infeasible"))
    df = store.rows()
    assert list(df["run_id"]) == ["a", "a", "b", "c"]
    assert list(df["_chunk"]) == [0, 0, 1, 2]
    assert df["acc"].iloc[:2].tolist() == pytest.approx([0.6, 0.7])
    assert math.isnan(df["acc"].iloc[2])  # NaN stored as null, read back as NaN
    assert store.finished_run_ids() == {"a", "b", "c"}
    # stored lines are strict JSON (no NaN literal) and one row per line
    lines = (tmp_path / "out" / RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)
    assert "NaN" not in "".join(lines)


def test_numpy_values_are_stored_as_numbers(tmp_path):
    store = ResultStore.open(tmp_path, MANIFEST)
    store.append([{"run_id": "a", "acc": np.float32(0.25), "params": np.int64(7), "status": "ok"}])
    row = store.rows().iloc[0]
    assert row["acc"] == 0.25 and row["params"] == 7


OK_ROW = {"run_id": "a", "T": 2, "t": 1, "seed": 0, "acc": 0.5, "status": "ok", "dataset": "d"}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"run_id": None}, "run_id None is not a non-empty string"),
        ({"run_id": ""}, "run_id '' is not a non-empty string"),
        ({"run_id": 7}, "run_id 7 is not a non-empty string"),
        ({"status": "running"}, "status 'running' is not one of diverged, failed, infeasible, ok"),
        ({"status": None}, "status None is not one of"),
        ({"t": 0}, "t 0 is not an integer >= 1"),
        ({"T": 1.5}, "T 1.5 is not an integer >= 1"),
        ({"t": True}, "t True is not an integer >= 1"),
        ({"t": 3}, "t 3 is larger than T 2"),
        ({"seed": "0"}, "seed '0' is not an integer"),
        ({"acc": "high"}, "acc 'high' is not a fraction in [0, 1]"),
        ({"acc": 85.0}, "acc 85.0 is not a fraction in [0, 1]"),
        ({"acc": -0.1}, "acc -0.1 is not a fraction in [0, 1]"),
        ({"acc": None}, "acc is missing or null in an ok row"),
        ({"dataset": 3}, "dataset 3 is not a string"),
        ({"variant": ["a"]}, "variant ['a'] is not a string"),
        ({"sweep": None}, "sweep None is not a string"),
        ({"neuron": 1}, "neuron 1 is not a string"),
        ({"params": "many"}, "params 'many' is not a number"),
        ({"_chunk_rows": "2"}, "store field _chunk_rows '2' is not an integer >= 1"),
    ],
)
def test_row_problem_names_what_is_wrong(change, reason):
    assert row_problem(OK_ROW) is None
    assert row_problem({**OK_ROW, **change}).startswith(reason)


def test_row_schema_accepts_real_row_kinds():
    assert row_problem({"run_id": "x"}) == "missing status"
    assert row_problem({"foo": 1}) == "missing run_id"
    assert row_problem([1]) == "expected a JSON object, got list"
    # a run that did not finish: no accuracy; a params row: no t, T, seed or acc; extra fields
    assert row_problem({**OK_ROW, "status": "failed", "acc": None, "error": "boom"}) is None
    assert row_problem({"run_id": "p", "status": "ok", "params": 7, "sweep": "params"}) is None
    assert row_problem({**OK_ROW, "anything": {"nested": [1]}, "acc": 1}) is None
    assert row_problem({**OK_ROW, "neuron": None, "L": None, "wall_s": None}) is None  # unset
    assert rows_problem([OK_ROW, {**OK_ROW, "t": 2}]) is None
    # a failed run's NaN accuracy (as in a trial's pending file) is stored as null: valid
    assert rows_problem([{**OK_ROW, "status": "failed", "acc": float("nan")}]) is None
    assert rows_problem([{**OK_ROW, "acc": float("nan")}]).startswith("row 1: acc is missing")
    assert rows_problem([]) == "expected a non-empty list of result rows, got []"
    assert rows_problem([OK_ROW, {"foo": 1}]) == "row 2: missing run_id"


@pytest.mark.parametrize(
    "rows",
    [
        [{"run_id": "a", "status": "running"}],
        [{"run_id": "b"}],
        [{**OK_ROW, "acc": float("nan")}],  # NaN is stored as null: an ok row without accuracy
        [OK_ROW, {**OK_ROW, "t": 2, "acc": 1.5}],
    ],
)
def test_append_refuses_invalid_rows_and_writes_nothing(tmp_path, rows):
    store = ResultStore.open(tmp_path, MANIFEST)
    store.append(run_rows("a"))
    before = (tmp_path / RESULTS_FILE).read_bytes()
    with pytest.raises(StoreError, match="refusing to store row"):
        store.append(rows)
    assert (tmp_path / RESULTS_FILE).read_bytes() == before


def _chunk_line(**fields) -> bytes:
    return _encode_chunk([{**OK_ROW, **fields}])


# Stores a new user can produce by hand; every reader must refuse them with file, line and reason.
BAD_STORES = {
    # garbage first line, then good rows (garbage as the only line would be a torn tail)
    "garbage-first": (b"garbage\n" + _chunk_line(run_id="a"), "line 1 is not a valid JSON"),
    # a valid JSON line with foreign fields, as the last line
    "foreign-fields": (
        _chunk_line(run_id="a") + b'{"foo": 1}\n',
        "line 2 is not a valid result row (missing run_id)",
    ),  # fmt: skip
    # a whole chunk whose accuracy is text: its tables would silently vanish
    "acc-text": (
        _chunk_line(run_id="a") + _chunk_line(run_id="b", acc="high"),
        "line 2 is not a valid result row (acc 'high' is not a fraction in [0, 1])",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STORES))
def test_every_reader_refuses_an_invalid_row(tmp_path, case, capsys):
    from harness.report.build import main as report_main

    data, message = BAD_STORES[case]
    ResultStore.open(tmp_path, MANIFEST)
    path = tmp_path / RESULTS_FILE
    path.write_bytes(data)
    expected = f"{path}: {message}"
    readers = {
        "rows (report, dry-run estimate)": lambda: ResultStore.existing(tmp_path).rows(),
        "finished_run_ids (run, dry-run)": lambda: ResultStore(tmp_path).finished_run_ids(),
        "open (run, tune)": lambda: ResultStore.open(tmp_path, MANIFEST),
        "append": lambda: ResultStore(tmp_path).append(run_rows("c")),
    }
    for name, read in readers.items():
        with pytest.raises(StoreError) as err:
            read()
        assert str(err.value).startswith(expected), name
        assert "remove that line" in str(err.value) or "remove the line" in str(err.value)
    assert report_main([str(tmp_path), "--no-plots"]) == 2
    assert expected in capsys.readouterr().err
    assert path.read_bytes() == data and not (tmp_path / "tables").exists()


def test_torn_last_line_is_ignored_then_set_aside(tmp_path):
    store = ResultStore.open(tmp_path, MANIFEST)
    store.append(run_rows("a"))
    path = tmp_path / RESULTS_FILE
    good = path.read_bytes()
    # a writer killed mid-chunk: one complete line of run b, then half of its second line
    torn = _encode_chunk(run_rows("b", T=3))
    cut = torn.index(b"\n") + 10
    path.write_bytes(good + torn[:cut])
    with pytest.warns(TornTailWarning, match="incomplete final chunk"):
        df = store.rows()
    assert set(df["run_id"]) == {"a"}  # b's complete first line is dropped with its chunk
    with pytest.warns(TornTailWarning):  # a new reader of the folder (one read per store object)
        assert ResultStore(tmp_path).finished_run_ids() == {"a"}
    assert path.read_bytes() == good + torn[:cut]  # reading never modifies
    # the next append moves the torn tail aside instead of burying it mid-file
    with pytest.warns(TornTailWarning, match="moved"):
        store.append(run_rows("c"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.finished_run_ids() == {"a", "c"}
    assert (tmp_path / TORN_FILE).read_bytes() == torn[:cut] + b"\n"


def test_chunk_cut_on_a_line_boundary_is_incomplete(tmp_path):
    ResultStore.open(tmp_path, MANIFEST)
    chunk = _encode_chunk(run_rows("b", T=3))
    first_two = b"".join(chunk.splitlines(keepends=True)[:2])
    (tmp_path / RESULTS_FILE).write_bytes(first_two)
    with pytest.warns(TornTailWarning):
        assert ResultStore(tmp_path).finished_run_ids() == set()


@pytest.mark.parametrize(
    "bad", [b"{not json\n", b"[1, 2]\n", b'{"run_id": "x", "_chunk": "z", "_chunk_rows": 2}\n']
)
def test_middle_corruption_is_an_error_and_nothing_changes(tmp_path, bad):
    store = ResultStore.open(tmp_path, MANIFEST)
    store.append(run_rows("a"))
    path = tmp_path / RESULTS_FILE
    # a bad line followed by a later, complete chunk: the bad line is in the middle
    path.write_bytes(path.read_bytes() + bad)
    path.write_bytes(path.read_bytes() + _encode_chunk(run_rows("c")))
    before = path.read_bytes()
    with pytest.raises(StoreError, match=rf"{RESULTS_FILE}: line 3 "):
        store.rows()
    with pytest.raises(StoreError, match="corrupted"):
        store.append(run_rows("d"))
    with pytest.raises(StoreError, match="corrupted"):
        ResultStore.open(tmp_path, MANIFEST)
    assert path.read_bytes() == before
    assert not (tmp_path / TORN_FILE).exists()


def test_hand_written_rows_without_chunk_markers(tmp_path):
    lines = [json.dumps(r) for r in run_rows("a") + run_rows("b")]
    (tmp_path / RESULTS_FILE).write_text("\n".join(lines) + "\n")
    df = ResultStore.existing(tmp_path).rows()
    assert list(df["_chunk"]) == [0, 0, 1, 1]


def _writer(args):
    out_dir, proc = args
    store = ResultStore(out_dir)
    for i in range(50):
        rows = [
            {"run_id": f"p{proc}-{i}", "t": t, "acc": 0.5, "pad": "x" * 300, "status": "ok"}
            for t in range(1, 4)
        ]
        store.append(rows)


def test_concurrent_appends_never_interleave(tmp_path):
    ResultStore.open(tmp_path, MANIFEST)
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_writer, [(str(tmp_path), p) for p in range(4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = ResultStore(tmp_path).rows()
    assert len(df) == 4 * 50 * 3
    # each chunk is contiguous: three lines of one run in t order
    for _, group in df.groupby("_chunk"):
        assert group["run_id"].nunique() == 1 and list(group["t"]) == [1, 2, 3]
    assert df["run_id"].nunique() == 200


def test_same_manifest_reopens_different_is_refused(tmp_path):
    store = ResultStore.open(tmp_path / "o", MANIFEST)
    store.append(run_rows("a"))
    again = ResultStore.open(tmp_path / "o", json.loads(json.dumps(MANIFEST)))
    assert again.finished_run_ids() == {"a"}
    manifest_bytes = (tmp_path / "o" / "sweep.json").read_bytes()
    results_bytes = (tmp_path / "o" / RESULTS_FILE).read_bytes()
    other = {"sweep": "ablation", "args": MANIFEST["args"]}
    with pytest.raises(StoreError, match="different sweep.*'latency'.*'ablation'.*another --out"):
        ResultStore.open(tmp_path / "o", other)
    grid = {"sweep": "latency", "args": {**MANIFEST["args"], "seeds": [0]}}
    with pytest.raises(StoreError, match=r"seeds: stored \[0, 1\], requested \[0\]"):
        ResultStore.open(tmp_path / "o", grid)
    assert (tmp_path / "o" / "sweep.json").read_bytes() == manifest_bytes
    assert (tmp_path / "o" / RESULTS_FILE).read_bytes() == results_bytes


def test_more_seeds_extend_the_stored_sweep_fewer_or_another_grid_do_not(tmp_path):
    three = {"sweep": "latency", "args": {"datasets": ["n-digits"], "T": None, "seeds": 3}}
    store = ResultStore.open(tmp_path / "o", three)
    store.append(run_rows("a"))
    five = {"sweep": "latency", "args": {**three["args"], "seeds": 5}}
    grown = ResultStore.open(tmp_path / "o", five)
    assert grown.manifest == five and grown.finished_run_ids() == {"a"}  # rows kept, count raised
    before = (tmp_path / "o" / "sweep.json").read_bytes()
    with pytest.raises(StoreError, match="seeds.*stored 5, requested 3"):
        ResultStore.open(tmp_path / "o", three)  # fewer would make the manifest lie about the rows
    seven_other_T = {"sweep": "latency", "args": {**three["args"], "seeds": 7, "T": [1]}}
    with pytest.raises(StoreError, match="different sweep"):
        ResultStore.open(tmp_path / "o", seven_other_T)
    assert (tmp_path / "o" / "sweep.json").read_bytes() == before
    assert not [p.name for p in (tmp_path / "o").iterdir() if p.name.startswith(".")]


def test_results_without_manifest_refused(tmp_path):
    (tmp_path / RESULTS_FILE).write_text("")
    with pytest.raises(StoreError, match="no sweep.json"):
        ResultStore.open(tmp_path, MANIFEST)


def test_existing_requires_folder_and_store(tmp_path):
    with pytest.raises(StoreError, match="no such folder"):
        ResultStore.existing(tmp_path / "missing")
    with pytest.raises(StoreError, match="no results store"):
        ResultStore.existing(tmp_path)


def test_write_provenance_appends_blocks(tmp_path):
    write_provenance(
        tmp_path,
        typed_command("harness.run", ["--out", Path("a b")]),
        {"git": "abc"},
        start=1000.0,
        end=1062.5,
    )
    write_provenance(tmp_path, "python again")
    text = (tmp_path / "COMMAND.txt").read_text()
    assert "command: python -m harness.run --out 'a b'\n" in text
    assert "wall_s: 62.5" in text and "git: abc" in text and text.count("command: ") == 2
    # what a reader needs to reproduce: machine model with its ISA level, GPU, versions ...
    assert "torch CPU kernels at " in text and "gpu: " in text
    for lib in ("torch", "numpy", "spikingjelly", "tonic", "ray", "optuna", "scipy", "pandas"):
        assert f"{lib} " in text.split("versions: ")[1].splitlines()[0], lib
    # ... and no folder of the machine that wrote it
    assert sys.executable not in text and os.getcwd() not in text and "cwd:" not in text


def test_stop_reason_names_how_a_command_ended():
    assert stop_reason(KeyboardInterrupt()) == "interrupted (Ctrl+C)"
    assert stop_reason(SystemExit(143)) == "stopped by SIGTERM (scancel, a time limit or kill)"
    assert stop_reason(SystemExit(2)) == "stopped (exit 2)"
    assert stop_reason(OSError(28, "No space left on device")) == (
        "stopped by OSError: [Errno 28] No space left on device"
    )


def test_kill_9_mid_append_leaves_a_readable_store(tmp_path):
    """A writer killed while appending big chunks: whatever it left reads back (complete chunks
    only) and the next append works; a tear can only ever be at the end."""
    import os
    import signal
    import subprocess
    import sys
    import time

    ResultStore.open(tmp_path, MANIFEST)
    code = (
        "import sys; from harness.common.store import ResultStore\n"
        "s = ResultStore(sys.argv[1])\n"
        "for i in range(10**6):\n"
        "    s.append([{'run_id': f'r{i}', 't': t, 'acc': 0.5, 'pad': 'x' * 20000, 'status': 'ok'}"
        " for t in range(1, 51)])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    path = tmp_path / RESULTS_FILE
    deadline = time.time() + 20
    while (not path.exists() or path.stat().st_size < 3_000_000) and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ResultStore(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornTailWarning)  # a tear is possible, not certain
        done = store.finished_run_ids()
        store.append(run_rows("after"))
    assert done and done == {f"r{i}" for i in range(len(done))}  # complete runs, in order
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.finished_run_ids() == done | {"after"}


# -- file-system errors: a StoreError saying what is wrong and how to fix it, before any training --
def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


needs_permissions = pytest.mark.skipif(
    _as_root(), reason="running as root: chmod cannot make a folder read-only for this process"
)


def test_out_under_a_regular_file(tmp_path):
    (tmp_path / "f").write_text("")
    out = tmp_path / "f" / "sweep"
    with pytest.raises(StoreError, match=rf"{tmp_path / 'f'} is a file, not a folder; choose"):
        ResultStore.open(out, MANIFEST)
    with pytest.raises(StoreError, match="cannot write the provenance file .* is a file, not a"):
        write_provenance(out, "python")
    (tmp_path / "g").write_text("")  # the --out itself is a file
    with pytest.raises(StoreError, match="exists and is not a folder; choose another --out"):
        ResultStore.open(tmp_path / "g", MANIFEST)


def test_out_name_too_long(tmp_path):
    out = tmp_path / ("x" * 300)
    with pytest.raises(StoreError, match="the name is too long .* choose a shorter --out path"):
        ResultStore.open(out, MANIFEST)
    with pytest.raises(StoreError, match="the name is too long"):
        write_provenance(out, "python")


@needs_permissions
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="permission denied; choose a writable --out"):
            ResultStore.open(ro / "sweep", MANIFEST)
        with pytest.raises(StoreError, match="permission denied"):
            ResultStore.open(ro, MANIFEST)
        with pytest.raises(StoreError, match="cannot write the provenance file"):
            write_provenance(ro, ["python"])
    finally:
        ro.chmod(0o755)


@needs_permissions
def test_read_only_finished_store_is_refused_on_open_but_readable(tmp_path):
    store = ResultStore.open(tmp_path, MANIFEST)
    store.append(run_rows("a"))
    (tmp_path / RESULTS_FILE).chmod(0o444)
    try:
        with pytest.raises(StoreError, match=rf"cannot append to {tmp_path / RESULTS_FILE}: perm"):
            ResultStore.open(tmp_path, MANIFEST)
        assert ResultStore.existing(tmp_path).finished_run_ids() == {"a"}  # reports still work
    finally:
        (tmp_path / RESULTS_FILE).chmod(0o644)


def test_fs_error_messages_for_each_errno(tmp_path):
    """The translation itself, for the cases a root test run cannot provoke."""
    import errno

    from harness.common.store import fs_error

    cases = {
        errno.EACCES: "permission denied; choose a writable --out folder, or make it writable",
        errno.EROFS: "the filesystem is read-only; choose a writable --out",
        errno.ENOSPC: "no space left on the device",
        errno.ENAMETOOLONG: "the name is too long",
    }
    for code, text in cases.items():
        err = fs_error(OSError(code, os.strerror(code)), tmp_path / "r", "append to")
        assert str(err).startswith(f"cannot append to {tmp_path / 'r'}: {text}")
