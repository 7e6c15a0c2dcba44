"""Every command of the README, run twice in a row as written, does what a user expects the second
time: the single-run CLI overwrites its result file, a sweep finishes at once (finished runs are
skipped), a report rebuilds the same tables, a dry run prints the same plan.

Each command runs on simulated data at a reduced budget (extra arguments: one epoch, the fake
method, one T and one seed), or with --dry-run where it trains at length; a command that starts
no Ray runs in the test process through the module's `main`, the others in a fresh interpreter.
Commands that need a GPU, a cluster or real data are exempt, each with its reason; a README
command in neither list fails `test_every_readme_command_is_run_twice_or_exempt`, so a new one
gets a decision.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness_helpers import call_main

REPO = Path(__file__).resolve().parents[1]
FAKE_SWEEP = ["--datasets", "n-digits", "--methods", "fake", "--T", "1", "--seeds", "1"]
ONE_EPOCH = ["--epochs", "1", "--pre-epochs", "1"]
# the input of the report commands: a fake latency sweep into runs/latency, without its report
FAKE_SWEEP_RUN = [
    "python", "-m", "harness.run", "--sweep", "latency", "--executor", "local", "--no-report",
    *FAKE_SWEEP,
]  # fmt: skip


@dataclass(frozen=True)
class Twice:
    extra: list[str] = field(default_factory=list)  # appended to the command as written
    expect: str = "same"  # what the second run does (see `check_second_run`)
    out: str = ""  # the file or folder the command writes, relative to its working folder
    setup: list[str] = field(default_factory=list)  # a command run once before (its input)
    files: str = "tables/*"  # what "rebuilds" compares, relative to `out`
    results: bool = False  # the command reads the committed results/ (linked, never written)


TWICE = {
    "python -m harness.run --sweep latency": Twice(FAKE_SWEEP, "skips", "runs/latency"),
    "python -m hsd.train --method hsd --dataset n-digits --T 2 --out result.json": Twice(
        ONE_EPOCH, "overwrites", "result.json"
    ),
    "python -m hsd.train --method sltt-k --dataset sim-gestures --T 5 --option K=2": Twice(
        ["--epochs", "1"], "overwrites", "result.json"
    ),
    "python -m hsd.train --method hsd --dataset n-digits --T 3 --option ht=false --option distill=skd": Twice(
        ONE_EPOCH, "overwrites", "result.json"
    ),
    "python -m harness.run --sweep latency --dry-run": Twice(expect="same"),
    "python -m harness.run --sweep latency --dry-run --json": Twice(expect="same"),
    "python -m harness.run --sweep ablation": Twice(["--dry-run"]),
    "python -m harness.run --sweep quantization": Twice(["--dry-run"]),
    "python -m harness.run --sweep ht": Twice(["--dry-run"]),
    "python -m harness.run --sweep kd": Twice(["--dry-run"]),
    "python -m harness.run --sweep params": Twice(expect="skips", out="runs/params"),
    "python -m harness.run --sweep all": Twice(["--dry-run"]),
    "python -m harness.run --tune --trials 12 --datasets n-digits": Twice(["--dry-run"]),
    "python -m harness.run --tune --methods sltt --trials 12 --datasets n-digits --out runs/tune-sltt": Twice(
        ["--dry-run"]
    ),
    "python -m harness.run --sweep ablation --use-best runs/tune/best_params.json": Twice(
        ["--dry-run"], setup=["best_params"]
    ),
    "python -m harness.report runs/latency": Twice(
        expect="rebuilds",
        out="runs/latency",
        setup=FAKE_SWEEP_RUN,
    ),  # fmt: skip
    "python -m harness.run --sweep latency --out runs/latency": Twice(
        FAKE_SWEEP, "skips", "runs/latency"
    ),
    "python -m harness.run --sweep latency --executor local --datasets n-digits --methods hsd,sts --T 1 --seeds 3 --threads 2 --out runs/threads2": Twice(
        ["--dry-run"]
    ),
    "python -m harness.report runs/latency --compare results/latency-smoke": Twice(
        expect="rebuilds",
        out="runs/latency/compare-latency-smoke",
        files="cells.csv",
        results=True,
        setup=FAKE_SWEEP_RUN,
    ),
    "python -m harness.report runs/threads2 --compare results/latency-smoke": Twice(
        expect="rebuilds",
        out="runs/threads2/compare-latency-smoke",
        files="cells.csv",
        results=True,
        setup=[*FAKE_SWEEP_RUN, "--out", "runs/threads2"],
    ),
    "python -m harness.data probe --dataset sim-gestures --out results/probe/sim-gestures.json": Twice(
        ["--epochs", "1", "--seeds", "1"], "overwrites", "results/probe/sim-gestures.json"
    ),
    "python -m harness.bench data": Twice(
        [
            "--events",
            "2000",
            "--frames",
            "4",
            "--repeats",
            "2",
            "--samples",
            "16",
            "--size",
            "8",
            "--batch",
            "8",
            "--out",
            "bench.json",
        ],
        "overwrites",
        "bench.json",
    ),  # fmt: skip
    "python -m harness.bench train --quick": Twice(
        ["--out", "bench.json"], "overwrites", "bench.json"
    ),
    "python -m harness.bench packing": Twice(
        ["--quick", "--trials", "1", "--seconds", "1", "--out", "bench.json"],
        "overwrites",
        "bench.json",
    ),
    "python -m harness.bench kernels": Twice(
        ["--quick", "--measures", "qcfs", "--out", "bench.json"], "overwrites", "bench.json"
    ),
}

EXEMPT = {
    'pip install -c requirements.lock -e ".[dev]"': "installs the package (network)",
    "python -m pytest -q": "the test suite itself",
    'python -m pytest -q -m "not slow"': "the test suite itself",
    "ruff check . && ruff format --check .": "a development check that writes nothing",
    "python -m harness.data info --dataset cifar10-dvs --root /data": "real data",
    "python -m harness.data prepare --dataset cifar10-dvs --root /data --frames 10 --size 48": "real data",
    "python -m harness.run --sweep latency --profile paper --datasets cifar10-dvs,n-caltech101 --root /data": "real data, GPUs",
    "ray start --head --port=6379 --num-gpus=8": "a cluster",
    "ray start --address=HEAD_IP:6379": "a cluster",
    "python -m harness.run --sweep all --profile paper --root /shared/data --address HEAD_IP:6379 --gpus-per-trial 0.5 --out /shared/runs/paper": "a cluster, real data",
    "python -m harness.bench train": "full size on a GPU",
    "bash results/bench/gpu_check.sh": "a GPU",
    "python -m harness.report A --compare B": "placeholders; run twice above with real folders",
    "python -m harness.report A --compare B --compare-out DIR": "placeholders, as above",
    "python -m harness.slurm --nodes 2 --gpus-per-node 4 --time 12:00:00 --partition gpu -- --sweep latency --profile paper --root /shared/data --out /shared/runs/latency": "a SLURM cluster, real data (tests/test_slurm.py submits its script to a real SLURM)",
}  # fmt: skip


def readme_commands() -> list[str]:
    """The commands of the README's bash blocks, comments dropped, continued lines joined."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip())
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    return list(dict.fromkeys(commands))


