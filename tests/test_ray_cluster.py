"""A multi-node Ray cluster on this machine: a node that cannot see --out stops the sweep before
any training (exit 2, the node named, no row), and a worker node lost mid-trial is survived, with
the restarted trial resuming from its checkpoint and the restart recorded in its rows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from harness_helpers import REPO, read_rows, run_cli
from ray_nodes import NO_AUTH, RayNodes

SWEEP = ["--sweep", "latency", "--executor", "ray", "--datasets", "n-digits", "--methods", "fake",
         "--seeds", "1", "--cpus-per-trial", "1", "--no-report"]  # fmt: skip


@pytest.mark.slow
def test_a_node_that_cannot_see_out_stops_the_sweep_before_any_training(data_env, tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("hiding a folder from one node needs root and unshare (util-linux)")
    out, counter = tmp_path / "out", tmp_path / "counter"
    out.mkdir()
    # The worker node runs in a mount namespace of its own where --out is an empty tmpfs: a node
    # of a cluster that lacks the shared mount.
    hide = ("unshare", "--mount", "--propagation", "private",
            "sh", "-c", f'mount -t tmpfs tmpfs "{out}" && exec "$@"', "sh")  # fmt: skip
    nodes = RayNodes(env={"HSD_FAKE_COUNTER": str(counter)})
    try:
        nodes.head(cpus=1)
        nodes.worker(cpus=1, prefix=hide)
        nodes.wait_nodes(2)
        cp = run_cli(
            [*SWEEP, "--T", "1,2", "--address", nodes.address, "--out", out],
            env_extra={**NO_AUTH, "HSD_FAKE_COUNTER": str(counter)},
        )
    finally:
        nodes.stop()
    assert cp.returncode == 2, cp.stderr
    assert f"does not see --out {out} as the driver does" in cp.stderr
    assert "mount it there" in cp.stderr and "Traceback" not in cp.stderr
    # the node is named: its host, address and Ray node id
    assert "error: node " in cp.stderr and ", Ray node " in cp.stderr
    assert not (out / "results.jsonl").exists() and not counter.exists()  # nothing trained
    assert not (out / ".node-check").exists()


@pytest.mark.slow
def test_a_lost_worker_node_is_survived_and_its_restart_recorded(data_env, tmp_path):
    from harness.common.store import ResultStore
    from harness.report.tables import build_tables

    out, counter = tmp_path / "out", tmp_path / "counter"
    env = {"HSD_FAKE_EPOCH_S": "3", "HSD_FAKE_COUNTER": str(counter)}
    nodes = RayNodes(env=env)
    try:
        nodes.head(cpus=0)  # trials run on the two 1-CPU worker nodes, one each
        doomed = nodes.worker(cpus=1)
        nodes.wait_nodes(2)  # one at a time: two nodes starting at once on one machine clash
        nodes.worker(cpus=1)
        nodes.wait_nodes(3)
        driver = subprocess.Popen(
            [sys.executable, "-m", "harness.run", *SWEEP, "--T", "1,2",
             "--address", nodes.address, "--out", str(out)],
            cwd=REPO, env={**os.environ, **NO_AUTH, **env}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.time() + 180
        # Both trials have an epoch checkpoint: the one on the lost node can resume from it.
        while len(list(out.glob("checkpoints/*/fake.json"))) < 2:
            assert driver.poll() is None and time.time() < deadline, driver.communicate()
            time.sleep(0.2)
        nodes.kill_node(doomed)
        stdout, stderr = driver.communicate(timeout=240)
    finally:
        nodes.stop()
    assert driver.returncode == 0, stderr[-3000:]
    rows = read_rows(out)
    assert sorted((r["T"], r["t"]) for r in rows) == [(1, 1), (2, 1), (2, 2)]  # each once
    assert all(r["status"] == "ok" for r in rows)
    by_run = {r["run_id"]: r for r in rows}
    restarted = [r for r in by_run.values() if r["restarts"]]
    assert len(restarted) == 1, by_run
    lost = restarted[0]
    assert lost["restarts"] == 1 and lost["attempts"] == 2
    first, second = lost["ray_starts"]
    assert first["node"] != second["node"] == lost["ray_node"]
    # the second start resumed from the checkpoint: it trained fewer epochs than the run has
    assert first["first_epoch"] == ["fake", 1] and 1 < second["first_epoch"][1] <= 3
    lines = counter.read_text().splitlines()
    assert lines.count(f"start {lost['run_id']}") == 2
    assert lines.count(f"epoch {lost['run_id']} 1") == 1  # epoch 1 never trained again
    other = next(r for r in by_run.values() if r is not lost)
    assert other["restarts"] == 0 and other["attempts"] == 1 and len(other["ray_starts"]) == 1
    assert f"restart 1 of fake n-digits T={lost['T']} seed=0: Ray lost its worker or node" in stdout
    status = build_tables(ResultStore(out).rows())["status"]
    assert status["restarts"].tolist() == [1]
