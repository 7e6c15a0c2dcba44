"""harness.bench: the --quick CPU run (what CI runs) writes the required fields with consistent
ratios; packing runs a worker process (which must not import Ray); bad arguments exit 2."""

from __future__ import annotations

import json
import math

import pytest

from harness import bench

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
    assert bench.main(["train", "--quick", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_quick_train_writes_every_implementation_with_required_fields(quick_report):
    rows = quick_report["results"]
    assert [r["impl"] for r in rows] == list(bench.IMPLS)
    for r in rows:
        assert r["status"] == "ok"
        assert all(k in r for k in REQUIRED), [k for k in REQUIRED if k not in r]
        assert r["config"]["T"] == bench.QUICK["T"] and r["config"]["device"] == "cpu"
        assert r["device"].startswith("CPU") and r["peak_method"] == "saved+state"
        assert len(r["step_ms_all"]) == bench.QUICK["repeats"]
    assert quick_report["command"].startswith("python -m harness.bench train --quick")
    assert quick_report["versions"]["torch"] and quick_report["device_type"] == "cpu"


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
            1e3 * bench.QUICK["T"] * bench.QUICK["batch"] / r["step_ms"],
            rel_tol=1e-3,
        )
    # every SNN keeps more for backward than the ReLU floor (the spikes and the neuron's state)
    assert all(r["saved_gib"] > floor["saved_gib"] for r in rows[1:])


def test_quick_packing_one_trial(tmp_path):
    out = tmp_path / "packing.json"
    assert bench.main(["packing", "--quick", "--trials", "1", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    (row,) = rep["results"]
    assert row["profile"] == "smoke" and row["trials"] == 1 and row["status"] == "ok"
    assert row["aggregate_frames_per_s"] > 0 and row["speedup_vs_1"] == 1.0
    assert rep["device_type"] == "cpu" and rep["device"].startswith("CPU")
    # the worker is a fresh `python -m harness.bench` process: it must run without Ray
    assert row["workers"][0]["ray_imported"] is False


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--quick", "--size", "20"], "multiple of 16"),
        (["train", "--quick", "--impls", "floor,nope"], "unknown implementation"),
        (["train", "--quick", "--impls", "ours-lean"], "start with 'floor'"),
        (["packing", "--quick", "--profiles", "huge"], "unknown profile"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys, tmp_path):
    assert bench.main([*argv, "--out", str(tmp_path / "x.json")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
