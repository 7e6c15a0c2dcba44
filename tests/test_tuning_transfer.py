"""tools/tuning_transfer.py: the same points of two studies, paired exactly, ranked both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

HEADER = "number,state,value,lr,weight_decay\n"


@pytest.fixture
def tool(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "tools"))
    import tuning_transfer

    return tuning_transfer


def _study(folder: Path, rows: list[str]) -> None:
    (folder / "tet").mkdir(parents=True)
    (folder / "tet" / "trials-n-digits.csv").write_text(HEADER + "".join(r + "\n" for r in rows))


def test_points_pair_on_every_parameter_and_ranks_cross(tool, tmp_path):
    low, high = tmp_path / "low", tmp_path / "high"
    _study(
        low,
        [
            "0,COMPLETE,0.50,0.001,0.0001",
            "1,COMPLETE,0.70,0.003,0.0001",  # low's best
            "2,COMPLETE,0.60,0.01,0.0001",
            "3,FAIL,,0.02,0.0001",  # stopped: not a point
            "4,COMPLETE,0.40,0.1,0.0001",  # not in high
        ],
    )
    _study(
        high,
        [
            "0,COMPLETE,0.80,0.001,0.0001",
            "1,COMPLETE,0.85,0.003,0.0001",
            "2,COMPLETE,0.90,0.01,0.0001",  # high's best
            "3,COMPLETE,0.95,0.003,0.001",  # same lr, other decay: another point
        ],
    )
    both = tool.paired(low / "tet" / "trials-n-digits.csv", high / "tet" / "trials-n-digits.csv")
    assert sorted(both["lr"]) == [0.001, 0.003, 0.01]
    row = tool.table(low, high).splitlines()[-1]
    # ranks low 0.5 < 0.6 < 0.7 against high 0.8 < 0.9 > 0.85: rho = 0.5; low's best is 2nd at
    # high, high's best 2nd at low
    # changes +30, +15, +30: mean +25, t interval ±4.303 x 5 (n = 3)
    assert row == "| tet | n-digits | 3 | +0.50 | 2 | 2 | 70.0 | 90.0 | +25.0 [+3.5, +46.5] |"
    header = tool.table(low, high, ("coupled", "decoupled")).splitlines()[0]
    assert "coupled's best: rank at decoupled" in header and "coupled to decoupled" in header


def test_a_study_whose_points_all_score_alike_has_no_rank_correlation(tool, tmp_path):
    low, high = tmp_path / "low", tmp_path / "high"
    _study(
        low,
        [
            "0,COMPLETE,0.10,0.001,0.0001",
            "1,COMPLETE,0.10,0.003,0.0001",
            "2,COMPLETE,0.10,0.01,0.0001",
        ],
    )
    _study(
        high,
        [
            "0,COMPLETE,0.80,0.001,0.0001",
            "1,COMPLETE,0.90,0.003,0.0001",
            "2,COMPLETE,0.70,0.01,0.0001",
        ],
    )
    row = tool.table(low, high).splitlines()[-1]
    assert row.startswith("| tet | n-digits | 3 | n/a | ")
    assert row.endswith("| 10.0 | 90.0 | +70.0 [+45.2, +94.8] |")
