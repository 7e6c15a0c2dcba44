"""`python -m harness.report A --compare B`: two small stores written here, exact differences
(paired by seed where run ids match, Welch otherwise), a claim whose verdict changes, runs in one
store only, how the stores were made differently, and exit code 2 on a missing or empty store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats as sps
from test_aggregate import _ok

from harness.report import store_compare
from harness.report.build import main

T975_2 = 4.302652729749464  # Student t quantile t(0.975, 2 degrees of freedom)

# Committed run B and rerun A, n-digits at T = 1, three seeds (accuracy in %):
#   hsd: same run ids; B 80, 82, 84 and A 81, 83, 86 -> paired differences 1, 1, 2
#   sts: a recipe change (epochs 6 -> 10) gives new run ids; B 70, 85, 75 and A 40, 42, 44 (Welch)
#   dts: same run ids and the same numbers in both -> identical
# Claims: "HSD > STS at low T" B 10, −3, 9 (inconclusive), A 41, 41, 42 (supported);
# "STS > DTS at low T" B 20, 33, 24 (supported), A −10, −10, −7 (not supported).
# B alone holds a TET run at T = 5.
HSD_B, HSD_A = (80, 82, 84), (81, 83, 86)
STS_B, STS_A = (70, 85, 75), (40, 42, 44)
DTS = (50, 52, 51)


def _store(out: Path, cells, *, commit: str, machine: str) -> Path:
    chunks = []
    for variant, prefix, accs, extra in cells:
        for seed, acc in enumerate(accs):
            T = 5 if variant == "tet" else 1
            chunks.append(
                _ok(f"{prefix}{seed}", "latency", variant, "n-digits", T, seed, [acc / 100] * T,
                    git_commit=commit, **extra)
            )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for c in chunks for r in c))
    (out / "sweep.json").write_text(json.dumps({"sweep": "latency", "args": {"seeds": 3}}))
    (out / "COMMAND.txt").write_text(f"command: python -m harness.run\nmachine: {machine}\n")
    return out


@pytest.fixture
def stores(tmp_path):
    b = _store(
        tmp_path / "committed",
        [
            ("hsd", "h", HSD_B, {"epochs": 6}),
            ("sts", "s", STS_B, {"epochs": 6}),
            ("dts", "d", DTS, {"epochs": 6}),
            ("tet", "t", (40,), {"epochs": 6}),
        ],
        commit="bbb",
        machine="vm-1",
    )
    a = _store(
        tmp_path / "rerun",
        [
            ("hsd", "h", HSD_A, {"epochs": 6}),
            ("sts", "s10-", STS_A, {"epochs": 10}),
            ("dts", "d", DTS, {"epochs": 6}),
        ],
        commit="aaa",
        machine="vm-2",
    )
    return store_compare.Store.read(a, "A"), store_compare.Store.read(b, "B")


def test_cell_differences_paired_welch_and_identical(stores):
    a, b = stores
    cells = store_compare.cell_differences(a, b).set_index("variant")
    assert list(cells.index) == ["hsd", "sts", "dts"]  # the latency sweep's order
    hsd = cells.loc["hsd"]  # differences 1, 1, 2: mean 4/3, s = 1/sqrt(3)
    half = T975_2 * (1 / math.sqrt(3)) / math.sqrt(3)
    assert (hsd["test"], hsd["verdict"]) == ("paired by seed", "no clear difference")
    assert (hsd["diff"], hsd["ci_low"], hsd["ci_high"]) == pytest.approx(
        (4 / 3, 4 / 3 - half, 4 / 3 + half)
    )
    assert hsd["p"] == pytest.approx(sps.ttest_rel(HSD_A, HSD_B).pvalue)
    sts = cells.loc["sts"]  # other run ids: independent samples, Welch's interval
    welch = sps.ttest_ind(STS_A, STS_B, equal_var=False)
    low, high = welch.confidence_interval(0.95)
    assert (sts["test"], sts["diff"]) == ("Welch", pytest.approx(42 - 230 / 3))
    assert (sts["ci_low"], sts["ci_high"], sts["p"]) == pytest.approx((low, high, welch.pvalue))
    assert sts["verdict"] == "A lower"  # the interval lies below 0
    dts = cells.loc["dts"]
    assert (dts["verdict"], dts["diff"], dts["ci_low"], dts["ci_high"]) == ("identical", 0, 0, 0)
    assert store_compare.cells_in_one_store(a, b) == (0, 1)  # B's TET at T = 5


def test_changed_claim_runs_in_one_store_and_configs(stores):
    a, b = stores
    claims, tested, one_only = store_compare.changed_claims(a, b)
    assert claims[["claim", "verdict A", "verdict B"]].values.tolist() == [
        ["HSD > STS at low T", "supported", "inconclusive at 3 seeds"],
        ["STS > DTS at low T", "not supported", "supported"],  # A: 40-44 < 50-52
    ]
    assert claims["effect A"].iloc[0] == pytest.approx(124 / 3)  # 41, 41, 42
    assert (tested, one_only) == (3, 0)  # HSD > STS, HSD > DTS, STS > DTS at T = 1
    runs = store_compare.runs_in_one_store(a, b)
    assert runs[["where", "run id", "cells", "T", "seed"]].values.tolist() == [
        ["A only", "s10-0", "latency/sts", 1, 0],
        ["A only", "s10-1", "latency/sts", 1, 1],
        ["A only", "s10-2", "latency/sts", 1, 2],
        ["B only", "s0", "latency/sts", 1, 0],
        ["B only", "s1", "latency/sts", 1, 1],
        ["B only", "s2", "latency/sts", 1, 2],
        ["B only", "t0", "latency/tet", 5, 0],
    ]
    assert store_compare.config_differences(a, b) == [
        "git commit differs: A aaa; B bbb.",
        "machine differs: A vm-2; B vm-1.",
        "recipe field epochs differs in 1 of 3 shared cells, e.g. sts on n-digits at T = 1 "
        "(latency): A 10; B 6.",
    ]
    assert store_compare.config_differences(a, a) == []


def test_cli_writes_markdown_html_and_csv(stores, tmp_path, capsys):
    a, b = stores
    out = tmp_path / "cmp"
    assert main([str(a.path), "--compare", str(b.path), "--compare-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "3 cells both stores ran ok (accuracy at t = T): 1 identical run for run, 0 higher"
        in printed
    )
    assert "verdicts changed: 2" in printed and "Runs only in A: 3; only in B: 4" in printed
    md = (out / "compare.md").read_text()
    assert (
        "| latency | n-digits | hsd | 1 | 3 / 3 | 83.33 [" in md
        and "| +1.33 [-0.10, +2.77] |" in md
    )
    page = (out / "compare.html").read_text()
    assert '"v-diff' in page and "▼ A lower" in page and "<td>h2</td><td>86.00</td>" in page
    assert (out / "cells.csv").read_text().startswith("sweep,dataset,variant,T,n A,mean A")
    # default folder: inside A, named after B
    assert main([str(a.path), "--compare", str(b.path)]) == 0
    assert (a.path / "compare-committed" / "compare.html").exists()


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_missing_or_empty_store_exits_2(stores, tmp_path, capsys, case):
    a, _ = stores
    other = tmp_path / "other"
    if case == "empty":
        other.mkdir()
        (other / "results.jsonl").write_text("")
    assert main([str(a.path), "--compare", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: store B ({other})")
    assert ("no such folder" if case == "missing" else "holds no complete rows") in err
    assert not (a.path / "compare-other").exists()  # nothing written
    with pytest.raises(SystemExit) as exc:
        main([str(a.path), "--compare-out", str(tmp_path / "x")])
    assert exc.value.code == 2


def test_reproduction_check_treats_reruns_as_independent_samples(stores, monkeypatch):
    """tools/reproduction_check.py: Welch's interval per cell even where the run ids match (a rerun
    on another machine), and the share of cells whose interval covers 0 against the 90 % rule."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "tools"))
    import reproduction_check

    a, b = stores
    df = reproduction_check.welch_cells(a, b)
    cells = df.set_index("variant")
    assert list(cells.index) == ["hsd", "sts", "dts"]
    for variant, acc_a, acc_b in (("hsd", HSD_A, HSD_B), ("sts", STS_A, STS_B)):
        low, high = sps.ttest_ind(acc_a, acc_b, equal_var=False).confidence_interval(0.95)
        row = cells.loc[variant]
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert list(cells["covers 0"]) == [True, False, True]  # STS moved by −34.7 points
    text = reproduction_check.markdown(df)
    assert text.count("\n| latency | n-digits |") == 3
    assert text.endswith("2 of 3 cells (67 %) cover 0: the rerun does not reproduce the committed "
                         "store by the 90 % rule.\n")  # fmt: skip
