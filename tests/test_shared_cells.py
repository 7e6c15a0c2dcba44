"""A finished run that the plan shares with cells its rows do not name (copied in from another
sweep's folder): recorded under them by appending its last rows again, never retrained."""

from __future__ import annotations

import json
from types import SimpleNamespace

from harness_helpers import call_main, read_rows

from harness.common.shared_cells import widened
from harness.common.store import ResultStore
from harness.report.aggregate import prepare_rows
from harness.run import main

LATENCY, HT = ["latency", "tet"], ["ht", "TET w/o HT"]


def _trial(run_id, *cells):
    return SimpleNamespace(run_id=run_id, cells=tuple(tuple(c) for c in cells))


def test_only_finished_runs_lacking_a_planned_cell_are_widened_from_their_last_append():
    plan = [_trial("a", LATENCY, HT), _trial("b", LATENCY, HT), _trial("c", LATENCY, HT)]
    records = [
        {"run_id": "a", "_chunk": 0, "t": 1, "acc": 0.1, "cells": [LATENCY]},  # retried later
        {"run_id": "a", "_chunk": 2, "t": 1, "acc": 0.3, "cells": [LATENCY]},
        {"run_id": "a", "_chunk": 2, "t": 2, "acc": 0.4, "cells": [LATENCY]},
        {"run_id": "b", "_chunk": 1, "t": 1, "acc": 0.2, "cells": [HT, LATENCY]},  # has both
        {"run_id": "c", "_chunk": 3, "t": 1, "acc": 0.5, "cells": [LATENCY]},  # not finished
    ]
    assert widened(plan, records, finished={"a", "b"}) == {
        "a": [
            {"run_id": "a", "_chunk": 2, "t": 1, "acc": 0.3, "cells": [LATENCY, HT]},
            {"run_id": "a", "_chunk": 2, "t": 2, "acc": 0.4, "cells": [LATENCY, HT]},
        ]
    }


def test_a_sweep_records_a_copied_run_under_its_planned_cells_without_training(data_env, tmp_path):
    out = tmp_path / "out"
    args = ["--sweep", "latency", "--executor", "local", "--datasets", "n-digits", "--seeds", "1"]
    args += ["--methods", "fake", "--T", "1", "--out", out, "--no-report"]
    assert call_main(main, args).returncode == 0
    # as if copied in from a folder whose sweep placed the run in another table only
    results = out / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    other = [{**r, "sweep": "ht", "variant": "x", "cells": [["ht", "x"]]} for r in rows]
    results.write_text("".join(json.dumps(r) + "\n" for r in other))

    dry = call_main(main, [*args, "--dry-run"])  # says so, writes nothing
    assert dry.returncode == 0 and "1 finished run(s) would be recorded" in dry.stderr
    assert results.read_text() == "".join(json.dumps(r) + "\n" for r in other)
    resumed = call_main(main, args)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 finished run(s) now also serve cells" in resumed.stderr
    stored = read_rows(out)
    assert len(stored) == 2 * len(rows)  # the same rows appended once more, nothing trained
    assert {r["run_id"] for r in stored} == {rows[0]["run_id"]}
    assert stored[-1]["cells"] == [["ht", "x"], ["latency", "fake"]]
    prepared = prepare_rows(ResultStore(out).rows())
    cells = set(zip(prepared["sweep"], prepared["variant"], strict=True))
    assert cells == {("ht", "x"), ("latency", "fake")}
    before = results.read_bytes()
    again = call_main(main, args)
    assert again.returncode == 0 and "now also serve" not in again.stderr
    assert results.read_bytes() == before  # done once
