"""A folder holding a run for a planned cell and seed under another run id (made before a preset
changed): detected, refused with exit 2 and nothing touched, set aside on request without losing a
row."""

from __future__ import annotations

from types import SimpleNamespace

from harness_helpers import call_main, read_rows

from harness.common.stale import stale_runs
from harness.run import main

OLD_ID = "0123456789abcdef"
ARGS = ["--sweep", "latency", "--executor", "local", "--datasets", "n-digits", "--seeds", "1"]


def _trial(run_id, T, seed=0):
    cfg = SimpleNamespace(dataset="n-digits", T=T, seed=seed)
    return SimpleNamespace(run_id=run_id, cells=(("latency", "tet"), ("ht", "TET")), cfg=cfg)


def test_only_a_planned_cell_and_seed_under_another_run_id_is_stale():
    plan = [_trial("a", 1), _trial("b", 2)]
    row = {"dataset": "n-digits", "seed": 0, "status": "ok", "cells": [["ht", "TET"]]}
    rows = [
        {**row, "run_id": "a", "T": 1, "t": 1},  # planned as is
        {**row, "run_id": "x", "T": 2, "t": 1},  # cell ht:TET T=2 seed 0 is planned as "b"
        {**row, "run_id": "x", "T": 2, "t": 2},
        {**row, "run_id": "y", "T": 2, "seed": 1, "t": 2},  # a seed the plan does not have
        {**row, "run_id": "z", "T": 3, "t": 3},  # a T the plan does not have
        {"run_id": "p", "sweep": "params", "variant": "vgg", "status": "ok"},  # no seed, no T
    ]
    assert stale_runs(plan, rows) == {"x": "ht:TET n-digits T=2 seed 0: stored x, planned b"}


def test_a_stale_run_is_refused_then_set_aside_with_its_curve(data_env, tmp_path):
    out = tmp_path / "out"
    args = [*ARGS, "--methods", "fake", "--T", "1,2", "--out", out, "--no-report"]
    assert call_main(main, args).returncode == 0
    # as if the T = 2 run had been made under an older preset: its rows carry another run id
    new_id = next(r["run_id"] for r in read_rows(out) if r["T"] == 2)
    results = out / "results.jsonl"
    results.write_text(results.read_text().replace(new_id, OLD_ID))
    (out / "curves" / f"{new_id}.json").rename(out / "curves" / f"{OLD_ID}.json")
    before = results.read_bytes()

    refused = call_main(main, args)
    assert refused.returncode == 2
    assert f"latency:fake n-digits T=2 seed 0: stored {OLD_ID}, planned {new_id}" in refused.stderr
    assert "--set-aside-stale" in refused.stderr
    assert results.read_bytes() == before  # nothing touched

    moved = call_main(main, [*args, "--set-aside-stale"])
    assert moved.returncode == 0, moved.stderr
    stale_lines = (out / "stale" / "results.jsonl").read_bytes().splitlines(keepends=True)
    assert stale_lines == [
        line for line in before.splitlines(keepends=True) if OLD_ID.encode() in line
    ]
    assert (out / "stale" / "curves" / f"{OLD_ID}.json").exists()
    rows = read_rows(out)
    assert {r["run_id"] for r in rows if r["T"] == 2} == {new_id}  # trained again, once
    assert len(rows) == 1 + 2
    assert call_main(main, args).returncode == 0  # and the folder is clean again


def test_set_aside_moves_whole_lines_and_leaves_a_torn_tail_in_place(tmp_path):
    from harness.common.stale import set_aside

    a = b'{"run_id": "a", "t": 1}\n'
    b = b'{"run_id": "b", "t": 1}\n'
    torn = b'{"run_id": "a", "t'  # a writer killed mid-line: left for the store to handle
    (tmp_path / "results.jsonl").write_bytes(a + b + a + torn)
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "a.npz").write_bytes(b"npz")
    assert set_aside(tmp_path, {"a"}).startswith("set aside 1 stale run(s), 2 rows")
    assert (tmp_path / "results.jsonl").read_bytes() == b + torn
    assert (tmp_path / "stale" / "results.jsonl").read_bytes() == a + a
    assert (tmp_path / "stale" / "samples" / "a.npz").read_bytes() == b"npz"
    assert not (tmp_path / "samples" / "a.npz").exists()
