"""The run CLI with the local executor, end to end on fake fast methods (tests/plugins/hsd_test_methods):
rows, resume after kill -9, retries, dry-run, bad-input exit codes."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from harness_helpers import REPO, call_main, counter_lines, read_rows, run_cli

from harness.run import main

BASE = ["--sweep", "latency", "--executor", "local", "--datasets", "n-digits", "--seeds", "1"]


@contextlib.contextmanager
def background_sweep(args, env):
    """`python -m harness.run ARGS` as a child process (output discarded), killed on leaving."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.run", *map(str, args)],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.slow
def test_tiny_sweep_writes_one_row_per_t_and_provenance(data_env, tmp_path):
    out = tmp_path / "out"
    cp = run_cli([*BASE, "--methods", "fake", "--T", "1,2,3", "--seeds", "2", "--out", out])
    assert cp.returncode == 0, cp.stderr
    rows = read_rows(out)
    assert len(rows) == (1 + 2 + 3) * 2
    assert {(r["T"], r["seed"]) for r in rows} == {(T, s) for T in (1, 2, 3) for s in (0, 1)}
    assert {r["sweep"] for r in rows} == {"latency"} and {r["variant"] for r in rows} == {"fake"}
    assert all(r["status"] == "ok" and r["frames"] == 10 for r in rows)
    assert "epoch-frames" in cp.stderr and "trials 6/6" in cp.stderr  # the progress bar
    provenance = (out / "COMMAND.txt").read_text()
    assert provenance.startswith("command: python -m harness.run --sweep ")
    assert sys.executable not in provenance and "cwd:" not in provenance
    # every row records the command as typed, the CPU and its ISA level, and the versions
    assert {r["command"] for r in rows} == {provenance.splitlines()[0].removeprefix("command: ")}
    for field in ("cpu", "cpu_isa", "torch", "ver_numpy", "ver_ray", "ver_optuna", "ver_tonic"):
        assert all(r[field] for r in rows), field
    assert not any((out / "checkpoints").iterdir())  # finished runs' checkpoints are freed
    # Rerunning the same command runs nothing and adds no row.
    again = run_cli([*BASE, "--methods", "fake", "--T", "1,2,3", "--seeds", "2", "--out", out])
    assert again.returncode == 0 and "6 already finished, 0 to run" in again.stderr
    assert len(read_rows(out)) == 12


@pytest.mark.slow
def test_failing_trial_is_retried_then_recorded_while_others_finish(data_env, tmp_path):
    out, counter = tmp_path / "out", tmp_path / "counter.txt"
    cp = run_cli(
        [*BASE, "--methods", "fake-fail,fake", "--T", "2", "--retries", "2", "--out", out],
        env_extra={"HSD_FAKE_COUNTER": str(counter)},
    )
    assert cp.returncode == 0, cp.stderr
    rows = read_rows(out)
    failed = [r for r in rows if r["variant"] == "fake-fail"]
    assert len(failed) == 1 and failed[0]["status"] == "failed" and failed[0]["t"] == 2
    assert failed[0]["acc"] is None and "fake failure" in failed[0]["error"]
    assert failed[0]["attempts"] == 3
    starts = [line for line in counter_lines(counter) if line.startswith("start ")]
    assert starts.count(f"start {failed[0]['run_id']}") == 3  # 1 try + 2 retries
    assert [r["status"] for r in rows if r["variant"] == "fake"] == ["ok", "ok"]


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_without_repeating_finished_runs(data_env, tmp_path):
    out, counter = tmp_path / "out", tmp_path / "counter.txt"
    args = [
        *BASE,
        "--methods",
        "fake",
        "--T",
        "1,2,3,4",
        "--seeds",
        "1",
        "--out",
        out,
        "--no-report",
    ]
    env = {**data_env, "HSD_FAKE_COUNTER": str(counter), "HSD_FAKE_EPOCH_S": "0.4"}
    with background_sweep(args, env) as proc:
        deadline = time.time() + 120
        # Kill once two runs are stored and the third has checkpointed an epoch.
        while time.time() < deadline:
            runs = {r["run_id"] for r in read_rows(out)}
            epochs = [ln for ln in counter_lines(counter) if ln.startswith("epoch ")]
            third = [ln for ln in epochs if ln.split()[1] not in runs]
            if len(runs) >= 2 and third:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    done_before = {r["run_id"] for r in read_rows(out)}
    assert 2 <= len(done_before) < 4
    before = counter_lines(counter)
    cp = run_cli(args, env_extra=env)
    assert cp.returncode == 0, cp.stderr
    rows = read_rows(out)
    assert len(rows) == 1 + 2 + 3 + 4  # exact: nothing lost, nothing twice
    after = counter_lines(counter)[len(before) :]
    restarted = {ln.split()[1] for ln in after if ln.startswith("start ")}
    assert not restarted & done_before  # finished runs were skipped
    assert len(restarted) == 4 - len(done_before)
    # The run in flight resumed after its last checkpointed epoch instead of starting over.
    inflight = [ln.split()[1] for ln in before if ln.startswith("epoch ")][-1]
    if inflight not in done_before:
        done_epochs = [int(ln.split()[2]) for ln in before if ln.startswith(f"epoch {inflight}")]
        redo = [int(ln.split()[2]) for ln in after if ln.startswith(f"epoch {inflight}")]
        assert redo and min(redo) == max(done_epochs) + 1


