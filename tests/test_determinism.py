"""A run is a function of its run id: one tiny real training gives bit-identical rows through the
single-run CLI, the local executor and the Ray executor (same machine, same thread count).

The training is `tet-short` (tests/plugins): TET's real model, loss and recipe on n-digits, cut to
2 epochs, so the three trainings take seconds rather than the smoke preset's minutes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from harness_helpers import REPO, read_rows, run_cli

# Fields that describe how and when a run ran, not what it computed.
VOLATILE = {
    "wall_s", "eval_s", "peak_mem_mb", "attempts", "ray_node", "ray_starts", "restarts",
    "_chunk", "_chunk_rows", "sweep", "variant", "cells", "command",
}  # fmt: skip


def _measured(rows):
    return [{k: v for k, v in sorted(r.items()) if k not in VOLATILE} for r in rows]


@pytest.mark.slow
def test_one_config_gives_identical_rows_through_every_entry_point(data_env, tmp_path):
    single = tmp_path / "single.json"
    cp = subprocess.run(
        [sys.executable, "-m", "hsd.train", "--method", "tet-short", "--dataset", "n-digits",
         "--T", "2", "--seed", "0", "--out", str(single)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr[-2000:]
    rows = {"single": json.loads(single.read_text())["rows"]}
    run_id = rows["single"][0]["run_id"]  # the sweep below plans this very config
    for executor in ("local", "ray"):
        out = tmp_path / executor
        cp = run_cli(
            ["--sweep", "latency", "--executor", executor, "--datasets", "n-digits",
             "--methods", "tet-short", "--T", "2", "--seeds", "1", "--out", out, "--no-report",
             "--no-progress"],
            env_extra={"RAY_AUTH_MODE": "disabled"},
            timeout=600,
        )  # fmt: skip
        assert cp.returncode == 0, cp.stderr[-2000:]
        rows[executor] = [r for r in read_rows(out) if r["run_id"] == run_id]
    assert rows["local"] and rows["ray"]
    assert _measured(rows["single"]) == _measured(rows["local"]) == _measured(rows["ray"])
    assert {r["threads"] for r in rows["single"]} == {1}
