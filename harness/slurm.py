"""Run a sweep on a SLURM cluster with one command: a Ray cluster inside one allocation.

    python -m harness.slurm --nodes 2 --gpus-per-node 4 --time 12:00:00 --partition gpu \\
        -- --sweep latency --profile paper --root /shared/data --out /shared/runs/latency
    python -m harness.slurm --nodes 1 --cpus-per-node 8 --time 1:00:00 --dry-run -- --sweep latency

Everything after ``--`` is passed to ``python -m harness.run`` (checked here first). The command
writes ``<out>/slurm/job.sbatch`` (kept beside the results: read it, edit it, resubmit it with
``sbatch``), submits it and prints the job id, its log and how to follow and stop it. ``--dry-run``
prints the script and submits nothing.

The job starts a Ray head on its first node and a Ray worker on every other node (one ``srun``
step each, with the allocation's CPUs and GPUs), waits until every node has joined, runs the
sweep against that cluster and stops every Ray process it started on any exit: the sweep's end,
an error, ``scancel`` or the time limit (SLURM signals the batch shell ``--stop-before`` seconds
early). Each job has its own Ray temporary folder (``/tmp/hsd-ray-<job id>`` on each node), its own
ports (a block chosen by the job id) and its own Ray authentication token, generated in the job and
passed to its nodes in the environment. Resubmitting the script resumes the sweep: finished runs
are skipped, unfinished ones resume from their checkpoints.

Everything the nodes read or write must be on storage every node mounts at the same path: --out,
the data root, the frame cache and this Python environment. The sweep checks it before training.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness.cli import UsageError, UsageParser, positive_int, run_main

# `[D-]HH:MM:SS`, the form sbatch --time takes that says exactly how long
TIME_FORMAT = re.compile(r"^(?:(\d+)-)?(\d{1,3}):([0-5]\d):([0-5]\d)$")
# harness.run options the job sets itself
OWN_RUN_OPTIONS = ("--address", "--executor", "--dry-run")

# The job's shell code after the settings the generator writes above it (PYTHON, NODES_CPUS,
# NODES_GPUS, RAY_AUTH, JOIN_TIMEOUT_S, RUN_ARGS). Plain bash, no substitution.
JOB_BODY = r"""
set -uo pipefail
log() { echo "[slurm job ${SLURM_JOB_ID:-?} $(date +%H:%M:%S)] $*" >&2; }

job=${SLURM_JOB_ID:?submit this script with sbatch}
# The allocation's nodes; HSD_SLURM_NODES (space-separated) overrides the list, e.g. to start two
# Ray nodes on one machine.
read -r -a nodes <<< "${HSD_SLURM_NODES:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | xargs)}"
head=${nodes[0]}
head_addr=$(scontrol show node "$head" 2>/dev/null | sed -n 's/.*NodeAddr=\([^ ]*\).*/\1/p')
head_addr=${head_addr:-$head}
port=$(( 20000 + job % 400 * 100 ))  # this job's block of ports: GCS, client, agents
address=$head_addr:$port
ray_tmp=/tmp/hsd-ray-$job  # on every node; holds the Ray logs of this job
cpus=${NODES_CPUS:-${SLURM_CPUS_ON_NODE:-1}}
export RAY_USAGE_STATS_ENABLED=0
if [ "$RAY_AUTH" = token ]; then
  # One token per job, handed to every node and to the driver through the environment.
  export RAY_AUTH_MODE=token
  RAY_AUTH_TOKEN=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32))')
  export RAY_AUTH_TOKEN
else
  export RAY_AUTH_MODE=disabled
fi

steps=()   # the srun steps running `ray start --block`, one per node
driver=""  # the sweep's PID while it runs

