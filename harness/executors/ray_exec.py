"""The `ray` executor: one Ray Tune trial per run, on a local Ray instance or a cluster.

- Resources per trial via `tune.with_resources(..., {"cpu": c, "gpu": g})`; fractional GPUs pack
  several runs on one card (Ray sets CUDA_VISIBLE_DEVICES for each trial).
- Paths are absolute everywhere: Tune changes each trial's working directory.
- Checkpoints go to ``<out>/checkpoints/<run_id>`` (the engine's per-epoch checkpoints), not to
  Tune checkpoints, so a retry (`FailureConfig(max_failures=retries)`) or a rerun of the command
  resumes from them. On one machine the driver and workers share that folder; a multi-node
  cluster needs ``--out`` on a filesystem mounted at the same path on every node (NFS, ...).
- Single writer: trials never touch the store. Each trial writes its rows atomically to
  ``<out>/pending/<run_id>.json`` and reports them in its final `tune.report`; a `Callback` in the
  driver appends them to the store as each trial finishes. Pending files left by a killed driver
  are ingested by the next run, so finished work is never lost or repeated.
- A trial Ray restarts (its node or worker lost) resumes from its epoch checkpoints; its rows
  record every start (``ray_starts``: node, host, first epoch trained), ``restarts`` and
  ``attempts`` counting them, and the progress bar says so when it happens.
- With more than one node, every node must see ``--out``, the data root and the frame cache:
  `harness.executors.shared_storage` checks that before the first trial.
- Resuming is the harness's own (store run ids + epoch checkpoints), not `Tuner.restore`: every
  invocation starts a fresh Tune experiment with only the unfinished trials.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from harness.common.sweeps import Trial
from harness.executors import ExecOptions, ExecutorError, Progress
from harness.executors.shared_storage import check_shared_storage
from harness.trial import EnvironmentFailure, failure_row, record, run_trial

# Environment a trial process needs to see the same methods, data and caches as the driver
# (PYTHONPATH finds plugin methods; the data layer reads HSD_DATA_DIR and HSD_CACHE_DIR;
# HSD_IF_SCAN_BACKEND picks the IF kernel, HSD_CPU_SCAN=0 the neurons of SpikingJelly on a CPU).
FORWARD_ENV = (
    "HSD_DATA_DIR",
    "HSD_CACHE_DIR",
    "HSD_IF_SCAN_BACKEND",
    "HSD_CPU_SCAN",
    "PYTHONPATH",
)
_STARTED_RAY = False

# A cheap call every Ray GCS serves (gcs_service.proto); an empty request is a valid message.
GCS_PROBE_METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"


def chosen_address(address: str | None) -> tuple[str, str]:
    """The Ray address this command uses and how to name it to the user: `--address` when given,
    else ``RAY_ADDRESS`` from the environment (as ``ray job submit`` sets it), else ``"local"``: a
    private instance started for this command, whatever other clusters or address files
    (``ray_current_cluster`` in Ray's temp folder) exist. ``--address auto`` joins the local
    cluster `ray start` last recorded."""
    if address:
        return address, f"--address {address}"
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env:
        return env, f"RAY_ADDRESS={env}"
    return "local", "local"


def announce(address: str | None) -> None:
    """One line on stderr saying where the trials will run (before any other output)."""
    target, named = chosen_address(address)
    if target == "local":
        line = (
            "a private local Ray instance (join a running cluster with --address HOST:PORT or auto)"
        )
    elif named.startswith("RAY_ADDRESS"):
        line = (
            f"the Ray cluster at {named}, set in the environment (unset RAY_ADDRESS to start a "
            "private local instance)"
        )
    else:
        line = f"the Ray cluster at {named}"
    print(f"ray: trials run on {line}", file=sys.stderr, flush=True)


def check_address(address: str | None, timeout: float = 3.0) -> None:
    """Fail fast (ExecutorError) when the chosen cluster address (`chosen_address`: --address or
    RAY_ADDRESS) is not a Ray head, instead of hanging.

    Two bounded checks: the port accepts a TCP connection within `timeout` seconds, and it answers
    a Ray GCS gRPC call within 5 s. `ray.init` against a listener that is not Ray (a web server,
    say) would otherwise wait for minutes.
    """
    address, named = chosen_address(address)
    if address in ("local", "auto"):
        return
    drop = "unset RAY_ADDRESS" if named.startswith("RAY_ADDRESS") else "drop --address"
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ExecutorError(
            f"{named}: expected host:port of the Ray head (e.g. 10.0.0.1:6379), or {drop} to use "
            "a private local Ray instance"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ExecutorError(
            f"{named}: no Ray head answers there ({err}). Start one with "
            f"`ray start --head --port={port}` or {drop} to use a private local Ray instance"
        ) from None
    _probe_gcs(named, f"{host}:{port}", drop, timeout=max(timeout, 5.0))


def _probe_gcs(named: str, target: str, drop: str, timeout: float) -> None:
    """ExecutorError unless `target` answers a Ray GCS gRPC call within `timeout` seconds."""
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return  # a TLS cluster needs Ray's certificates; `ray.init` checks it
    try:
        import grpc  # installed with Ray
    except ImportError:
        return
    channel = grpc.insecure_channel(target)
    try:
        probe = channel.unary_unary(
            GCS_PROBE_METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        probe(b"", timeout=timeout)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNAUTHENTICATED:
            return  # a Ray GCS with token authentication: `ray.init` presents the token
        raise ExecutorError(
            f"{named}: something listens there, but it is not the GCS of a Ray head "
            f"({err.code().name}: {(err.details() or '').splitlines()[0][:200]}). Pass the address "
            f"`ray start --head` prints (its --port, default 6379), or {drop} to use a private "
            "local Ray instance"
        ) from None
    finally:
        channel.close()


def check_trial_request(cpus: float | None, gpus: float | None) -> None:
    """Refuse a per-trial request that no cluster can serve, before Ray starts (ExecutorError)."""
    for flag, value in (("--cpus-per-trial", cpus), ("--gpus-per-trial", gpus)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ExecutorError(f"{flag} must be a number >= 0, got {value}")


def check_cluster_fits(cpus: float, gpus: float) -> None:
    """ExecutorError unless some alive node of the joined cluster can hold one trial.

    Ray would otherwise keep such a trial pending forever. Call right after `init`; the message
    names what each node has. (An autoscaling cluster that would add a larger node is refused too.)
    """
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
        return
    have = "; ".join(f"{r.get('CPU', 0):g} CPU, {r.get('GPU', 0):g} GPU" for r in nodes)
    raise ExecutorError(
        f"a trial asks for {cpus:g} CPU and {gpus:g} GPU (--cpus-per-trial, --gpus-per-trial), "
        f"but no node of the Ray cluster has that much (nodes: {have or 'none alive'}). Lower "
        "the request or add a node that has it"
    )


def init(address: str | None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Join the cluster `chosen_address` names, or start a private local instance (all CPUs
    unless `num_cpus`).

    The local instance is started with ``address="local"``: `ray.init` without an address would
    join the cluster named by ``RAY_ADDRESS`` or by the address file a `ray start --head` left in
    Ray's temp folder (even a dead one: "When connecting to an existing cluster, num_cpus and
    num_gpus must not be provided"). It listens on 127.0.0.1 only: Ray binds its GCS and raylets
    to every interface unless the node's IP is the loopback address, which it only picks when
    clusters are disabled (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when Ray is imported, so
    set before that).
    """
    global _STARTED_RAY
    address, named = chosen_address(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the driver shows its own progress bar
    if address == "local" and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return
    env = {k: os.environ[k] for k in FORWARD_ENV if os.environ.get(k)}
    # Trials must import this checkout even when they start in a Tune trial folder.
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    kw = dict(runtime_env={"env_vars": env}, log_to_driver=False, configure_logging=False)
    try:
        if address != "local":
            check_address(address)
            ray.init(address=address, **kw)
        else:
            ray.init(
                address="local",
                num_cpus=os.cpu_count() if num_cpus is None else num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                **kw,
            )
            _STARTED_RAY = True
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ExecutorError(f"cannot start or join Ray ({named}): {err}") from err


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _pending_dir(out_dir: Path) -> Path:
    return Path(out_dir) / "pending"


def _write_pending(out_dir: Path, run_id: str, rows: list[dict]) -> None:
    d = _pending_dir(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{run_id}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(rows))
    os.replace(tmp, d / f"{run_id}.json")


def _trainable(config: dict, trials: list[dict], opts: dict) -> None:
    """One Tune trial = one run. Runs in a Ray worker process."""
    import ray
    from ray import tune

    trial = Trial.from_dict(trials[config["idx"]])
    options = ExecOptions.from_dict(opts)
    node = ray.get_runtime_context().get_node_id()  # which cluster node runs it (provenance)

    def on_epoch(stage, epoch, epochs, record):
        tune.report(
            {"stage": stage, "epoch": epoch, "epochs": epochs, "val_acc": record.get("val_acc")}
        )

    # Where this start runs: a trial Ray restarts after a lost node or worker reports again.
    tune.report({"started": True, "node": node, "host": socket.gethostname()})
    try:
        rows = run_trial(trial, options, on_epoch=on_epoch)
    except EnvironmentFailure as err:
        tune.report({"final": True, "env_error": str(err)})
        return
    rows = [{**r, "ray_node": node} for r in rows]
    _write_pending(Path(options.out_dir), trial.run_id, rows)
    tune.report({"final": True, "status": rows[0]["status"], "rows_json": json.dumps(rows)})


class _Ingest:
    """Driver side: move finished trials' rows into the store (the only writer) exactly once."""

    def __init__(self, store, opts: ExecOptions, trials: Sequence[Trial], progress: Progress):
        self.store, self.opts, self.progress = store, opts, progress
        self.by_id = {t.run_id: t for t in trials}
        self.done: set[str] = set()
        self.counts: Counter = Counter()
        self.env_errors: list[str] = []
        self.starts: dict[str, list[dict]] = {}  # run id -> where each start of its trial ran
        self.restarts: Counter = Counter()  # run id -> times Ray restarted its trial

    def started(self, run_id: str, node: str, host: str) -> None:
        self.starts.setdefault(run_id, []).append({"node": node, "host": host, "first_epoch": None})

    def trained(self, run_id: str, stage: str, epoch: int) -> None:
        """An epoch report: the first one of a start says where that start resumed."""
        starts = self.starts.get(run_id)
        if starts and starts[-1]["first_epoch"] is None:
            starts[-1]["first_epoch"] = [stage, epoch]

    def add(self, run_id: str, rows: list[dict]) -> None:
        if run_id in self.done:
            return
        if run_id in self.starts or self.restarts[run_id]:
            # attempts: this start's own tries (retries in the worker) plus Ray's restarts
            restarts = self.restarts[run_id]
            fields = {"ray_starts": self.starts.get(run_id, []), "restarts": restarts}
            rows = [{**r, **fields, "attempts": r.get("attempts", 1) + restarts} for r in rows]
        t = self.by_id.get(run_id)
        self.counts[
            record(t.label() if t else run_id, rows, self.store, self.opts, self.progress)
        ] += 1
        self.done.add(run_id)
        (_pending_dir(self.opts.out_dir) / f"{run_id}.json").unlink(missing_ok=True)

    def leftovers(self, finished: set[str]) -> None:
        """Rows a killed driver never stored: ingest those of this grid, drop the rest.

        A file whose rows are not valid result rows of its run is never stored: it is moved to
        ``pending/rejected/`` with a warning, and its run counts as unfinished (it runs again).
        """
        d = _pending_dir(self.opts.out_dir)
        if not d.is_dir():
            return
        for f in sorted(d.glob("*.json")):
            run_id = f.stem
            if run_id in self.by_id and run_id not in finished:
                rows, problem = _read_pending(f)
                if problem:
                    _reject_pending(f, problem, self.progress)
                    continue
                self.add(run_id, rows)
            else:
                f.unlink()


def _read_pending(path: Path) -> tuple[list[dict] | None, str | None]:
    """The rows of a pending file, or why they cannot be stored (checked like the store's rows)."""
    from harness.common.row_schema import rows_problem

    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as err:
        return None, f"not readable JSON ({err})"
    problem = rows_problem(rows)
    if problem:
        return None, problem
    ids = sorted({r["run_id"] for r in rows} - {path.stem})
    if ids:
        return None, f"rows of run {ids[0]!r} in the file of run {path.stem!r}"
    return rows, None


def _reject_pending(path: Path, problem: str, progress: Progress) -> None:
    rejected = path.parent / "rejected"
    rejected.mkdir(exist_ok=True)
    target = rejected / path.name
    os.replace(path, target)
    progress.bar.write(  # on stderr, above the progress bar
        f"warning: {path} holds no valid result rows ({problem}); moved to {target}, not stored, "
        "and its run will be run again",
        file=sys.stderr,
    )


def run(
    trials: Sequence[Trial],
    store,
    opts: ExecOptions,
    *,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float | None = None,
) -> Counter:
    """Run `trials` with Ray Tune; returns a Counter of statuses of the trials stored."""
    check_trial_request(cpus_per_trial, gpus_per_trial)
    init(address)
    from ray import tune

    if gpus_per_trial is None:
        import ray

        gpus_per_trial = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    check_cluster_fits(cpus_per_trial, gpus_per_trial)
    check_shared_storage(opts)
    progress = Progress(trials, enabled=opts.progress)
    ingest = _Ingest(store, opts, trials, progress)
    ingest.leftovers(store.finished_run_ids())
    todo = [t for t in trials if t.run_id not in ingest.done]
    if not todo:
        progress.close()
        return ingest.counts

    class Collector(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            t = todo[trial.config["idx"]]
            if result.get("started"):
                ingest.started(t.run_id, result["node"], result["host"])
            elif result.get("env_error"):
                ingest.env_errors.append(result["env_error"])
                progress.finish(t.run_id)
            elif result.get("final"):
                ingest.add(t.run_id, json.loads(result["rows_json"]))
            else:
                stage, epoch, epochs = (
                    result.get("stage"),
                    result.get("epoch"),
                    result.get("epochs"),
                )
                ingest.trained(t.run_id, stage, epoch)
                progress.epoch(t.run_id, f"{t.label()} {stage} {epoch}/{epochs}", stage)

        def on_trial_recover(self, iteration, trials, trial, **info):
            # Its worker or node was lost; Ray starts it again, and it resumes from its checkpoints.
            t = todo[trial.config["idx"]]
            ingest.restarts[t.run_id] += 1
            where = ingest.starts.get(t.run_id, [{}])[-1].get("host", "?")
            progress.write(
                f"restart {ingest.restarts[t.run_id]} of {t.label()}: Ray lost its worker or node "
                f"(on {where}); it resumes from its last epoch checkpoint"
            )

        def on_trial_error(self, iteration, trials, trial, **info):
            # The worker died max_failures + 1 times (crash, lost node): record it, keep going.
            t = todo[trial.config["idx"]]
            err = f"Ray trial error: {getattr(trial, 'error_file', None) or 'worker died'}"
            ingest.add(t.run_id, [failure_row(t, "failed", err, 0.0, 1)])

    trainable = tune.with_resources(
        tune.with_parameters(_trainable, trials=[t.to_dict() for t in todo], opts=opts.to_dict()),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"idx": tune.grid_search(list(range(len(todo))))},
        tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"{store.out_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(Path(opts.out_dir) / "ray_results"),
            failure_config=tune.FailureConfig(max_failures=opts.retries),
            callbacks=[Collector()],
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    finally:
        progress.close()
    if ingest.env_errors:
        head = "\n  ".join(ingest.env_errors[:10])
        raise ExecutorError(
            f"{len(ingest.env_errors)} trial(s) could not run on the cluster (nothing was stored "
            f"for them; fix this and rerun the same command):\n  {head}"
        )
    # Anything Tune finished without a final report (should not happen) is left to the next run.
    ingest.leftovers(store.finished_run_ids() | ingest.done)
    missing = sum(1 for t in trials if t.run_id not in ingest.done)
    if missing:  # e.g. Ctrl+C: Tune stops gracefully and returns
        ingest.counts["unfinished"] = missing  # the provenance block says the sweep stopped early
        print(
            f"stopped with {missing} of {len(trials)} trials unfinished; rerun the same command "
            "to resume them from their checkpoints",
            file=sys.stderr,
        )
    return ingest.counts
