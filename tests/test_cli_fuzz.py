"""Every command line answers random input the same way: exit code 0 or 2, never a traceback, and
an existing store byte-identical whenever the answer is 2 (seeded random argument vectors); and
what a command accepts means what it says: every resolved config holds only values of the
declared types (each option a normalised value of its method's declaration, each field of its
`RunConfig` type), so two spellings of one value can never become two run ids."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from harness_helpers import call_main, run_cli

CASES_PER_CLI = 40


def _call(main, argv) -> tuple[int, str]:
    cp = call_main(main, argv)
    return cp.returncode, cp.stderr


METHOD_NAMES = ("hsd", "tet", "sts", "dts", "ce", "sltt", "sltt-k", "tcja", "kd-response",
                "kd-feature", "kd-both", "fake")  # fmt: skip
# RunConfig's annotations as the types a resolved value must have (None: left unset).
FIELD_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def assert_declared_types(cfg) -> None:
    """A resolved config holds only values of the declared types: options by their method's
    declaration (`hsd.params`), fields by RunConfig's annotations (an int is not a float)."""
    from hsd import params
    from hsd.method import METHODS

    declared = METHODS[cfg.method].options
    assert sorted(declared) == sorted(dict(cfg.options)), cfg  # every option, normalised
    for name, value in cfg.options:
        assert params.declared(declared[name]).holds(value), (cfg.method, name, value)
    for f in dataclasses.fields(cfg):
        if f.name == "options":
            continue
        value, kinds = getattr(cfg, f.name), [k.strip() for k in str(f.type).split("|")]
        allowed = tuple(FIELD_TYPES[k] for k in kinds if k in FIELD_TYPES)
        assert (value is None and "None" in kinds) or type(value) in allowed, (f.name, value)


def _resolved(argv) -> list:
    """The resolved configs an accepted run command plans (its own parser, checks and plan)."""
    from harness import run
    from harness import run_cli as RC
    from harness.common import sweeps as S

    args = RC.build_parser().parse_args(argv)
    RC.normalise(args)
    if args.tune:
        from harness import tune

        method = args.methods[0] if args.methods else "hsd"
        datasets = args.datasets or S.DEFAULT_DATASETS
        T = args.T[0] if args.T else None
        return [
            tune.make_trial(d, tune.default_point(method), args.profile, T, method).cfg
            for d in datasets
        ]
    return [t.cfg for t in run.plan(args)]


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


def _best(tmp: Path) -> str:
    """A hand-written best_params.json: integers where the fields are floats."""
    path = tmp / "best.json"
    path.write_text(json.dumps({"best": {"n-digits": {"kd_lambda": 1, "tau": 4, "L": 8}}}))
    return str(path)


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
        ("--use-best", [str(tmp / "missing.json"), str(store / "results.jsonl"), _best(tmp)]),
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
        else:
            for cfg in _resolved(argv):
                assert_declared_types(cfg)
    assert 2 in codes and 0 in codes  # the generator reaches both answers
    # Seeds the generator reaches rarely: every method, every sweep, a hand-written --use-best.
    for extra in (
        ["--sweep", "latency", "--methods", ",".join(n for n in METHOD_NAMES)],
        ["--sweep", "all", "--use-best", _best(tmp_path)],
        ["--tune", "--datasets", "n-digits"],
    ):
        argv = [*extra, "--dry-run", "--executor", "local", "--out", str(tmp_path / "seeded")]
        code, err = _call(main, argv)
        assert code == 0, (argv, err[-1500:])
        for cfg in _resolved(argv):
            assert_declared_types(cfg)


@pytest.mark.slow
def test_report_cli_fuzz(finished_store, tmp_path):
    from harness.report.build import main

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


OPTION_TEXTS = ["true", "True", "1", "yes", "OFF", "0", "2", "maybe", "", "none", "skd", "SKD",
                "kd", "x", "16", "0.5", "-1", "3", "mse", "affine", "raw", "classmean"]  # fmt: skip


def test_train_cli_option_fuzz_accepts_only_declared_types(data_env, tmp_path, monkeypatch):
    """Random --option names and values for every method through the single-run CLI (training
    replaced by a stub that keeps the config): exit 0 or 2, and an accepted run's config holds
    only values of the declared types."""
    import hsd.execute
    from hsd.method import METHODS
    from hsd.train import main

    seen = []

    def fake_execute(cfg, **kw):
        seen.append(cfg)
        return [{"t": 1, "acc": 0.5, "stream_fraction": 1.0, "energy_j": 0.0}]

    monkeypatch.setattr(hsd.execute, "execute", fake_execute)
    rng = random.Random(3)
    names = sorted({o for m in METHODS.names() for o in METHODS[m].options} | {"bogus"})
    accepted = refused = 0
    for _ in range(CASES_PER_CLI * 2):
        method = rng.choice([m for m in METHODS.names() if not m.startswith("fake")])
        argv = ["--method", method, "--dataset", rng.choice(["n-digits", "sim-gestures"])]
        argv += ["--T", rng.choice(["1", "3", "5"]), "--device", "cpu"]
        for _ in range(rng.randrange(4)):
            argv += ["--option", f"{rng.choice(names)}={rng.choice(OPTION_TEXTS)}"]
        argv += ["--out", str(tmp_path / "r.json")]
        before = len(seen)
        code, err = _call(main, argv)
        assert code in (0, 2) and "Traceback" not in err, (argv, err[-1500:])
        if code == 0:
            accepted += 1
            assert len(seen) == before + 1
            assert_declared_types(seen[-1])
        else:
            refused += 1
            assert err.strip() and len(seen) == before, argv
    assert accepted > 10 and refused > 10  # both answers are reached often