alive() { local p; for p; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
stop() {  # SIGNAL SECONDS PID...: signal them, wait that long for them to end, then kill them
  local signal=$1 seconds=$2 i
  shift 2
  kill -s "$signal" "$@" 2>/dev/null
  for ((i = 0; i < seconds * 10; i++)); do alive "$@" || break; sleep 0.1; done
  kill -s KILL "$@" 2>/dev/null
  wait "$@" 2>/dev/null
}

cleanup() {
  trap - EXIT TERM INT
  # The sweep first (Ctrl+C: Ray Tune stops its trials; finished rows are already stored)...
  [ -n "$driver" ] && stop INT 30 "$driver"
  # ...then every Ray node at once: srun ends its step, and SLURM kills every process of the
  # step (the Ray processes on that node).
  [ ${#steps[@]} -gt 0 ] && stop TERM 30 "${steps[@]}"
  log "Ray stopped on ${nodes[*]}"
}
trap cleanup EXIT
trap 'log "SIGTERM (scancel or time limit): stopping"; exit 143' TERM
trap 'log "SIGINT: stopping"; exit 130' INT

start_node() {  # NODE INDEX RAY-START-ARGS...: one Ray node as a background job step
  local node=$1 index=$2
  shift 2
  srun --overlap --nodes=1 --ntasks=1 -w "$node" \
    "$PYTHON" -m ray.scripts.scripts start --block --temp-dir="$ray_tmp" \
    --num-cpus="$cpus" --num-gpus="$NODES_GPUS" \
    --dashboard-agent-listen-port=$((port + 2 + index % 98)) "$@" &
  steps+=($!)
}

check_nodes() {  # exit when a Ray node's step has ended (its error is in the log above)
  for ((n = 0; n < ${#steps[@]}; n++)); do
    kill -0 "${steps[n]}" 2>/dev/null || { log "the Ray node on ${nodes[n]} stopped"; exit 1; }
  done
}

log "Ray head on $head ($address), workers on: ${nodes[*]:1}"
start_node "$head" 0 --head --port="$port" --ray-client-server-port=$((port + 1)) \
  --include-dashboard=false
for ((s = 0; s < JOIN_TIMEOUT_S; s++)); do
  (exec 3<>"/dev/tcp/$head_addr/$port") 2>/dev/null && break
  check_nodes
  sleep 1
done
for ((n = 1; n < ${#nodes[@]}; n++)); do
  start_node "${nodes[n]}" "$n" --address="$address"
done
"$PYTHON" -c 'import sys; from harness.slurm import wait_for_nodes
wait_for_nodes(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))' \
  "$address" "${#nodes[@]}" "$JOIN_TIMEOUT_S" &
waiter=$!
while kill -0 "$waiter" 2>/dev/null; do check_nodes; sleep 1; done
wait "$waiter" || exit 1

"$PYTHON" -m harness.run --executor ray --address "$address" "${RUN_ARGS[@]}" &
driver=$!
wait "$driver"
status=$?
driver=""
log "sweep exited with $status"
exit "$status"
"""


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="python -m harness.slurm",
        usage="python -m harness.slurm --nodes N --time HH:MM:SS [options] -- <harness.run args>",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nodes", type=positive_int, default=1, help="nodes to allocate (default 1)")
    p.add_argument(
        "--cpus-per-node",
        type=positive_int,
        default=None,
        help="CPU cores per node for Ray (default: whole nodes, --exclusive)",
    )
    p.add_argument(
        "--gpus-per-node", type=int, default=0, help="GPUs per node (default 0; --gres=gpu:G)"
    )
    p.add_argument("--time", required=True, help="time limit, [D-]HH:MM:SS")
    p.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    p.add_argument("--job-name", default=None, help="job name (default hsd-<out folder name>)")
    p.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="OPTION",
        help="another sbatch option for the script, e.g. --sbatch=--account=mylab (repeatable)",
    )
    p.add_argument(
        "--stop-before",
        type=positive_int,
        default=60,
        metavar="SECONDS",
        help="SIGTERM the job this long before its time limit so it stops the sweep and Ray "
        "cleanly (default 60; SLURM may send it up to a minute early)",
    )
    p.add_argument(
        "--join-timeout",
        type=positive_int,
        default=300,
        metavar="SECONDS",
        help="how long the job waits for every node to join the Ray cluster (default 300)",
    )
    p.add_argument(
        "--no-ray-auth",
        action="store_true",
        help="start Ray without token authentication (RAY_AUTH_MODE=disabled): only for a "
        "private network, e.g. tests on one machine",
    )
    p.add_argument("--dry-run", action="store_true", help="print the script, submit nothing")
    return p


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """This command's options and the harness.run arguments after ``--`` (UsageError if none)."""
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise UsageError(
            "give the sweep's arguments after --, e.g. python -m harness.slurm --nodes 2 "
            "--time 12:00:00 -- --sweep latency --out /shared/runs/latency"
        )
    i = argv.index("--")
    return argv[:i], argv[i + 1 :]


def check_time(text: str) -> str:
    m = TIME_FORMAT.match(text)
    if not m or not any(int(x or 0) for x in m.groups()):
        raise UsageError(f"--time {text!r}: expected a positive [D-]HH:MM:SS, e.g. 12:00:00")
    return text


def check_run_args(run_args: list[str]) -> Path:
    """Check the sweep's arguments as `harness.run` would and return its absolute --out."""
    from harness import run, run_cli
    from harness.common.store import ResultStore

    for flag in OWN_RUN_OPTIONS:
        if any(a == flag or a.startswith(flag + "=") for a in run_args):
            raise UsageError(
                f"{flag} after --: the job sets it (Ray executor, the job's own cluster); "
                "drop it" + (" and use this command's --dry-run" if flag == "--dry-run" else "")
            )
    try:
        args = run_cli.build_parser().parse_args(run_args)
        run_cli.normalise(args)
    except UsageError as err:
        raise UsageError(f"the sweep's arguments after --: {err}") from None
    if args.tune:
        return Path(args.out or "runs/tune").resolve()
    run.plan(args)  # every config resolves
    out = run.out_dir(args)
    ResultStore(out).check_manifest(run.manifest(args))  # the folder holds this sweep or nothing
    return out


def render(opts, run_args: list[str], out: Path) -> str:
    """The sbatch script: SBATCH lines, the settings, then `JOB_BODY`."""
    from harness.executors.ray_exec import FORWARD_ENV

    log_dir = out / "slurm"
    sb = [
        f"--job-name={opts.job_name or 'hsd-' + out.name}",
        f"--nodes={opts.nodes}",
        "--ntasks-per-node=1",
        f"--time={opts.time}",
        f"--output={log_dir}/job-%j.out",
        f"--chdir={Path.cwd()}",
        f"--signal=B:TERM@{opts.stop_before}",  # the batch shell stops the sweep and Ray in time
        "--export=ALL",
    ]
    sb.append(f"--cpus-per-task={opts.cpus_per_node}" if opts.cpus_per_node else "--exclusive")
    if opts.gpus_per_node:
        sb.append(f"--gres=gpu:{opts.gpus_per_node}")
    if opts.partition:
        sb.append(f"--partition={opts.partition}")
    sb += opts.sbatch
    q = shlex.quote
    settings = [
        f"PYTHON={q(sys.executable)}",
        f"NODES_CPUS={opts.cpus_per_node or ''}",
        f"NODES_GPUS={opts.gpus_per_node}",
        f"RAY_AUTH={'disabled' if opts.no_ray_auth else 'token'}",
        f"JOIN_TIMEOUT_S={opts.join_timeout}",
        f"RUN_ARGS=({' '.join(q(a) for a in run_args)})",
    ]
    # What the nodes must see as the submitting shell does (data, caches, plugin methods).
    settings += [f"export {k}={q(os.environ[k])}" for k in FORWARD_ENV if os.environ.get(k)]
    return "\n".join(
        [
            "#!/bin/bash",
            f"# Written by: python -m harness.slurm {shlex.join(sys.argv[1:])}".rstrip(),
            "# Resubmit with `sbatch` to resume the sweep.",
            *(f"#SBATCH {s}" for s in sb),
            "",
            *settings,
            JOB_BODY,
        ]
    )


def wait_for_nodes(address: str, n: int, timeout: float) -> None:
    """Return once `n` nodes of the Ray cluster at `address` are alive; exit 1 after `timeout` s."""
    import ray

    deadline = time.monotonic() + timeout
    alive = 0
    while time.monotonic() < deadline:
        try:
            if not ray.is_initialized():
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            alive = sum(1 for node in ray.nodes() if node.get("Alive"))
            if alive >= n:
                ray.shutdown()
                print(f"all {n} Ray nodes joined", file=sys.stderr)
                return
        except (ConnectionError, RuntimeError):
            pass  # the head is still starting
        time.sleep(1)
    sys.exit(
        f"only {alive} of {n} Ray nodes joined {address} within {timeout:g} s; see the Ray logs "
        "under /tmp/hsd-ray-<job id> on each node and the job log"
    )


def submit(script: Path) -> str:
    """sbatch the script and return the job id (UsageError when SLURM refuses it)."""
    if not shutil.which("sbatch"):
        raise UsageError(
            f"sbatch not found: run this on a SLURM login node (the script is at {script}), or "
            "pass --dry-run to print it"
        )
    cp = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    if cp.returncode != 0:
        raise UsageError(f"sbatch refused {script}: {cp.stderr.strip() or cp.stdout.strip()}")
    return cp.stdout.strip().split(";")[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_main(lambda: _main(argv), debug="--debug" in argv)


def _main(argv: list[str]) -> int:
    own, run_args = split_argv(argv)
    opts = build_parser().parse_args(own)
    check_time(opts.time)
    if opts.gpus_per_node < 0:
        raise UsageError(f"--gpus-per-node must be >= 0, got {opts.gpus_per_node}")
    out = check_run_args(run_args)
    script = render(opts, run_args, out)
    if opts.dry_run:
        print(script)
        return 0
    path = out / "slurm" / "job.sbatch"
    path.parent.mkdir(parents=True, exist_ok=True)  # sbatch writes the job log there
    path.write_text(script)
    job = submit(path)
    log = out / "slurm" / f"job-{job}.out"
    print(
        f"submitted job {job}\n"
        f"  script: {path}\n"
        f"  log:    {log}\n"
        f"  follow: squeue -j {job}; tail -f {log}\n"
        f"  stop:   scancel {job}\n"
        f"  resume: sbatch {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
