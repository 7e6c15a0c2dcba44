"""Every command line answers random input the same way: exit code 0 or 2, never a traceback, and
an existing store byte-identical whenever the answer is 2 (seeded random argument vectors)."""

from __future__ import annotations

import contextlib
import io
import random
from pathlib import Path

import pytest
from harness_helpers import run_cli

CASES_PER_CLI = 40


def _call(main, argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own exits (--help, usage errors)
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, err.getvalue()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_store(data_env, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "store"
    cp = run_cli(
        ["--sweep", "latency", "--executor", "local", "--datasets", "n-digits", "--methods",
         "fake", "--T", "1", "--seeds", "1", "--out", out, "--no-report", "--no-progress"]
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    return out


def _run_argv(rng: random.Random, store: Path, tmp: Path) -> list[str]:
    # Anything that would train for real is kept to the fake method or a dry run.
    pick = rng.choice
    argv = []
    for flag, values in [
        ("--sweep", ["latency", "all", "params", "nope", "kd", ""]),
        ("--datasets", ["n-digits", "mnist", "n-digits,n-digits", ",", "cifar10-dvs"]),
        ("--methods", ["fake", "nosuch", "fake,fake", "hsd"]),
        ("--T", ["1", "0", "-3", "2,1", "x", "99"]),
        ("--seeds", ["1", "0", "-1", "abc"]),
        ("--profile", ["smoke", "paper", "huge"]),
        ("--device", ["cpu", "foo", "cuda:7", ""]),
        ("--retries", ["0", "-2"]),
        ("--threads", ["1", "0"]),
        ("--cpus-per-trial", ["1", "-1", "0"]),
        ("--gpus-per-trial", ["-1", "nan", "0"]),
        ("--use-best", [str(tmp / "missing.json"), str(store / "results.jsonl")]),
        ("--out", [str(store), str(store / "results.jsonl" / "x"), "a" * 300]),
        ("--trials", ["0", "2"]),
    ]:
        if rng.random() < 0.35:
            argv += [flag, pick(values)]
    for flag in ("--tune", "--json", "--multi-objective", "--debug"):
        if rng.random() < 0.15:
            argv.append(flag)
    trains = "--dry-run" not in argv and rng.random() < 0.5
    argv += ["--executor", "local", "--no-progress", "--no-report"]
    if "--out" not in argv:
        argv += ["--out", str(tmp / f"fresh{rng.randrange(10**6)}")]
    if not trains:
        argv.append("--dry-run")
    elif "--methods" not in argv:
        argv += ["--methods", "fake", "--T", "1", "--seeds", "1"]
    return argv


@pytest.mark.slow
def test_run_cli_fuzz(data_env, finished_store, tmp_path):
    from harness.run import main

    rng = random.Random(0)
    before = _snapshot(finished_store)
    codes = []
    for _ in range(CASES_PER_CLI):
        argv = _run_argv(rng, finished_store, tmp_path)
        if "--tune" in argv and "--dry-run" not in argv:
            argv.append("--dry-run")  # a real study would train; its checks run before that
        code, err = _call(main, argv)
        codes.append(code)
        assert code in (0, 2), (argv, err[-1500:])
        assert "Traceback" not in err or "--debug" in argv, (argv, err[-1500:])
        if code == 2:
            assert err.strip(), argv  # a message says why
            assert _snapshot(finished_store) == before, argv
    assert 2 in codes and 0 in codes  # the generator reaches both answers


@pytest.mark.slow
def test_report_cli_fuzz(finished_store, tmp_path):
    from harness.report import main

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "results.jsonl").write_text('{"foo": 1}\nnot json\n')
    (garbage / "sweep.json").write_text("{}")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    rng = random.Random(1)
    targets = [str(finished_store), str(garbage), str(a_file), str(tmp_path / "none"), ""]
    before = _snapshot(finished_store)
    for _ in range(CASES_PER_CLI // 4):
        argv = [rng.choice(targets)] + (["--no-plots"] if rng.random() < 0.8 else [])
        argv += rng.choice([[], ["--bogus"], ["extra"], ["--compare", rng.choice(targets)]])
        code, err = _call(main, argv)
        assert code in (0, 2), (argv, err[-1500:])
        assert "Traceback" not in err, (argv, err[-1500:])
    assert {k: v for k, v in _snapshot(finished_store).items() if "results.jsonl" in k} == {
        k: v for k, v in before.items() if "results.jsonl" in k
    }


def test_train_cli_fuzz(data_env, tmp_path):
    from hsd.train import main

    rng = random.Random(2)
    for _ in range(CASES_PER_CLI // 2):
        argv = ["--method", rng.choice(["hsd", "tett", "dts", "sltt-k"])]
        argv += ["--dataset", rng.choice(["n-digits", "mnist"])]
        argv += ["--T", rng.choice(["0", "abc", "-1"])]  # never a T that trains
        for flag, values in [
            ("--device", ["cpu", "foo", "cuda"]),
            ("--option", ["ht=false", "K=99", "nonsense", "distill=banana"]),
            ("--neuron", ["banana", "lif"]),
            ("--lr", ["-1", "nan", "0.1"]),
            ("--out", [str(tmp_path / "r.json"), str(tmp_path), "/proc/none/x.json"]),
        ]:
            if rng.random() < 0.4:
                argv += [flag, rng.choice(values)]
        code, err = _call(main, argv)
        assert code == 2, (argv, err[-1500:])
        assert "Traceback" not in err and err.strip(), (argv, err[-1500:])
