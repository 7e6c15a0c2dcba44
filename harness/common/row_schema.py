"""The row schema every stored result row must satisfy, checked on every read and before every
append (`harness.common.store`), and on rows that reach the driver from elsewhere (Ray's pending files).

Required: ``run_id`` (a non-empty string) and ``status`` (one of `STATUSES`). Checked when present:
``t`` and ``T`` integers >= 1 with t <= T, ``seed`` an integer, ``acc`` a number in [0, 1] (null only
in a row that is not ok), the label fields strings, the numeric fields numbers or null. Any other
field is allowed: rows carry every config field, options and provenance.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

#: every status a stored row may have; each ends its run (a rerun does not run it again)
STATUSES = ("ok", "failed", "diverged", "infeasible")
TERMINAL_STATUSES = frozenset(STATUSES)


#: fields that must be strings when present (identify the run and its table cell)
_STRING_FIELDS = ("dataset", "method", "sweep", "variant")
#: fields that must be strings or null when present (a config value may be unset)
_OPTIONAL_STRING_FIELDS = ("profile", "arch", "neuron", "error")
#: fields that must be numbers (or null) when present: they are averaged or plotted
_NUMBER_FIELDS = ("params", "energy_j", "stream_fraction", "wall_s", "best_val_acc", "firing_rate")


def row_cells(row: dict) -> list:
    """The (sweep, variant) table cells a stored row's run serves: its ``cells``, or for rows
    written before runs were shared, its own sweep and variant."""
    return row.get("cells") or [[row.get("sweep"), row.get("variant")]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def row_problem(row: Any) -> str | None:
    """Why `row` is not a valid result row, or None when it is.

    Required: ``run_id`` (non-empty string) and ``status`` (one of `TERMINAL_STATUSES`). When
    present: ``t``, ``T`` integers >= 1 with t <= T; ``seed`` an integer; ``acc`` a fraction in
    [0, 1], or null only when the status is not ok (an ok row measured at some t needs its acc);
    dataset/method/sweep/variant strings; profile/arch/neuron/error strings or null;
    params/energy_j/... numbers or null. Any other field is allowed. This is the contract the
    tables rely on (`harness.report.aggregate`).
    """
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    for key in ("run_id", "status"):
        if key not in row:
            return f"missing {key}"
    run_id, status = row["run_id"], row["status"]
    if not isinstance(run_id, str) or not run_id:
        return f"run_id {run_id!r} is not a non-empty string"
    if status not in TERMINAL_STATUSES:
        known = ", ".join(sorted(TERMINAL_STATUSES))
        return f"status {status!r} is not one of {known}"
    for key in ("t", "T"):
        if key in row and not (_is_int(row[key]) and row[key] >= 1):
            return f"{key} {row[key]!r} is not an integer >= 1"
    if _is_int(row.get("t")) and _is_int(row.get("T")) and row["t"] > row["T"]:
        return f"t {row['t']} is larger than T {row['T']}"
    if "seed" in row and not _is_int(row["seed"]):
        return f"seed {row['seed']!r} is not an integer"
    acc = row.get("acc")
    if acc is None:
        if status == "ok" and "t" in row:
            return "acc is missing or null in an ok row (only a run that did not finish has none)"
    elif not (_is_number(acc) and 0.0 <= acc <= 1.0):
        return f"acc {acc!r} is not a fraction in [0, 1]"
    for key in _STRING_FIELDS:
        if key in row and not isinstance(row[key], str):
            return f"{key} {row[key]!r} is not a string"
    for key in _OPTIONAL_STRING_FIELDS:
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"{key} {row[key]!r} is not a string"
    for key in _NUMBER_FIELDS:
        if row.get(key) is not None and not _is_number(row[key]):
            return f"{key} {row[key]!r} is not a number"
    if "_chunk" in row and not isinstance(row["_chunk"], str):
        return f"store field _chunk {row['_chunk']!r} is not a string"
    if "_chunk_rows" in row and not (_is_int(row["_chunk_rows"]) and row["_chunk_rows"] >= 1):
        return f"store field _chunk_rows {row['_chunk_rows']!r} is not an integer >= 1"
    return None


def rows_problem(rows: Any) -> str | None:
    """Why `rows` is not the rows of one run (a non-empty list of valid rows), or None.

    Rows are checked as they would be stored: NaN and inf (a failed run's acc) become null.
    """
    if not isinstance(rows, list) or not rows:
        return f"expected a non-empty list of result rows, got {rows!r:.80}"
    for i, row in enumerate(rows):
        try:
            problem = row_problem(jsonable(row))
        except TypeError as err:
            problem = str(err)
        if problem:
            return f"row {i + 1}: {problem}"
    return None


def jsonable(value: Any) -> Any:
    """Plain-JSON form of a row value: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(
        f"result row value {value!r} of type {type(value).__name__} is not JSON-serialisable; "
        "store numbers, strings, booleans, lists or dicts"
    )
