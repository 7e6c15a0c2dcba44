"""`python -m harness.report`: end to end on a fixed store, and exit code 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_aggregate import write_fixed_store

from harness.common.store import ResultStore
from harness.report import plots
from harness.report.build import main
from harness.report.tables import build_tables


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_report_end_to_end(tmp_path, capsys):
    out = write_fixed_store(tmp_path / "sweep")
    assert main([str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "## Table 1" in printed and "| hsd | 5 | 75.00 [11.47, 138.53] | 2 | 0 | 81.10 |" in printed
    )
    assert "## Figure 2" in printed and str(out / "tables") in printed
    for name in ("table1", "figure2", "figure2_any_t", "table2", "table5", "table6", "status"):
        for ext in ("csv", "md"):
            assert (out / "tables" / f"{name}.{ext}").stat().st_size > 0
    for stem in ("figure2", "figure2_any_t", "accuracy_vs_energy", "accuracy_vs_stream_fraction"):
        for ext in ("png", "svg"):
            assert (out / "plots" / f"{stem}.{ext}").stat().st_size > 0
    # the store itself is never rewritten by a report
    before = (out / "results.jsonl").read_bytes()
    assert main([str(out), "--no-plots"]) == 0
    assert (out / "results.jsonl").read_bytes() == before


def test_report_tolerates_torn_tail(tmp_path, capsys):
    out = write_fixed_store(tmp_path / "sweep")
    with open(out / "results.jsonl", "ab") as f:
        f.write(b'{"run_id": "x", "sweep": "latency", "acc": 0.')
    assert main([str(out), "--no-plots"]) == 0
    assert "incomplete final chunk" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing", "no-store", "empty", "corrupt", "two-runs"])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, case):
    out = tmp_path / "sweep"
    if case != "missing":
        out.mkdir()
    if case == "empty":
        (out / "results.jsonl").write_text("")
    if case == "corrupt":
        write_fixed_store(out)
        lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
        lines[3] = '{"run_id": "h5s0", "acc": 0.6\n'  # a torn line in the middle
        (out / "results.jsonl").write_text("".join(lines))
    if case == "two-runs":  # a store merged by hand: one cell and seed under a second run id
        write_fixed_store(out)
        first = json.loads((out / "results.jsonl").read_text().splitlines()[0])
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps({**first, "run_id": "merged-by-hand"}) + "\n")
    before = _snapshot(out) if out.exists() else None
    assert main([str(out)]) == 2
    err = capsys.readouterr().err
    expected = {
        "missing": "no such folder",
        "no-store": "no results store",
        "empty": "no complete rows",
        "corrupt": "line 4 is not a valid JSON object",
        "two-runs": "1 cell(s) hold two or more runs of one seed",
    }[case]
    assert err.startswith("error: ") and expected in err
    assert (_snapshot(out) if out.exists() else None) == before


def test_cli_module_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "harness.report", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no such folder" in proc.stderr and proc.stdout == ""


def test_plots_skip_missing_data_and_write_files(tmp_path):
    rows = ResultStore.existing(write_fixed_store(tmp_path / "s")).rows()
    tables = build_tables(rows)
    paths = plots.plot_figure2(tables["figure2_data"], tmp_path / "p")
    assert [p.name for p in paths] == ["figure2.png", "figure2.svg", "figure2.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
    empty = build_tables(rows[rows["sweep"] == "params"])
    assert plots.write_plots(empty, tmp_path / "q") == []
    assert plots.panel_title("sim-gestures").startswith("sim-gestures (SIMULATED data)")
    assert plots.panel_title("cifar10-dvs") == "CIFAR10-DVS"


def test_a_plot_drawn_twice_is_the_same_bytes(tmp_path):
    """No creation date, fixed SVG ids: rebuilding a report leaves its plots' files unchanged."""
    rows = ResultStore.existing(write_fixed_store(tmp_path / "s")).rows()
    data = build_tables(rows)["figure2_data"]
    first = {p.name: p.read_bytes() for p in plots.plot_figure2(data, tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in plots.plot_figure2(data, tmp_path / "b")}
    assert first == second and set(first) == {"figure2.png", "figure2.svg", "figure2.pdf"}
