"""Real Ray nodes on this machine for the cluster tests: a head and worker nodes, each a
`ray start --block` process started with setsid (its own process group), so killing that group loses exactly
that node, and stopping the processes started here stops exactly the nodes they started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_AUTH = {"RAY_AUTH_MODE": "disabled"}  # the test cluster lives on this machine only
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayNodes:
    def __init__(self, env: dict | None = None):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # short: Ray's socket paths have a length limit
        self.tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.env = {**os.environ, **NO_AUTH, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
        self.procs: list[subprocess.Popen] = []

    def _start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append(proc)
        return proc

    def head(self, cpus: int = 0) -> RayNodes:
        head = self._start(
            "head",
            [RAY, "start", "--head", f"--port={self.port}", f"--num-cpus={cpus}",
             f"--temp-dir={self.tmp}", "--include-dashboard=false", "--block"],
        )  # fmt: skip
        deadline = time.time() + 90
        while time.time() < deadline:
            assert head.poll() is None, (self.tmp / "head.log").read_text()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError("ray head did not start")

    def worker(self, cpus: int = 1, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        """A worker node; `prefix` wraps the command (e.g. a private mount namespace)."""
        cmd = [RAY, "start", f"--address={self.address}", f"--num-cpus={cpus}", "--block"]
        return self._start(f"worker{len(self.procs)}", [*prefix, *cmd])

    def wait_nodes(self, n: int, timeout: float = 90) -> None:
        code = (
            "import ray,time\n"
            f"ray.init(address='{self.address}', log_to_driver=False)\n"
            f"t=time.time()\nwhile len([x for x in ray.nodes() if x['Alive']]) < {n}:\n"
            f"    time.sleep(0.5)\n    assert time.time() - t < {timeout}\n"
        )
        subprocess.run([sys.executable, "-c", code], env=self.env, check=True, timeout=timeout + 30)

    @staticmethod
    def kill_node(proc: subprocess.Popen) -> None:
        """Lose a node: SIGKILL its whole process group (raylet, its workers, the trial)."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
