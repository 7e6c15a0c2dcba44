"""Which Ray the run CLI uses: without --address and RAY_ADDRESS always a private local instance,
whatever address file or other local cluster exists; --address auto joins the local cluster
`ray start` recorded; a set RAY_ADDRESS is honoured and named in the first line of output."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from harness_helpers import read_rows, run_cli

NO_AUTH = {"RAY_AUTH_MODE": "disabled"}  # the clusters of these tests live on this machine only
FAKE = ["--sweep", "latency", "--executor", "ray", "--datasets", "n-digits", "--methods", "fake",
        "--T", "1", "--seeds", "1", "--no-report", "--no-progress"]  # fmt: skip
PRIVATE = "ray: trials run on a private local Ray instance"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env_without_ray_address(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, **NO_AUTH, **extra}


def _run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.run", *map(str, args)],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def ray_tmpdir():
    """A Ray temp root of this test (short: Ray's socket paths have a length limit)."""
    root = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_address_is_chosen_from_the_flag_then_the_environment(monkeypatch):
    from harness.executors.ray_exec import chosen_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert chosen_address(None) == ("local", "local")
    assert chosen_address("auto") == ("auto", "--address auto")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert chosen_address(None) == ("10.0.0.1:6379", "RAY_ADDRESS=10.0.0.1:6379")
    assert chosen_address("10.0.0.2:6379") == ("10.0.0.2:6379", "--address 10.0.0.2:6379")


@pytest.mark.slow
def test_a_stale_address_file_does_not_stop_the_default_sweep(data_env, tmp_path, ray_tmpdir):
    # What a killed `ray start --head` leaves behind: the address file names a dead head.
    (Path(ray_tmpdir) / "ray").mkdir()
    (Path(ray_tmpdir) / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_free_port()}")
    cp = _run([*FAKE, "--out", tmp_path / "o"], _env_without_ray_address(RAY_TMPDIR=ray_tmpdir))
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert cp.stderr.startswith(PRIVATE), cp.stderr[:500]
    assert [r["status"] for r in read_rows(tmp_path / "o")] == ["ok"]


@pytest.fixture
def live_cluster(ray_tmpdir):
    """An unrelated local Ray head in the same temp folder, offering no CPU: a command that joined
    it could place no trial. A `ray start --block` process, stopped by its PID at the end."""
    port = _free_port()
    env = _env_without_ray_address(RAY_TMPDIR=ray_tmpdir, RAY_USAGE_STATS_ENABLED="0")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    log = open(Path(ray_tmpdir) / "head.log", "w")
    head = subprocess.Popen(
        [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=0",
         f"--temp-dir={Path(ray_tmpdir) / 'ray'}", "--include-dashboard=false", "--block"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.time() + 90
        address_file = Path(ray_tmpdir) / "ray" / "ray_current_cluster"
        while not address_file.exists() or not _answers(port):
            assert head.poll() is None, (Path(ray_tmpdir) / "head.log").read_text()[-2000:]
            assert time.time() < deadline, "ray head did not start"
            time.sleep(0.5)
        yield {"port": port, "env": env, "process": head}
    finally:
        head.terminate()
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            head.kill()
        log.close()


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_a_live_unrelated_cluster_is_joined_only_when_asked(data_env, tmp_path, live_cluster):
    env, port = live_cluster["env"], live_cluster["port"]
    cp = _run([*FAKE, "--out", tmp_path / "own"], env)
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert cp.stderr.startswith(PRIVATE), cp.stderr[:500]
    assert [r["status"] for r in read_rows(tmp_path / "own")] == ["ok"]
    assert live_cluster["process"].poll() is None and _answers(port)  # left running

    # Joining it is explicit: --address auto, or RAY_ADDRESS (named first). Its head has no CPU,
    # so the joined command stops before any trial, which shows which cluster it reached.
    no_cpu = "no node of the Ray cluster has that much (nodes: 0 CPU, 0 GPU)"
    cp = _run([*FAKE, "--address", "auto", "--out", tmp_path / "auto"], env)
    assert cp.returncode == 2 and no_cpu in cp.stderr, cp.stderr[-3000:]
    assert cp.stderr.startswith("ray: trials run on the Ray cluster at --address auto")
    cp = _run([*FAKE, "--out", tmp_path / "env"], {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"})
    assert cp.returncode == 2 and no_cpu in cp.stderr, cp.stderr[-3000:]
    first = cp.stderr.splitlines()[0]
    assert first == (
        f"ray: trials run on the Ray cluster at RAY_ADDRESS=127.0.0.1:{port}, set in the "
        "environment (unset RAY_ADDRESS to start a private local instance)"
    )
    assert not (tmp_path / "auto" / "results.jsonl").exists()


@pytest.mark.slow
def test_a_ray_address_nobody_answers_fails_fast_naming_the_variable(data_env, tmp_path):
    port = _free_port()
    t0 = time.time()
    cp = run_cli([*FAKE, "--out", tmp_path / "o"], env_extra={"RAY_ADDRESS": f"127.0.0.1:{port}"})
    assert cp.returncode == 2, cp.stderr[-3000:]
    assert f"RAY_ADDRESS=127.0.0.1:{port}: no Ray head answers there" in cp.stderr
    assert "unset RAY_ADDRESS to use a private local Ray instance" in cp.stderr
    assert time.time() - t0 < 60 and not (tmp_path / "o").exists()
