"""`python -m harness.slurm`: the script it writes, its refusals, and that script run by a real
SLURM (munged, slurmctld and slurmd on loopback, started by the `slurm` fixture): the sweep's rows
arrive once each with two Ray nodes started the script's way, and `scancel` and the time limit
leave no Ray process behind, the resubmitted script finishing the sweep without repeating runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness_helpers import REPO, counter_lines, read_rows
from slurm_cluster import LoopbackSlurm, missing_reason

from harness import slurm as S

FAKE = ["--sweep", "latency", "--datasets", "n-digits", "--methods", "fake", "--cpus-per-trial", "1",
        "--no-report"]  # fmt: skip


def _slurm_cli(*argv, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.slurm", *map(str, argv)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- the script and the refusals (no SLURM needed) ---------------------------------------------------
def test_dry_run_prints_a_complete_script_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "runs" / "lat"
    argv = ["--nodes", "2", "--cpus-per-node", "4", "--gpus-per-node", "1", "--time", "1-02:00:00",
            "--partition", "gpu", "--sbatch=--account=lab", "--dry-run", "--",
            "--sweep", "latency", "--datasets", "n-digits", "--methods", "sts", "--out", str(out),
            "--T", "1,2"]  # fmt: skip
    assert S.main(argv) == 0
    script = capsys.readouterr().out
    for line in [
        "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=4",
        "#SBATCH --gres=gpu:1", "#SBATCH --partition=gpu", "#SBATCH --time=1-02:00:00",
        "#SBATCH --signal=B:TERM@60", f"#SBATCH --output={out}/slurm/job-%j.out",
        "#SBATCH --account=lab", f"#SBATCH --chdir={Path.cwd()}", f"PYTHON={sys.executable}",
        "NODES_CPUS=4", "NODES_GPUS=1", "RAY_AUTH=token",
        f"RUN_ARGS=(--sweep latency --datasets n-digits --methods sts --out {out} --T 1,2)",
        "trap cleanup EXIT",
    ]:  # fmt: skip
        assert line in script.splitlines(), line
    assert script.startswith("#!/bin/bash\n") and "srun --overlap" in script
    assert '"$PYTHON" -m harness.run --executor ray --address "$address"' in script
    check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # valid bash
    assert not (tmp_path / "runs").exists()
    assert S.main(["--time", "1:00:00", "--no-ray-auth", "--dry-run", "--", "--sweep", "params",
                   "--out", str(out)]) == 0  # fmt: skip
    script = capsys.readouterr().out.splitlines()
    assert "RAY_AUTH=disabled" in script and "#SBATCH --exclusive" in script


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--time", "1:00:00"], "give the sweep's arguments after --"),
        (["--time", "1:00:00", "--"], "give the sweep's arguments after --"),
        (["--time", "90:00", "--", "--sweep", "params"], "--time '90:00': expected a positive"),
        (["--time", "0:00:00", "--", "--sweep", "params"], "expected a positive [D-]HH:MM:SS"),
        (["--time", "1:61:00", "--", "--sweep", "params"], "expected a positive [D-]HH:MM:SS"),
        (["--nodes", "0", "--time", "1:00:00", "--", "--sweep", "params"], "--nodes: expected a"),
        (["--time", "1:00:00", "--gpus-per-node", "-1", "--", "--sweep", "params"], ">= 0"),
        (["--time", "1:00:00", "--", "--sweep", "params", "--address", "h:1"], "--address after"),
        (["--time", "1:00:00", "--", "--sweep", "params", "--executor=local"], "--executor after"),
        (["--time", "1:00:00", "--", "--sweep", "nope"], "the sweep's arguments after --: "),
        (["--time", "1:00:00", "--", "--sweep", "latency", "--T", "0"], "--T values must be"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(argv, message, tmp_path, capsys):
    if "--sweep" in argv:
        argv = [*argv, "--out", str(tmp_path / "o")]
    assert S.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_without_sbatch_it_says_where_to_run_and_keeps_the_script(tmp_path):
    cp = _slurm_cli("--time", "0:10:00", "--", "--sweep", "params", "--out", tmp_path / "o",
                    env={"PATH": os.path.dirname(sys.executable)})  # fmt: skip
    assert cp.returncode == 2 and "sbatch not found: run this on a SLURM login node" in cp.stderr
    assert (tmp_path / "o" / "slurm" / "job.sbatch").exists()


# -- on a real SLURM ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slurm():
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    cluster = LoopbackSlurm(cpus=2).start()
    yield cluster
    cluster.stop()


def _submit(slurm, data_env, out, run_args, *own, env=None) -> str:
    cp = _slurm_cli("--nodes", "1", "--cpus-per-node", "2", *own, "--", *run_args, "--out", out,
                    env={**slurm.env, **data_env, **(env or {})})  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert f"script: {out}/slurm/job.sbatch" in cp.stdout
    return cp.stdout.split()[2]  # "submitted job <id>"


def _ray_left(job: str) -> list[str]:
    """Command lines of the processes that still use the job's Ray folder."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"/tmp/hsd-ray-{job}" in cmd:
            left.append(f"{pid}: {cmd[:200]}")
    return left


