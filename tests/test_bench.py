"""harness.bench: the --quick CPU run (what CI runs) writes the required fields with consistent
ratios; packing runs a worker process (which must not import Ray); the data benchmark runs under
both its names; the smoke profile is the pipeline's; bad arguments exit 2."""

from __future__ import annotations

import json
import math

import pytest

from harness.bench import cli
from harness.bench.anchors import IMPLS
from harness.bench.config import QUICK, SIZE_PROFILES
from hsd.presets import SMOKE_BATCH, SMOKE_SIZE, SMOKE_WIDTH

REQUIRED = (
    "device",
    "config",
    "step_ms",
    "floor_step_ms",
    "step_ratio",
    "peak_gib",
    "floor_peak_gib",
    "mem_ratio",
)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "train.json"
    assert cli.main(["train", "--quick", "--out", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
def test_quick_train_writes_every_implementation_with_required_fields(quick_report):
    rows = quick_report["results"]
    assert [r["impl"] for r in rows] == list(IMPLS)
    for r in rows:
        assert r["status"] == "ok"
        assert all(k in r for k in REQUIRED), [k for k in REQUIRED if k not in r]
        assert r["config"]["T"] == QUICK["T"] and r["config"]["device"] == "cpu"
        assert r["device"].startswith("CPU") and r["peak_method"] == "saved+state"
        assert len(r["step_ms_all"]) == QUICK["repeats"]
    assert quick_report["command"].startswith("python -m harness.bench train --quick")
    assert quick_report["versions"]["torch"] and quick_report["device_type"] == "cpu"
    assert quick_report["torch_threads"] == 1  # --quick pins one thread
    assert {"git_commit", "lean_if_triton", "spikingjelly"} <= set(quick_report["versions"])


def test_quick_train_ratios_are_consistent(quick_report):
    rows = quick_report["results"]
    floor = rows[0]
    assert floor["impl"] == "floor" and floor["step_ratio"] == 1.0 and floor["mem_ratio"] == 1.0
    for r in rows:
        assert r["floor_step_ms"] == floor["step_ms"] and r["floor_peak_gib"] == floor["peak_gib"]
        assert math.isclose(r["step_ratio"], r["step_ms"] / r["floor_step_ms"], rel_tol=1e-3)
        assert math.isclose(r["mem_ratio"], r["peak_gib"] / r["floor_peak_gib"], rel_tol=1e-3)
        assert math.isclose(
            r["frames_per_s"],
            1e3 * QUICK["T"] * QUICK["batch"] / r["step_ms"],
            rel_tol=1e-3,
        )
    # every SNN keeps more for backward than the ReLU floor (the spikes and the neuron's state)
    assert all(r["saved_gib"] > floor["saved_gib"] for r in rows[1:])


@pytest.mark.slow  # starts a worker process that imports torch and SpikingJelly: ~10 s on 2 cores
def test_packing_one_smoke_trial_at_the_pipelines_smoke_size(tmp_path):
    out = tmp_path / "packing.json"
    argv = ["packing", "--profiles", "smoke", "--trials", "1", "--T", "2", "--warmup", "0",
            "--seconds", "0.2", "--threads", "1", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    rep = json.loads(out.read_text())
    (row,) = rep["results"]
    assert row["profile"] == "smoke" and row["trials"] == 1 and row["status"] == "ok"
    assert row["aggregate_frames_per_s"] > 0 and row["speedup_vs_1"] == 1.0
    assert rep["device_type"] == "cpu" and rep["device"].startswith("CPU")
    # the smoke profile is the network `--profile smoke` trains, not a copy of its numbers
    cfg = row["config"]
    assert (cfg["size"], cfg["width"], cfg["batch"]) == (
        SMOKE_SIZE.values["vgg"], SMOKE_WIDTH.values["vgg"], SMOKE_BATCH.values["vgg"]
    )  # fmt: skip
    assert SIZE_PROFILES["smoke"][:3] == (cfg["size"], cfg["width"], cfg["batch"]) and cfg["T"] == 2
    # the worker is a fresh `python -m harness.bench` process: it must run without Ray
    assert row["workers"][0]["ray_imported"] is False


def test_data_bench_runs_and_records_its_command(tmp_path, capsys):
    out = tmp_path / "data.json"
    argv = ["data", "--events", "2000", "--frames", "10", "--repeats", "2", "--samples", "32",
            "--batch", "8", "--size", "16", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    doc = json.loads(out.read_text())
    rows = {r["what"].split(":")[1].strip().split()[0]: r for r in doc["rows"]}
    assert rows["ours"]["identical"] is True and rows["ours"]["rate"] > 0
    assert rows["spikingjelly"]["identical"] is True  # asserted equal inside the bench
    assert rows["tonic"]["identical"] is True  # 2000 events divisible by 10 frames
    assert doc["rows"][-1]["unit"] == "frames/s"
    assert doc["command"] == "python -m harness.bench " + " ".join(argv)
    assert doc["versions"]["torch"] and doc["device"].startswith("CPU")
    assert "integrate: ours" in capsys.readouterr().out


def test_kernels_bench_times_both_sides_of_every_pair(tmp_path, capsys):
    out = tmp_path / "k.json"
    argv = ["kernels", "--quick", "--measures", "qcfs,neuron-eval", "--out", str(out)]
    assert cli.main(argv) == 0
    doc = json.loads(out.read_text())
    assert [(r["measure"], r["net"]) for r in doc["results"]] == [
        ("qcfs", "snn5-qcfs"),
        ("qcfs", "vgg-qcfs"),
        ("neuron-eval", "snn5-lif"),
        ("neuron-eval", "snn5-if-converted"),
        ("neuron-eval", "vgg-lif"),
    ]
    for r in doc["results"]:
        assert len(r["rounds_ms"][r["plain"]]) == len(r["rounds_ms"][r["kernel"]]) == 2
        assert r["speedup"] == pytest.approx(r["plain_ms"] / r["kernel_ms"], rel=0.01)
    assert doc["command"] == "python -m harness.bench " + " ".join(argv)
    assert doc["torch_threads"] == 1 and doc["versions"]["HSD_CPU_SCAN"] == "1"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--quick", "--size", "20"], "multiple of 16"),
        (["train", "--quick", "--impls", "floor,nope"], "unknown implementation"),
        (["train", "--quick", "--impls", "ours-lean"], "start with 'floor'"),
        (["packing", "--quick", "--profiles", "huge"], "unknown profile"),
        (["train", "--quick", "--device", "foo"], "unknown device 'foo'"),
        (["data", "--samples", "8", "--batch", "16"], "exceeds --samples"),
        (["data", "--events", "5", "--frames", "10"], "must be >= --frames"),
        (["kernels", "--quick", "--measures", "pool,nope"], "unknown measure"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path / "x.json")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
