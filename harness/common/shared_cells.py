"""Finished runs that a sweep plans for table cells their stored rows do not name.

A run serves every cell whose config resolves to its run id (`harness.common.sweeps.resolve_all`),
and its rows record those cells (``cells``) when it finishes; the report places a run only where
its rows say. A sweep can plan a finished run for more cells than it was stored with: runs copied
in from another sweep's folder (the latency sweep's runs are also cells of Tables 2, 3, 4 and 6),
or a version that shares the run with a new cell. The run is not trained again; its last stored
rows are appended once more, unchanged but for the union of the cells, and since the store counts
only each run's last append, every table then holds it.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.common.row_schema import row_cells
from harness.common.store import CHUNK_COLUMN, ResultStore


def _last_rows(records: Iterable[dict]) -> dict[str, list[dict]]:
    """Each run id's rows of its last append."""
    last: dict[str, list[dict]] = {}
    for row in records:
        run_id = row.get("run_id")
        if run_id is None:
            continue
        kept = last.get(run_id)
        if kept and kept[0].get(CHUNK_COLUMN) != row.get(CHUNK_COLUMN):
            kept = None  # a later append of the same run replaces the earlier one
        last[run_id] = (kept or []) + [row]
    return last


def widened(trials: Iterable, records: Iterable[dict], finished: set[str]) -> dict[str, list]:
    """For each finished run whose last rows lack a cell that `trials` plans for it, those rows
    with ``cells`` = stored cells, then the missing planned ones (by run id)."""
    planned = {t.run_id: [list(c) for c in t.cells] for t in trials if t.run_id in finished}
    out: dict[str, list] = {}
    for run_id, rows in _last_rows(records).items():
        if run_id not in planned:
            continue
        stored = row_cells(rows[0])
        missing = [c for c in planned[run_id] if c not in stored]
        if missing:
            out[run_id] = [{**r, "cells": stored + missing} for r in rows]
    return out


def record_planned_cells(store: ResultStore, trials: list, records: list[dict]) -> str | None:
    """Append the widened rows (one chunk per run); a line saying what was done, or None.

    `records` are the store's rows as read at start-up: setting stale runs aside in between does
    not change them for this purpose, since a stale run is never a planned run id."""
    runs = widened(trials, records, store.finished_run_ids())
    for rows in runs.values():
        store.append(rows)
    if not runs:
        return None
    return (
        f"{len(runs)} finished run(s) now also serve cells of this sweep that their rows did not "
        "name; their rows were appended again with those cells (not retrained): "
        + ", ".join(sorted(runs))
    )
