"""tools/tuning_table.py choice: a study's best point against the candidate recipe on the same seeds,
the higher mean validation accuracy taking the smoke preset (ties keep the candidate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.common.store import ResultStore


@pytest.fixture
def tool(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "tools"))
    import tuning_table

    return tuning_table


def _run(run_id: str, method: str, dataset: str, seed: int, val: float) -> list[dict]:
    """One ok run at T = 5, its row at t = 5 (the one the choice reads)."""
    row = {"run_id": run_id, "sweep": "latency", "variant": method, "method": method}
    row |= {"dataset": dataset, "T": 5, "seed": seed, "t": 5, "acc": val, "status": "ok"}
    return [row | {"best_val_acc": val, "lr": 0.003}]


def _study(folder: Path, method: str, best: dict) -> None:
    (folder / method).mkdir(parents=True)
    doc = {"method": method, "seeds_per_trial": 2, "best": best}
    (folder / method / "best_params.json").write_text(json.dumps(doc))


def test_the_higher_mean_validation_over_the_studys_seeds_wins(tool, tmp_path):
    store = ResultStore.open(tmp_path / "store", {"sweep": "latency", "args": {}})
    for i, (method, ds, seed, val) in enumerate(
        [
            ("tet", "n-digits", 0, 0.90),
            ("tet", "n-digits", 1, 0.80),  # mean 85.0
            ("tet", "n-digits", 2, 0.10),  # not a tuning seed: ignored
            ("tet", "sim-gestures", 0, 0.95),
            ("tet", "sim-gestures", 1, 0.97),  # mean 96.0
        ]
    ):
        store.append(_run(f"r{i}", method, ds, seed, val))
    point = {"T": 5, "lr": 0.0021541337, "weight_decay": 0.00146858, "mse_weight": 0.0069029}
    _study(
        tmp_path / "tuning",
        "tet",
        {
            "n-digits": point | {"trial": 2, "val_acc": 0.86},
            "sim-gestures": point | {"trial": 3, "val_acc": 0.96},  # a tie keeps the preset
        },
    )
    lines = tool.choice(tmp_path / "tuning", against=tmp_path / "store").splitlines()
    assert "preset val, same seeds (%)" in lines[0]
    values = "lr=0.00215, weight_decay=0.00147, mse_weight=0.0069"
    assert lines[2] == f"| tet | n-digits | 86.0 | 85.0 | tuned (trial 2) | {values} |"
    assert lines[3] == f"| tet | sim-gestures | 96.0 | 96.0 | preset | {values} |"
    assert len(lines) == 4  # methods without a study are left out
