"""The run CLI with the Ray Tune executor: same rows as the local executor, a real two-node
cluster joined with --address, and a fast clear error for an unreachable address."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from harness_helpers import read_rows, run_cli

GRID = ["--datasets", "n-digits", "--methods", "fake,fake-fail", "--T", "1,2,3", "--seeds", "1"]
NO_AUTH = {"RAY_AUTH_MODE": "disabled"}  # the test cluster lives on this machine only


def _key(rows):
    return sorted((r["run_id"], r["t"], r["status"], r["acc"]) for r in rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_executor_gives_the_same_rows_as_local(data_env, tmp_path):
    common = ["--sweep", "latency", *GRID, "--retries", "0", "--no-report"]
    local = run_cli([*common, "--executor", "local", "--out", tmp_path / "local"])
    assert local.returncode == 0, local.stderr
    ray = run_cli(
        [*common, "--executor", "ray", "--cpus-per-trial", "1", "--out", tmp_path / "ray"],
        env_extra=NO_AUTH,
    )
    assert ray.returncode == 0, ray.stderr
    rows = read_rows(tmp_path / "ray")
    assert _key(rows) == _key(read_rows(tmp_path / "local"))
    assert len(rows) == (1 + 2 + 3) + 3  # fake: a row per t; fake-fail: one failed row per T
    assert not any((tmp_path / "ray" / "pending").glob("*.json"))  # all moved into the store
    # the workers wrote every trained run's learning curve next to the driver's store
    ok = {r["run_id"] for r in rows if r["status"] == "ok"}
    assert {p.stem for p in (tmp_path / "ray" / "curves").glob("*.json")} == ok
    assert "trials 6/6" in ray.stderr  # the driver's progress bar


@pytest.mark.slow
def test_unreachable_address_fails_fast_with_exit_2(data_env, tmp_path):
    t0 = time.time()
    cp = run_cli(
        ["--sweep", "latency", *GRID, "--executor", "ray", "--address", f"127.0.0.1:{_free_port()}",
         "--out", tmp_path / "o"],
    )  # fmt: skip
    assert cp.returncode == 2 and "no Ray head answers" in cp.stderr
    assert time.time() - t0 < 60 and not (tmp_path / "o").exists()


@pytest.fixture
def two_node_cluster():
    """A real Ray head and a second worker node (1 CPU each), each a `ray start --block`
    subprocess: terminating those processes stops exactly the nodes they started."""
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a limit
    env = {**os.environ, **NO_AUTH, "RAY_USAGE_STATS_ENABLED": "0"}
    ray_bin = str(Path(sys.executable).with_name("ray"))
    logs = [open(Path(tmp) / f"{n}.log", "w") for n in ("head", "worker")]
    procs = []
    try:
        # The head offers no CPU, so every trial must run on the second node: a deterministic
        # check that work crosses nodes (with a CPU on each, Tune may place all on the head).
        head = [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=0", f"--temp-dir={tmp}",
                "--include-dashboard=false", "--block"]  # fmt: skip
        procs.append(subprocess.Popen(head, env=env, stdout=logs[0], stderr=subprocess.STDOUT))
        _wait_port(port, procs[0])
        worker = [ray_bin, "start", f"--address=127.0.0.1:{port}", "--num-cpus=2", "--block"]
        procs.append(subprocess.Popen(worker, env=env, stdout=logs[1], stderr=subprocess.STDOUT))
        _wait_nodes(port, 2, env)
        yield f"127.0.0.1:{port}"
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs:
            f.close()


def _wait_port(port, proc, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "ray head exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("ray head did not start")


def _wait_nodes(port, n, env, timeout=90):
    code = (
        "import ray,time,sys\n"
        f"ray.init(address='127.0.0.1:{port}', log_to_driver=False)\n"
        f"t=time.time()\nwhile len([x for x in ray.nodes() if x['Alive']]) < {n}:\n"
        f"    time.sleep(0.5)\n    assert time.time() - t < {timeout}\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=timeout + 30)


@pytest.mark.slow
def test_sweep_on_a_two_node_cluster_via_address(data_env, tmp_path, two_node_cluster):
    out = tmp_path / "out"
    cp = run_cli(
        ["--sweep", "latency", "--executor", "ray", "--address", two_node_cluster,
         "--datasets", "n-digits", "--methods", "fake", "--T", "1,2,3,4", "--cpus-per-trial", "1",
         "--seeds", "1", "--out", out, "--no-report"],
        env_extra={**NO_AUTH, "HSD_FAKE_EPOCH_S": "0.5"},
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    rows = read_rows(out)
    assert sorted((r["T"], r["t"]) for r in rows) == [
        (T, t) for T in (1, 2, 3, 4) for t in range(1, T + 1)
    ]
    assert all(r["status"] == "ok" for r in rows)
    # every trial ran on the worker node (the head has no CPU), all on that one node
    assert len({r["ray_node"] for r in rows}) == 1


def test_pending_files_are_validated_before_ingest(tmp_path, capsys):
    """Rows a killed driver left in pending/: valid ones are stored, any other file is moved to
    pending/rejected/ with a warning and its run stays unfinished."""
    from harness.common import sweeps as S
    from harness.common.store import ResultStore
    from harness.executors import ExecOptions, Progress
    from harness.executors.ray_exec import _Ingest
    from harness.trial import failure_row

    trials = S.resolve_all(
        S.expand(["latency"], datasets=["n-digits"], methods=["sts", "hsd"], T=[1, 2, 3], seeds=1)
    )
    a, b, c, d, e, f = trials
    store = ResultStore.open(tmp_path, {"sweep": "latency", "args": {}})
    pending = tmp_path / "pending"
    pending.mkdir()

    def put(trial_or_name, content):
        name = getattr(trial_or_name, "run_id", trial_or_name)
        text = content if isinstance(content, str) else json.dumps(content)
        (pending / f"{name}.json").write_text(text)

    put(a, [failure_row(a, "failed", "boom", 1.0, 1)])  # valid: stored
    put(b, [{"foo": 1}])  # foreign fields
    put(c, [failure_row(f, "failed", "boom", 1.0, 1)])  # another run's rows
    put(d, '[{"run_id": "torn"')  # not JSON
    put(e, [{**failure_row(e, "ok", "", 1.0, 1), "acc": "high"}])  # text accuracy
    put("not-in-this-grid", [failure_row(f, "failed", "boom", 1.0, 1)])  # dropped
    ingest = _Ingest(store, ExecOptions(out_dir=tmp_path), trials, Progress(trials, enabled=False))
    ingest.leftovers(set())
    assert store.finished_run_ids() == ingest.done == {a.run_id}
    assert not list(pending.glob("*.json"))
    rejected = sorted(p.stem for p in (pending / "rejected").glob("*.json"))
    assert rejected == sorted(t.run_id for t in (b, c, d, e))
    err = capsys.readouterr().err
    for trial, reason in [
        (b, "row 1: missing run_id"),
        (c, f"rows of run {f.run_id!r} in the file of run {c.run_id!r}"),
        (d, "not readable JSON"),
        (e, "row 1: acc 'high' is not a fraction in [0, 1]"),
    ]:
        assert f"warning: {pending / trial.run_id}.json holds no valid result rows ({reason}" in err


@pytest.fixture
def http_listener():
    """A listener that is not Ray: Python's HTTP server, like `python -m http.server`."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_listener():
    """A port that accepts connections and never says anything."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.slow
@pytest.mark.parametrize("listener", ["http_listener", "silent_listener"])
def test_address_that_is_not_ray_fails_fast(listener, request):
    from harness.executors import ExecutorError
    from harness.executors.ray_exec import check_address

    address = request.getfixturevalue(listener)
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match=f"--address {address}: .* not the GCS of a Ray head"):
        check_address(address)
    assert time.monotonic() - t0 < 30


@pytest.mark.slow
def test_cli_with_an_address_that_is_not_ray_exits_2(data_env, tmp_path, http_listener):
    t0 = time.time()
    cp = run_cli(
        ["--sweep", "latency", *GRID, "--executor", "ray", "--address", http_listener,
         "--out", tmp_path / "o"],
    )  # fmt: skip
    assert cp.returncode == 2 and "not the GCS of a Ray head" in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr and not (tmp_path / "o").exists()
    assert time.time() - t0 < 60


@pytest.mark.parametrize(
    "cpus, gpus, flag",
    [(-1, 0, "--cpus-per-trial"), (1, -1, "--gpus-per-trial"), (float("nan"), 0, "--cpus")],
)
def test_negative_trial_request_is_refused_before_ray_starts(cpus, gpus, flag):
    from harness.executors import ExecutorError
    from harness.executors.ray_exec import check_trial_request

    check_trial_request(1, None)
    check_trial_request(0.5, 0.25)
    with pytest.raises(ExecutorError, match=f"{flag}.* must be a number >= 0"):
        check_trial_request(cpus, gpus)


# In a child process (a Ray instance of its own, gone with it): start Ray the harness's way with
# one CPU and no GPU, check requests against it, and list the TCP listeners of its process tree.
LOCAL_RAY = """
import json, os, subprocess
from harness.executors import ExecutorError, ray_exec
ray_exec.init(None, num_cpus=1, num_gpus=0)
out = {"fits": []}
for cpus, gpus in [(1, 0), (1, 1), (2, 0), (0.5, 0)]:
    try:
        ray_exec.check_cluster_fits(cpus, gpus)
        out["fits"].append("ok")
    except ExecutorError as err:
        out["fits"].append(str(err))
def tree(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    todo, seen = [root], set()
    while todo:
        p = todo.pop()
        seen.add(p)
        todo += kids.get(p, [])
    return seen
pids = tree(os.getpid())
ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
out["listen"] = [line.split()[3] for line in ss if any(f"pid={p}," in line for p in pids)]
ray_exec.shutdown()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_local_ray_checks_requests_and_listens_on_loopback_only():
    import shutil

    if not shutil.which("ss"):
        pytest.skip("needs `ss` (iproute2) to list listening sockets")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update({**NO_AUTH, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    cp = subprocess.run(
        [sys.executable, "-c", LOCAL_RAY], env=env, capture_output=True, text=True, timeout=240
    )
    assert cp.returncode == 0, cp.stderr[-3000:]
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    ok, gpu, cpu, half = out["fits"]
    assert ok == "ok" and half == "ok"
    assert gpu.startswith("a trial asks for 1 CPU and 1 GPU") and "(nodes: 1 CPU, 0 GPU)" in gpu
    assert cpu.startswith("a trial asks for 2 CPU and 0 GPU")
    assert out["listen"]  # the GCS and raylet at least
    assert all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for a in out["listen"]), out