@pytest.mark.slow
def test_a_stopped_sweep_still_records_its_block_in_command_txt(data_env, tmp_path):
    """SIGTERM (scancel, a time limit) mid-sweep: COMMAND.txt gains a block saying how it ended
    and how many runs this part finished; the resumed command appends its own."""
    out = tmp_path / "out"
    args = [*BASE, "--methods", "fake", "--T", "1,2,3,4", "--out", out, "--no-report"]
    env = {**data_env, "HSD_FAKE_EPOCH_S": "0.4"}
    with background_sweep(args, env) as proc:
        deadline = time.time() + 120
        while time.time() < deadline and len({r["run_id"] for r in read_rows(out)}) < 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143
    done = len({r["run_id"] for r in read_rows(out)})
    blocks = (out / "COMMAND.txt").read_text().split("\n\n")
    assert len(blocks) == 1 and "wall_s: " in blocks[0]
    stopped = re.search(r"after (\d) of the 4 runs to do finished", blocks[0])
    assert "stopped by SIGTERM" in blocks[0] and stopped and int(stopped[1]) == done < 4
    cp = run_cli(args, env_extra=env)
    assert cp.returncode == 0, cp.stderr
    blocks = (out / "COMMAND.txt").read_text().split("\n\n")
    assert len(blocks) == 2 and f"'ok': {4 - done}" in blocks[1]


def test_dry_run_lists_the_grid_with_cost(data_env, tmp_path):
    cp = run_cli([*BASE, "--methods", "fake", "--T", "1,2", "--dry-run", "--out", tmp_path / "o"])
    assert cp.returncode == 0, cp.stderr
    lines = [ln for ln in cp.stdout.splitlines() if ln.strip().startswith("latency:fake ")]
    assert len(lines) == 2 and all(ln.rstrip().endswith("todo") for ln in lines)
    # cost = epochs x (frames - T_p) = 3 x 9 per run with the fake's defaults
    assert "estimated cost of the runs still to do: 54 epoch-frames" in cp.stdout
    assert not (tmp_path / "o").exists()  # a dry run touches nothing


@pytest.mark.slow
def test_bad_input_exits_2_with_a_message_and_leaves_the_store_intact(data_env, tmp_path):
    out = tmp_path / "out"
    ok = run_cli([*BASE, "--methods", "fake", "--T", "1", "--out", out, "--no-report"])
    assert ok.returncode == 0, ok.stderr
    store = (out / "results.jsonl").read_bytes()
    cases = {
        "unknown sweep": (["--sweep", "nope"], "invalid choice"),
        "unknown method": ([*BASE, "--methods", "nosuch", "--T", "1"], "unknown method 'nosuch'"),
        "unknown dataset": (
            [
                "--sweep",
                "latency",
                "--executor",
                "local",
                "--datasets",
                "mnist",
                "--methods",
                "fake",
                "--T",
                "1",
            ],
            "unknown dataset 'mnist'",
        ),
        "T too large": ([*BASE, "--methods", "fake", "--T", "10"], "exceeds the 10 frames"),
        "other sweep in out": (
            ["--sweep", "kd", "--executor", "local", "--datasets", "n-digits"],
            "different sweep",
        ),
        "same sweep, other grid": ([*BASE, "--methods", "fake", "--T", "2"], "different sweep"),
    }
    for i, (name, (args, msg)) in enumerate(cases.items()):
        # the first through a real process (its exit status), the rest through main in this one
        cp = run_cli([*args, "--out", out]) if i == 0 else call_main(main, [*args, "--out", out])
        assert cp.returncode == 2, (name, cp.stderr)
        assert msg in cp.stderr, (name, cp.stderr)
        assert (out / "results.jsonl").read_bytes() == store, name