def test_every_readme_command_is_run_twice_or_exempt():
    commands = set(readme_commands())
    assert commands == set(TWICE) | set(EXEMPT), (
        f"not covered: {sorted(commands - set(TWICE) - set(EXEMPT))}; "
        f"no longer in the README: {sorted((set(TWICE) | set(EXEMPT)) - commands)}"
    )
    assert not set(TWICE) & set(EXEMPT)


# The module whose `main` a `python -m` command calls, for the commands that start no Ray: they run
# in this process, sparing a fresh interpreter's imports (torch, pandas, ...) on every run.
MAINS = {
    "hsd.train": "hsd.train",
    "harness.data": "harness.data",
    "harness.bench": "harness.bench.cli",
    "harness.report": "harness.report.build",
    "harness.run": "harness.run",  # only a dry run or the local executor (`_without_ray`)
}


def _without_ray(argv: list[str]) -> bool:
    if argv[:2] != ["python", "-m"] or argv[2] not in MAINS:
        return False
    if argv[2] != "harness.run":
        return True
    local = any(a == "--executor" and b == "local" for a, b in zip(argv, argv[1:], strict=False))
    return "--dry-run" in argv or local


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if _without_ray(argv):
        return call_main(importlib.import_module(MAINS[argv[2]]).main, argv[3:], cwd)
    if argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a Ray started here serves this test only
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=420)


def _files(folder: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob(pattern))}


def _setup(case: Twice, cwd: Path) -> None:
    if case.results:
        (cwd / "results").symlink_to(REPO / "results", target_is_directory=True)
    if case.setup == ["best_params"]:  # what --tune writes: {"method", "best": {dataset: {...}}}
        point = {"kd_lambda": 0.5, "tau": 4.0, "L": 8, "lr": 2e-3, "T": 5}
        best = {"method": "hsd", "best": {"n-digits": point}}
        (cwd / "runs" / "tune").mkdir(parents=True)
        (cwd / "runs" / "tune" / "best_params.json").write_text(json.dumps(best))
    elif case.setup:
        cp = _run(case.setup, cwd)
        assert cp.returncode == 0, cp.stderr[-3000:]


def _result(cwd: Path, case: Twice) -> dict:
    doc = json.loads((cwd / case.out).read_text())
    if "rows" in doc and "config" in doc:  # hsd.train: the run, not its wall time
        return {"config": doc["config"], "acc": [r["acc"] for r in doc["rows"]]}
    return {"keys": sorted(doc)}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(TWICE))
def test_a_readme_command_run_twice(command, data_env, tmp_path):
    case = TWICE[command]
    _setup(case, tmp_path)
    argv = [*shlex.split(command), *case.extra]
    first = _run(argv, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / case.out
    before = {
        "overwrites": lambda: _result(tmp_path, case),
        "skips": lambda: _files(out, "results.jsonl") | _files(out, "tables/*"),
        "rebuilds": lambda: _files(out, case.files),
        "same": lambda: first.stdout,
    }[case.expect]()
    second = _run(argv, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    if case.expect == "overwrites":  # the same result, written whole over the first
        assert _result(tmp_path, case) == before
        assert not list(tmp_path.glob(".*.tmp"))
    elif case.expect == "skips":  # finished at once: nothing run, same rows, same tables
        assert re.search(r": \d+ runs, (\d+) already finished, 0 to run", second.stderr)
        assert _files(out, "results.jsonl") | _files(out, "tables/*") == before
    elif case.expect == "rebuilds":
        assert before and _files(out, case.files) == before
    else:  # a dry run (or a plan) prints the same and writes nothing
        assert second.stdout == before and before.strip()
        assert not (tmp_path / "runs").exists() or case.setup
