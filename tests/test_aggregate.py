"""Aggregation of a fixed, hand-written store gives exact tables (means, stds and Student t
intervals computed by hand)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from harness.common.store import ResultStore
from harness.report import paper
from harness.report.stats import CI_NOTE
from harness.report.tables import build_tables, to_markdown, write_tables


def _ok(run_id, sweep, variant, dataset, T, seed, accs, **extra):
    """One ok run: a row per t with the given accuracies (fractions)."""
    return [
        {
            "run_id": run_id,
            "sweep": sweep,
            "variant": variant,
            "method": variant.lower(),
            "dataset": dataset,
            "T": T,
            "seed": seed,
            "t": t,
            "acc": acc,
            "energy_j": 1e-4 * t,
            "stream_fraction": (10 - T + t) / 10,
            "status": "ok",
            **extra,
        }
        for t, acc in enumerate(accs, start=1)
    ]


def _bad(run_id, sweep, variant, dataset, T, seed, status, error="boom"):
    return [
        {
            "run_id": run_id,
            "sweep": sweep,
            "variant": variant,
            "dataset": dataset,
            "T": T,
            "seed": seed,
            "t": T,
            "acc": None,  # NaN is stored as null
            "status": status,
            "error": error,
        }
    ]


# Chunks (one per run, in file order). Hand computations are next to the tests that use them.
FIXED_CHUNKS = [
    # latency on n-digits: hsd T=5 seeds 0, 1 -> at t=5: 70 and 80 -> mean 75, std 7.07 (n=2),
    # interval 75 ± t(0.975, 1) * 7.07 / sqrt(2) = 75 ± 12.706 * 5 -> [11.47, 138.53]
    _ok("h5s0", "latency", "hsd", "n-digits", 5, 0, [0.5, 0.55, 0.6, 0.65, 0.70]),
    _ok("h5s1", "latency", "hsd", "n-digits", 5, 1, [0.6, 0.65, 0.7, 0.75, 0.80]),
    # hsd T=2, one seed -> 60.00 (no ±)
    _ok("h2s0", "latency", "hsd", "n-digits", 2, 0, [0.5, 0.60]),
    # sts T=5: seed 0 ok (40), seed 1 failed -> "40.00", n=1, non-ok 1
    _ok("s5s0", "latency", "sts", "n-digits", 5, 0, [0.2, 0.25, 0.3, 0.35, 0.40]),
    _bad("s5s1", "latency", "sts", "n-digits", 5, 1, "failed", "RuntimeError: boom"),
    # a retried run: first stored as infeasible, then ok (only the last attempt counts) -> 50.00
    _bad("t5s0", "latency", "tet", "n-digits", 5, 0, "infeasible", "CUDA OOM"),
    _ok("t5s0", "latency", "tet", "n-digits", 5, 0, [0.3, 0.35, 0.4, 0.45, 0.50]),
    # tet at T=3 is not a Table-1 T for n-digits
    _ok("t3s0", "latency", "tet", "n-digits", 3, 0, [0.3, 0.3, 0.33]),
    # ablation on n-digits T=5: HT+SKD 90 and 80 -> 85 ± 63.53 = [21.47, 148.53]; none diverged
    _ok("a1", "ablation", "HT+SKD", "n-digits", 5, 0, [0.5, 0.6, 0.7, 0.8, 0.90]),
    _ok("a2", "ablation", "HT+SKD", "n-digits", 5, 1, [0.5, 0.6, 0.7, 0.7, 0.80]),
    _bad("a3", "ablation", "none", "n-digits", 5, 0, "diverged", "DivergedError: NaN loss"),
    # kd on sim-gestures T=2: three seeds 50, 60, 100 -> mean 70, std sqrt(700) = 26.4575,
    # interval 70 ± t(0.975, 2) * 26.4575 / sqrt(3) = 70 ± 65.72 -> [4.28, 135.72]
    _ok("k1", "kd", "both", "sim-gestures", 2, 0, [0.4, 0.5]),
    _ok("k2", "kd", "both", "sim-gestures", 2, 1, [0.5, 0.6]),
    _ok("k3", "kd", "both", "sim-gestures", 2, 2, [0.9, 1.0]),
    # params: no training, one row per (dataset, arch)
    [
        {
            "run_id": "p1",
            "sweep": "params",
            "variant": "vgg",
            "dataset": "n-digits",
            "params": 9271498,
            "status": "ok",
        }
    ],
    [
        {
            "run_id": "p2",
            "sweep": "params",
            "variant": "snn5",
            "arch_label": "SNN-5",
            "dataset": "sim-gestures",
            "dataset_arch": "snn5",
            "params": 1500000,
            "status": "ok",
        }
    ],
]


def write_fixed_store(out_dir: Path) -> Path:
    """The fixed store as hand-written JSON lines (no store chunk markers), plus its manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row) for chunk in FIXED_CHUNKS for row in chunk]
    (out_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
    (out_dir / "sweep.json").write_text(json.dumps({"sweep": "mixed", "args": {}}))
    return out_dir


@pytest.fixture
def tables(tmp_path):
    rows = ResultStore.existing(write_fixed_store(tmp_path)).rows()
    return build_tables(rows)


STD2 = math.sqrt(50.0)  # two seeds 10 points apart: sqrt((5^2 + 5^2) / 1)
HALF2 = 12.706204736174707 * 5.0  # t(0.975, 1) * STD2 / sqrt(2)


def test_figure2_data_exact(tables):
    f = tables["figure2_data"]
    assert list(zip(f["variant"], f["T"], strict=True)) == [
        ("hsd", 2),
        ("hsd", 5),
        ("sts", 5),
        ("tet", 3),
        ("tet", 5),
    ]
    hsd5 = f[(f["variant"] == "hsd") & (f["T"] == 5)].iloc[0]
    assert hsd5["mean"] == pytest.approx(75.0) and hsd5["std"] == pytest.approx(STD2)
    assert (hsd5["n"], hsd5["non_ok"]) == (2, 0)
    assert (hsd5["ci_low"], hsd5["ci_high"]) == pytest.approx((75.0 - HALF2, 75.0 + HALF2))
    assert hsd5["ci_method"] == "t"
    sts5 = f[f["variant"] == "sts"].iloc[0]
    assert sts5["mean"] == pytest.approx(40.0) and math.isnan(sts5["std"])
    assert math.isnan(sts5["ci_low"]) and sts5["ci_method"] == ""  # one seed: no interval
    assert (sts5["n"], sts5["non_ok"]) == (1, 1)
    tet5 = f[(f["variant"] == "tet") & (f["T"] == 5)].iloc[0]
    assert (tet5["mean"], tet5["n"], tet5["non_ok"]) == (pytest.approx(50.0), 1, 0)


def test_table1_exact_with_separate_paper_columns(tables):
    t1 = tables["table1"]
    assert list(t1.columns) == [
        "variant",
        "T",
        "n-digits (simulated)",
        "n-digits (simulated) n",
        "n-digits (simulated) non-ok",
        "n-digits (simulated) mean",
        "n-digits (simulated) ci_low",
        "n-digits (simulated) ci_high",
        "paper (CIFAR10-DVS)",
        "paper (N-Caltech101)",
        "paper (DVS-Gesture)",
    ]
    assert t1["variant"].tolist() == ["hsd", "sts", "tet"]  # paper order; tet T=3 left out
    assert t1["n-digits (simulated)"].tolist() == ["75.00 [11.47, 138.53]", "40.00", "50.00"]
    assert t1["n-digits (simulated) mean"].tolist() == pytest.approx([75.0, 40.0, 50.0])
    assert t1["n-digits (simulated) ci_high"].iloc[0] == pytest.approx(75.0 + HALF2)
    assert t1["n-digits (simulated) n"].tolist() == [2, 1, 1]
    assert t1["n-digits (simulated) non-ok"].tolist() == [0, 1, 0]
    assert t1["paper (CIFAR10-DVS)"].iloc[0] == 81.10 and t1["paper (DVS-Gesture)"].iloc[0] == 97.57
    assert math.isnan(t1["paper (CIFAR10-DVS)"].iloc[1])  # the paper has no STS row in Table 1
    assert t1["paper (CIFAR10-DVS)"].iloc[2] == 78.80


def test_any_t_curve_uses_largest_T(tables):
    a = tables["figure2_any_t"]
    hsd = a[a["variant"] == "hsd"]
    assert hsd["T"].unique().tolist() == [5] and hsd["t"].tolist() == [1, 2, 3, 4, 5]
    assert hsd["mean"].tolist() == pytest.approx([55.0, 60.0, 65.0, 70.0, 75.0])
    assert hsd["std"].tolist() == pytest.approx([STD2] * 5)
    sts = a[a["variant"] == "sts"]
    assert sts["non_ok"].tolist() == [1] * 5 and sts["n"].tolist() == [1] * 5


def test_ablation_and_kd_tables(tables):
    t2 = tables["table2"]
    assert t2["variant"].tolist() == ["none", "HT+SKD"]  # the paper's row order
    assert t2["n-digits (simulated)"].tolist() == ["–", "85.00 [21.47, 148.53]"]
    assert t2["n-digits (simulated) non-ok"].tolist() == [1, 0]
    assert t2["paper (CIFAR10-DVS)"].tolist() == [73.60, 81.10]
    assert t2["paper (DVS-Gesture)"].tolist() == [94.10, 97.92]
    t6 = tables["table6"]
    assert t6["sim-gestures (simulated)"].tolist() == ["70.00 [4.28, 135.72]"]
    assert t6["paper (CIFAR10-DVS)"].tolist() == [78.40]
    assert "paper (DVS-Gesture)" not in t6  # Table 6 is CIFAR10-DVS only
    assert tables["table3"].empty and tables["table4"].empty


def test_params_and_status(tables):
    t5 = tables["table5"]
    # optional columns: arch_label names the architecture, dataset_arch marks the dataset's own
    assert t5["architecture"].tolist() == ["vgg", "SNN-5"]
    assert t5["params"].tolist() == [9271498, 1500000]
    assert t5["params (M)"].tolist() == [9.27, 1.5]
    assert pd.isna(t5["dataset's arch"].iloc[0]) and t5["dataset's arch"].iloc[1] == "yes"
    st = tables["status"].set_index(["sweep", "variant"])
    assert st.loc[("latency", "sts"), ["ok", "failed", "total"]].tolist() == [1, 1, 2]
    assert st.loc[("latency", "tet"), ["ok", "infeasible"]].tolist() == [2, 0]  # retried run
    assert st.loc[("ablation", "none"), "diverged"] == 1
    fails = tables["failures"]
    assert fails["run_id"].tolist() == ["a3", "s5s1"]
    assert fails["error"].tolist() == ["DivergedError: NaN loss", "RuntimeError: boom"]


def test_energy_and_stream_frames(tables):
    e = tables["energy"]
    hsd5 = e[(e["variant"] == "hsd") & (e["T"] == 5)].iloc[0]
    assert hsd5["energy_j"] == pytest.approx(5e-4) and hsd5["mean"] == pytest.approx(75.0)
    s = tables["stream_fraction"]
    hsd2 = s[(s["variant"] == "hsd") & (s["T"] == 2)].iloc[0]
    assert hsd2["stream_fraction"] == pytest.approx(1.0)
    assert set(e["sweep"]) == {"latency"}


def test_missing_optional_columns_and_empty_rows():
    rows = pd.DataFrame(
        [
            {
                "sweep": "latency",
                "dataset": "cifar10-dvs",
                "method": "hsd",
                "T": 5,
                "t": 5,
                "acc": 0.8,
                "status": "ok",
                "seed": s,
            }
            for s in (0, 1)
        ]
    )
    t = build_tables(rows)
    # variant falls back to method; run ids synthesised per seed; real dataset has no "(simulated)"
    assert t["table1"]["cifar10-dvs"].tolist() == ["80.00 [80.00, 80.00]"]  # no spread
    assert t["table1"]["paper (CIFAR10-DVS)"].tolist() == [81.10]
    empty = build_tables(pd.DataFrame())
    assert all(df.empty for df in empty.values())


def test_percent_accuracy_is_rejected():
    rows = pd.DataFrame(
        [
            {
                "sweep": "latency",
                "dataset": "n-digits",
                "variant": "hsd",
                "T": 1,
                "t": 1,
                "acc": 81.0,
                "status": "ok",
            }
        ]
    )
    with pytest.raises(ValueError, match="fraction"):
        build_tables(rows)


def test_markdown_formatter():
    df = pd.DataFrame({"a": ["x|y", None], "b": [1.5, float("nan")], "c": [3, 4]})
    assert to_markdown(df) == (
        "| a | b | c |\n| --- | ---: | ---: |\n| x\\|y | 1.50 | 3 |\n| – | – | 4 |\n"
    )


def test_write_tables(tmp_path):
    rows = ResultStore.existing(write_fixed_store(tmp_path / "s")).rows()
    written = write_tables(rows, tmp_path / "tables")
    assert "table3" not in written  # empty tables are skipped
    md = written["table1"][1].read_text()
    # Markdown: the formatted cell with n beside it, the numbers behind it left to the CSV, and
    # the note on how the interval is computed under the table
    assert md.startswith(
        "| variant | T | n-digits (simulated) | n-digits (simulated) n | "
        "n-digits (simulated) non-ok | paper (CIFAR10-DVS) |"
    )
    assert "| hsd | 5 | 75.00 [11.47, 138.53] | 2 | 0 | 81.10 |" in md
    assert md.rstrip().endswith(CI_NOTE) and "ci_low" not in md
    back = pd.read_csv(written["table2"][0])
    assert back["paper (N-Caltech101)"].tolist() == [73.58, 80.20]
    assert back["n-digits (simulated) ci_low"].tolist() == pytest.approx(
        [math.nan, 85 - HALF2], nan_ok=True
    )


def test_paper_numbers_only_for_real_datasets():
    for table in paper.TABLES.values():
        for per_dataset in table.values():
            assert set(per_dataset) <= set(paper.PAPER_DATASETS)
    long = paper.paper_long("table1")
    assert long[(long["variant"] == "hsd") & (long["T"] == 10)]["paper_acc"].tolist() == [97.92]


def test_retried_run_through_the_store_counts_once(tmp_path):
    """Rows appended by the store (chunk markers): a run stored as failed, then retried and ok."""
    store = ResultStore.open(tmp_path, {"sweep": "latency", "args": {}})
    store.append(_bad("r", "latency", "hsd", "n-digits", 2, 0, "failed"))
    ok = _ok("r", "latency", "hsd", "n-digits", 2, 0, [0.5, 0.75], options={"ht": True})
    store.append(ok)
    store.append(_ok("q", "latency", "hsd", "n-digits", 2, 1, [0.5, 0.25]))
    t = build_tables(store.rows())
    assert t["table1"].empty  # T = 2 is not a paper T
    f = t["figure2_data"].iloc[0]
    assert (f["mean"], f["std"], f["n"], f["non_ok"]) == (
        50.0,
        pytest.approx(math.sqrt(1250)),
        2,
        0,
    )
    assert t["status"][["ok", "failed", "total"]].values.tolist() == [[2, 0, 2]]


def test_status_counts_ray_restarts_per_cell(tmp_path):
    """Rows of the Ray executor carry `restarts`: the status table sums them over each cell's runs
    (each run once, whatever its number of rows); stores without the field get no column."""
    store = ResultStore.open(tmp_path, {"sweep": "latency", "args": {}})
    store.append(_ok("a", "latency", "hsd", "n-digits", 2, 0, [0.5, 0.75], restarts=2))
    store.append(_ok("b", "latency", "hsd", "n-digits", 2, 1, [0.5, 0.25], restarts=1))
    store.append(_ok("c", "latency", "sts", "n-digits", 2, 0, [0.5, 0.25], restarts=0))
    st = build_tables(store.rows())["status"].set_index("variant")
    assert st.loc["hsd", ["ok", "total", "restarts"]].tolist() == [2, 2, 3]
    assert st.loc["sts", ["ok", "total", "restarts"]].tolist() == [1, 1, 0]
    plain = ResultStore.open(tmp_path / "local", {"sweep": "latency", "args": {}})
    plain.append(_ok("d", "latency", "hsd", "n-digits", 2, 0, [0.5, 0.75]))
    assert "restarts" not in build_tables(plain.rows())["status"]
