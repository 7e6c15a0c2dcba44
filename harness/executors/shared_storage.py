"""Before the first trial on a multi-node Ray cluster: every node sees the driver's --out, data
root and frame cache.

A node without the shared mount would train with checkpoints no other node can resume, and write
the per-sample outcomes (the early-exit data) where the report never looks. So, with more than one
alive node, the driver writes a token into ``<out>/.node-check/``; a zero-CPU task pinned to each
node reads it, writes a token of its own beside it, and checks that it sees the entries the driver
sees in the data root and the frame cache; then the driver reads every node's token back. A node
that fails stops the sweep (`ExecutorError`, exit 2) naming the node, the path and what to mount,
before any trial runs, so no row is written.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
from pathlib import Path

from harness.executors import ExecOptions, ExecutorError

CHECK_DIR = ".node-check"
LISTED = 20  # entries of the data root and frame cache each node must see
TIMEOUT_S = 120.0  # a node's check task, including a worker start-up


def shared_paths(opts: ExecOptions) -> dict[str, Path]:
    """What every node must see at the same path, by the name a user knows it by."""
    from hsd.data.cache import default_cache_dir
    from hsd.data.datasets import default_data_dir

    return {
        "--out": Path(opts.out_dir),
        "the data root (--root)": Path(opts.root) if opts.root else default_data_dir(),
        "the frame cache (--cache-dir)": Path(opts.cache_dir)
        if opts.cache_dir
        else default_cache_dir(),
    }


def _listing(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))[:LISTED]
    except OSError:
        return []


def node_view(check: str, driver_token: str, node_token: str, node_id: str, expect: dict) -> dict:
    """Runs on one node: what it cannot see of the driver's folders (empty when all is well)."""
    problems = []
    check_dir = Path(check)
    try:
        seen = (check_dir / "driver.token").read_text()
    except OSError as err:
        seen = f"unreadable ({err.strerror})"
    if seen != driver_token:
        problems.append(("--out", f"the driver's token {check_dir / 'driver.token'} is {seen!r}"))
    else:
        try:
            (check_dir / f"{node_id}.token").write_text(node_token)
        except OSError as err:
            problems.append(("--out", f"cannot write {check_dir}: {err.strerror}"))
    for name, (path, entries) in expect.items():
        missing = [e for e in entries if not os.path.exists(os.path.join(path, e))]
        if missing:
            problems.append((name, f"{len(missing)} of the driver's entries are missing there, "
                                   f"e.g. {missing[0]!r}"))  # fmt: skip
    return {"host": socket.gethostname(), "problems": problems}


def check_shared_storage(opts: ExecOptions) -> None:
    """ExecutorError unless every alive node of a multi-node cluster sees the driver's folders."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2:
        return
    paths = shared_paths(opts)
    check_dir = Path(opts.out_dir) / CHECK_DIR
    check_dir.mkdir(parents=True, exist_ok=True)
    driver_token = secrets.token_hex(8)
    (check_dir / "driver.token").write_text(driver_token)
    expect = {
        name: (str(p), _listing(p)) for name, p in paths.items() if name != "--out" and p.is_dir()
    }
    task = ray.remote(num_cpus=0)(node_view)
    try:
        tokens, pending = {}, {}
        for n in nodes:
            node_id = n["NodeID"]
            tokens[node_id] = secrets.token_hex(8)
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            pending[node_id] = task.options(scheduling_strategy=strategy).remote(
                str(check_dir), driver_token, tokens[node_id], node_id, expect
            )
        for n in nodes:
            node_id = n["NodeID"]
            where = f"{n.get('NodeManagerHostname')} ({n.get('NodeManagerAddress')}, Ray node {node_id[:12]})"
            try:
                view = ray.get(pending[node_id], timeout=TIMEOUT_S)
            except Exception as err:  # noqa: BLE001 - a node that cannot even run the check
                raise ExecutorError(
                    f"node {where} did not answer the shared-storage check within "
                    f"{TIMEOUT_S:g} s ({type(err).__name__}: {str(err)[:300]}); check that the node "
                    "has this Python environment and sees --out, then rerun"
                ) from None
            problems = list(view["problems"])
            token_file = check_dir / f"{node_id}.token"
            if not problems and _read(token_file) != tokens[node_id]:
                problems.append(("--out", f"it wrote {token_file}, which the driver cannot read"))
            if problems:
                name, why = problems[0]
                path = paths[name]
                raise ExecutorError(
                    f"node {where} does not see {name} {path} as the driver does: {why}. Every "
                    f"node of the Ray cluster needs {path} on shared storage mounted at the same "
                    "path (NFS, Lustre, ...); mount it there, or leave that node out. Nothing "
                    "was run"
                )
    finally:
        shutil.rmtree(check_dir, ignore_errors=True)
    print(
        f"shared storage: all {len(nodes)} Ray nodes see --out, the data root and the frame cache",
        file=sys.stderr,
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