def _assert_no_ray_left(job: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _ray_left(job) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ray_left(job)


def _log(out: Path, job: str) -> str:
    return (out / "slurm" / f"job-{job}.out").read_text()


def _runs(rows) -> dict[str, list[int]]:
    by_run: dict[str, list[int]] = {}
    for r in rows:
        by_run.setdefault(r["run_id"], []).append(r["t"])
    return by_run


@pytest.mark.slow
def test_sweep_on_slurm_with_two_ray_nodes(slurm, data_env, tmp_path):
    out = tmp_path / "out"
    # The script's node list names this machine twice: a head and a worker node, two job steps.
    job = _submit(slurm, data_env, out, [*FAKE, "--T", "1,2,3", "--seeds", "1"],
                  "--time", "00:05:00", env={"HSD_SLURM_NODES": "localhost localhost"})  # fmt: skip
    slurm.wait(job, timeout=240)
    log = _log(out, job)
    assert "all 2 Ray nodes joined" in log and "sweep exited with 0" in log, log[-3000:]
    assert "shared storage: all 2 Ray nodes see --out" in log
    rows = read_rows(out)
    assert sorted((r["T"], r["t"]) for r in rows) == [
        (1, 1),
        (2, 1),
        (2, 2),
        (3, 1),
        (3, 2),
        (3, 3),
    ]
    assert all(r["status"] == "ok" and r["restarts"] == 0 for r in rows)
    _assert_no_ray_left(job)


@pytest.mark.slow
def test_scancel_mid_sweep_leaves_no_ray_behind(slurm, data_env, tmp_path):
    out = tmp_path / "out"
    job = _submit(slurm, data_env, out, [*FAKE, "--T", "1,2,3,4", "--seeds", "1"],
                  "--time", "00:05:00", env={"HSD_FAKE_EPOCH_S": "2"})  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out.glob("checkpoints/*/fake.json")):  # mid-trial
        assert slurm.state(job) and time.monotonic() < deadline
        time.sleep(0.3)
    assert _ray_left(job)
    slurm.run("scancel", job)
    slurm.wait(job, timeout=60)
    _assert_no_ray_left(job)


@pytest.mark.slow
def test_time_limit_leaves_no_ray_and_resubmitting_finishes_without_repeats(
    slurm, data_env, tmp_path
):
    out, counter = tmp_path / "out", tmp_path / "counter"
    # 36 runs of 3 epochs x 3 s on two 1-CPU slots: 162 s of work, more than the 2-minute limit.
    # Two minutes, not one: SLURM may signal up to a minute before the limit, and on a busy
    # machine a one-minute job can be told to stop before its Ray has started any run.
    grid = [*FAKE, "--T", "1,2,3,4,5,6,7,8,9", "--seeds", "4"]
    env = {"HSD_FAKE_EPOCH_S": "3", "HSD_FAKE_COUNTER": str(counter)}
    job = _submit(slurm, data_env, out, grid, "--time", "00:02:00", "--stop-before", "1", env=env)
    slurm.wait(job, timeout=240)
    _assert_no_ray_left(job)
    assert "stopping" in _log(out, job)
    first = _runs(read_rows(out))
    assert 0 < len(first) < 36, "the time limit should stop the sweep part-way"
    # the stopped sweep's provenance block says how far it got
    block = f"result: {{'runs': {{'ok': {len(first)}, 'unfinished': {36 - len(first)}}}}}"
    assert block in (out / "COMMAND.txt").read_text()
    # Resubmit the script beside the results, with more time and fast epochs.
    again = slurm.sbatch(out / "slurm" / "job.sbatch", env={**data_env, **env,
                         "HSD_FAKE_EPOCH_S": "0.02", "SBATCH_TIMELIMIT": "00:05:00"})  # fmt: skip
    slurm.wait(again, timeout=240)
    assert "sweep exited with 0" in _log(out, again)
    runs = _runs(read_rows(out))
    assert len(runs) == 36 and all(sorted(t) == list(range(1, len(t) + 1)) for t in runs.values())
    assert all(r["status"] == "ok" for r in read_rows(out))
    lines = counter_lines(counter)
    for run_id in first:  # a finished run never started again
        assert lines.count(f"start {run_id}") == 1
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == len(set(epochs))  # no epoch trained twice: unfinished runs resumed
    _assert_no_ray_left(again)
