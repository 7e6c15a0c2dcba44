"""Bad requests to the run CLI are answered before any work, with exit code 2 and a message,
and never become results: the cases a careless user or script produces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness_helpers import call_main

from harness.run import main

FAKE = ["--sweep", "latency", "--executor", "local", "--datasets", "n-digits", "--methods",
        "fake", "--T", "1", "--seeds", "1", "--no-progress", "--no-report"]  # fmt: skip


def _run(argv) -> tuple[int, str]:
    cp = call_main(main, argv)
    return cp.returncode, cp.stderr


def _rows(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_missing_device_stores_nothing_and_the_fixed_rerun_trains(data_env, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is valid here")
    out = tmp_path / "o"
    code, err = _run([*FAKE, "--device", "cuda", "--out", out])
    assert code == 2 and "no CUDA device" in err and "Traceback" not in err
    assert not out.exists()  # no folder, no failed row that a rerun would skip
    code, err = _run([*FAKE, "--device", "foo", "--out", out])
    assert code == 2 and "unknown device 'foo'" in err
    code, _ = _run([*FAKE, "--device", "cpu", "--out", out])
    assert code == 0 and {r["status"] for r in _rows(out)} == {"ok"}


def test_equivalent_lists_are_the_same_sweep(data_env, tmp_path):
    out = tmp_path / "o"
    i = FAKE.index("--T")
    base = FAKE[:i] + FAKE[i + 2 :]
    assert _run([*base, "--T", "2,1", "--out", out])[0] == 0
    code, err = _run([*base, "--T", "1,2,2", "--methods", "fake,fake", "--out", out])
    assert code == 0 and "2 already finished, 0 to run" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sweep", "params", "--T", "5"], "trains nothing, so --T would be ignored"),
        (["--sweep", "ablation", "--methods", "hsd"], "--methods applies to the latency sweep"),
        (["--sweep", "latency", "--json"], "--json goes with --dry-run"),
        (["--sweep", "latency", "--gpus-per-trial", "-1"], "--gpus-per-trial must be >= 0"),
        (["--sweep", "latency", "--T", "0"], "--T values must be >= 1"),
        (["--sweep", "latency", "--threads", "0"], "--threads must be >= 1"),
        (["--tune", "--trials", "0"], "--trials must be >= 1"),
        (["--tune", "--sweep", "latency"], "runs no sweep"),
    ],
)
def test_inapplicable_or_impossible_options_exit_2(data_env, tmp_path, args, message):
    code, err = _run([*args, "--executor", "local", "--out", tmp_path / "o"])
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "best, message",
    [
        ({"n-digits": {"kd_lambda": "abc"}}, "n-digits: hsd kd_lambda=abc: 'abc' is not a number"),
        ({"n-digits": {"tau": True}}, "n-digits: hsd tau=True: True is not a number in [1, 20]"),
        ({"n-digits": {"L": 4.5}}, "n-digits: hsd L=4.5: 4.5 is not one of 4, 8, 16, 32"),
        ({"n-digits": {"frames": 3}}, "n-digits: method 'hsd' tunes no frames"),
        ({"n-digits": 3}, "expected {dataset:"),
    ],
)
def test_use_best_is_validated(data_env, tmp_path, best, message):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"best": best}))
    code, err = _run([*FAKE, "--use-best", path, "--out", tmp_path / "o"])
    assert code == 2 and message in err


def test_a_store_with_a_bad_row_is_refused_by_run_and_dry_run_alike(data_env, tmp_path):
    out = tmp_path / "o"
    assert _run([*FAKE, "--out", out])[0] == 0
    store = out / "results.jsonl"
    store.write_text("garbage\n" + store.read_text())
    before = store.read_bytes()
    for extra in ([], ["--dry-run"]):
        code, err = _run([*FAKE, *extra, "--out", out])
        assert code == 2 and "line 1" in err and "Traceback" not in err
        assert store.read_bytes() == before


def test_an_out_under_a_file_is_refused_before_any_data_work(data_env, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = _run([*FAKE, "--out", afile / "x"])
    assert code == 2 and "is a file, not a folder" in err


@pytest.mark.parametrize("flag", ["--root", "--cache-dir"])
def test_a_data_folder_that_is_a_file_exits_2(data_env, tmp_path, flag):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = _run([*FAKE, flag, afile, "--out", tmp_path / "o"])
    assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_tuning_without_the_real_data_exits_2(data_env, tmp_path):
    code, err = _run(
        ["--tune", "--trials", "1", "--datasets", "cifar10-dvs", "--root", tmp_path / "empty",
         "--executor", "local", "--out", tmp_path / "t"]
    )  # fmt: skip
    assert code == 2 and "cifar10-dvs" in err and "Traceback" not in err
    assert not (tmp_path / "t" / "results.jsonl").exists()


def test_dry_run_json_prints_every_resolved_config(data_env, tmp_path, capsys):
    from hsd.config import RunConfig
    from hsd.method import resolve

    argv = ["--sweep", "latency", "--datasets", "n-digits", "--methods", "hsd,sts,tet,dts",
            "--T", "1,3,5", "--seeds", "1", "--dry-run", "--json", "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    by = {}
    for line in lines:
        by.setdefault(line["config"]["method"], []).append(line)
    # 3 HSD runs, 3 STS/TET runs (one run id each, both names), 1 DTS run for every T
    assert {m: len(v) for m, v in by.items()} == {"hsd": 3, "tet": 3, "dts": 1}
    assert all(
        ["latency", "sts"] in x["cells"] and ["latency", "tet"] in x["cells"] for x in by["tet"]
    )
    hsd = by["hsd"][0]["config"]
    preset = resolve(RunConfig("hsd", "n-digits", hsd["T"]))  # the smoke preset's values
    assert (hsd["tau"], hsd["kd_lambda"]) == (preset.tau, preset.kd_lambda)
    assert hsd["options"]["ht"] is True
    assert not (tmp_path / "o").exists()
