"""A real one-node SLURM cluster on loopback for the tests: munged, slurmctld and slurmd started as
root in a fresh temporary folder (state, spool, logs, the munge key and socket), with ports, node
name and folder of their own. `LoopbackSlurm.stop` cancels every job, waits for an empty queue and
stops exactly the daemons it started, by PID.

Needs Debian's ``slurm-wlm`` and ``munge`` packages and root; `missing_reason` says what is missing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


def missing_reason() -> str | None:
    """Why a loopback SLURM cannot start here, or None."""
    missing = [d for d in DAEMONS if not shutil.which(d, path=os.environ["PATH"] + ":/usr/sbin")]
    if missing:
        return (
            f"SLURM test cluster needs {', '.join(missing)}: apt-get install slurm-wlm munge "
            "(Debian, as root)"
        )
    if os.geteuid() != 0:
        return "SLURM test cluster runs its daemons as root"
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LoopbackSlurm:
    def __init__(self, cpus: int = 2):
        self.dir = Path(tempfile.mkdtemp(prefix="hsd-slurm-"))
        self.dir.chmod(0o755)  # munged refuses a socket folder others cannot enter
        self.cpus = cpus
        self.procs: list[subprocess.Popen] = []
        self.munged_pid: int | None = None
        self.conf = self.dir / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.env["PATH"] = self.env["PATH"] + ":/usr/sbin"

    def start(self) -> LoopbackSlurm:
        d = self.dir
        munge = d / "munge"
        munge.mkdir(mode=0o755)
        for sub in ("state", "spool", "log"):
            (d / sub).mkdir()
        subprocess.run(["mungekey", "-c", "-k", str(munge / "key")], check=True)
        sock = munge / "socket"
        subprocess.run(
            ["munged", f"--socket={sock}", f"--key-file={munge / 'key'}",
             f"--pid-file={munge / 'pid'}", f"--log-file={munge / 'log'}",
             f"--seed-file={munge / 'seed'}"],
            check=True,
        )  # fmt: skip
        self.munged_pid = int((munge / "pid").read_text())  # munged deletes it when it stops
        ctld, slurmd = _free_ports(2)
        (d / "plugstack.conf").write_text("")
        self.conf.write_text(
            f"""ClusterName=hsdtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
PlugStackConfig={d}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
FirstJobId={random.randint(1000, 999999)}
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=1024 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
        )
        log = open(d / "log" / "daemons.out", "w")
        for cmd in (["slurmctld", "-D", "-f", str(self.conf)],
                    ["slurmd", "-D", "-f", str(self.conf), "-N", "localhost"]):  # fmt: skip
            self.procs.append(
                subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + 60
        while self.sinfo() != "idle":
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"SLURM did not come up; see {d}/log")
            time.sleep(0.2)
        return self

    def run(self, *cmd: str, check: bool = True) -> str:
        cp = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if check and cp.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {cp.stderr.strip()}")
        return cp.stdout.strip()

    def sinfo(self) -> str:
        return self.run("sinfo", "-h", "-o", "%T", check=False)

    def sbatch(self, script: Path, env: dict | None = None) -> str:
        cp = subprocess.run(
            ["sbatch", "--parsable", str(script)],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.strip().split(";")[0]

    def state(self, job: str) -> str | None:
        """The job's state while it is in the queue (PENDING, RUNNING, ...), None once it left."""
        return self.run("squeue", "-h", "-j", job, "-o", "%T", check=False) or None

    def wait(self, job: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.state(job):
            assert time.monotonic() < deadline, f"job {job} still {self.state(job)}"
            time.sleep(0.5)

    def stop(self) -> None:
        """Cancel every job, wait for an empty queue, stop the daemons started here by PID."""
        if self.procs and all(p.poll() is None for p in self.procs):
            self.run("scancel", "--user=root", check=False)
            deadline = time.monotonic() + 60
            while self.run("squeue", "-h", check=False) and time.monotonic() < deadline:
                time.sleep(0.5)
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.munged_pid:
            try:
                os.kill(self.munged_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
