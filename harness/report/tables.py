"""Every table by name (`TABLES`), built from stored rows and written as CSV and Markdown.

`build_tables` prepares the rows once (`harness.report.aggregate.prepare_rows`) and returns every table
(empty ones included); `write_tables` writes each non-empty one as ``<name>.csv`` and
``<name>.md``. Markdown is written here, without `tabulate`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.aggregate import (
    CSV_ONLY,
    MISSING,
    NOTES,
    any_t_data,
    curve_flags,
    energy_frame,
    failures,
    figure2_data,
    figure2_table,
    prepare_rows,
    status_table,
    stream_frame,
    table1,
    table2,
    table3,
    table4,
    table5,
    table6,
)
from harness.report.comparisons import claims_table, paired_table, rank_stability

#: table name -> builder, in the order reports list them
TABLES = {
    "table1": table1,
    "figure2": figure2_table,
    "figure2_data": figure2_data,
    "figure2_any_t": any_t_data,
    "table2": table2,
    "table3": table3,
    "table4": table4,
    "table5": table5,
    "table6": table6,
    "energy": energy_frame,
    "stream_fraction": stream_frame,
    "paired": paired_table,
    "claims": claims_table,
    "rank_stability": rank_stability,
    "status": status_table,
    "failures": failures,
    "curve_flags": curve_flags,
}


#: the sweep whose runs fill each table's cells (tables with a ``sweep`` column name it per row)
SWEEP_OF = {
    "table1": "latency",
    "figure2": "latency",
    "figure2_data": "latency",
    "figure2_any_t": "latency",
    "table2": "ablation",
    "table3": "quantization",
    "table4": "ht",
    "table6": "kd",
    "paired": "latency",
    "rank_stability": "latency",
}


def build_tables(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every table from stored rows (`ResultStore.rows()`, with the learning-curve flags of
    `harness.report.aggregate.with_curve_flags` when the report found curves), by name; empty ones
    included."""
    df = prepare_rows(rows)
    return {name: fn(df) for name, fn in TABLES.items()}


# -- writing -----------------------------------------------------------------------------------------
def _md_cell(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == 0 or 0.01 <= abs(v) < 1e6:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table (pandas' own needs `tabulate`, which this project does without).

    Columns named in ``df.attrs[CSV_ONLY]`` are left out; ``df.attrs[NOTES]`` follows the table.
    """
    notes = df.attrs.get(NOTES, "")
    df = df.drop(columns=[c for c in df.attrs.get(CSV_ONLY, ()) if c in df])
    header = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = [
        "| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
        "| " + " | ".join("---:" if num else "---" for num in numeric) + " |",
    ]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if notes:  # how to read the cells (see each builder's CSV_ONLY / NOTES attrs)
        lines += ["", notes]
    return "\n".join(lines) + "\n"


def write_tables(df_rows: pd.DataFrame, out_dir: str | Path) -> dict[str, list[Path]]:
    """Write every non-empty table as ``<name>.csv`` and ``<name>.md`` under `out_dir`.

    Returns {table name: [csv path, md path]}; empty tables (sweeps that were not run) are skipped.
    """
    tables = build_tables(df_rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for name, table in tables.items():
        if table.empty:
            continue
        csv, md = out / f"{name}.csv", out / f"{name}.md"
        table.to_csv(csv, index=False)
        md.write_text(to_markdown(table))
        written[name] = [csv, md]
    return written
