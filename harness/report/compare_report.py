"""Two stores compared, written like the rest of the report: Markdown, a self-contained HTML page
and a CSV of the numbers (`harness.report.store_compare` computes them).

    python -m harness.report A --compare B [--compare-out DIR]

writes ``DIR/compare.md``, ``DIR/compare.html`` and ``DIR/cells.csv`` (every cell both stores ran:
n, mean and interval of each, A − B and its interval, the test, p, the verdict), DIR defaulting to
``A/compare-<name of B>``, and prints the summary. A is "this" store (a rerun, a new recipe), B
the one it is measured against (e.g. the committed run): differences read A − B.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from harness.common.store_errors import fs_error
from harness.report import store_facts
from harness.report.aggregate import format_cell
from harness.report.cell_runs import CellRuns, side_by_side
from harness.report.html_report import page_shell, table_block, write_text_atomic
from harness.report.page_tables import format_diff, frame_table
from harness.report.store_compare import (
    CELL,
    HIGHER,
    IDENTICAL,
    LOWER,
    UNCLEAR,
    Store,
    cell_differences,
    cells_in_one_store,
    changed_claims,
    config_differences,
    runs_in_one_store,
)
from harness.report.tables import to_markdown

CELLS_CAPTION = (
    "Accuracy (%) at t = T of each store: mean [95 % CI] over its ok seeds. A − B: the difference "
    "of means with its 95 % interval: paired by seed (the interval of the mean per-seed "
    "difference, Student t) when both stores hold the same seeds with the same run ids, else "
    "Welch's interval for independent samples. identical: paired, and every seed's accuracy "
    "equal; A higher / A lower: the interval excludes 0."
)
CLAIMS_CAPTION = "Effect: the claim's paired difference in each store, mean [95 % CI] over seeds."
FOLD_RUNS = 20  # a longer list of runs in one store starts folded on the page
RUNS_CAPTION = "Run ids only one store holds, and runs both hold whose status differs (A / B)."


def describe(store: Store) -> str:
    """One line on what a store holds and how it was made."""
    rows = store.rows
    runs = rows[rows["seed"].notna()]["run_id"].nunique()
    seeds = store_facts.values(rows, "seed")
    commits = store_facts.values(rows, "git_commit")
    devices = store_facts.values(rows, "device")
    return (
        f"{store.path}: {runs} trainings, {len(seeds)} seeds, commit {', '.join(commits) or '?'}, "
        f"device {', '.join(devices) or '?'}"
    )


def _cells_shown(cells: pd.DataFrame) -> pd.DataFrame:
    def side(s: str) -> list[str]:
        cols = [cells[c] for c in (f"mean {s}", f"ci_low {s}", f"ci_high {s}", f"n {s}")]
        return [format_cell(*v) for v in zip(*cols, strict=True)]

    return cells[CELL].assign(
        **{
            "seeds A / B": [f"{a} / {b}" for a, b in zip(cells["n A"], cells["n B"], strict=True)],
            "A (%)": side("A"),
            "B (%)": side("B"),
            "A − B [95 % CI]": [
                format_diff(*v)
                for v in zip(cells["diff"], cells["ci_low"], cells["ci_high"], strict=True)
            ],
            "test": cells["test"],
            "p": cells["p"],
            "verdict": cells["verdict"],
        }
    )


def _claims_shown(claims: pd.DataFrame) -> pd.DataFrame:
    out = claims[["claim", "dataset", "T", "comparison"]].copy()
    for s in ("A", "B"):
        cols = [claims[c] for c in (f"effect {s}", f"ci_low {s}", f"ci_high {s}")]
        out[f"effect {s}"] = [format_diff(*v) for v in zip(*cols, strict=True)]
        out[f"verdict {s}"] = claims[f"verdict {s}"]
    return out


def summary(a: Store, b: Store, cells, claims, tested, one_only, runs, configs) -> list[str]:
    """The comparison in a few sentences (the top of both pages)."""
    n = cells["verdict"].value_counts()
    only_a, only_b = cells_in_one_store(a, b)
    where = runs["where"].value_counts()
    lines = [
        f"A = {describe(a)}.",
        f"B = {describe(b)}.",
        f"{len(cells)} cells both stores ran ok (accuracy at t = T): {n.get(IDENTICAL, 0)} "
        f"identical run for run, {n.get(HIGHER, 0)} higher in A and {n.get(LOWER, 0)} lower in "
        f"A (the 95 % interval of A − B excludes 0), {n.get(UNCLEAR, 0)} with no clear "
        f"difference. Cells only A ran: {only_a}; only B: {only_b}.",
        f"Claims of the paper both stores tested: {tested}; verdicts changed: {len(claims)}"
        + (f"; tested by one store only: {one_only}." if one_only else "."),
        f"Runs only in A: {where.get('A only', 0)}; only in B: {where.get('B only', 0)}; in "
        f"both with another status: {where.get('status differs', 0)}.",
    ]
    if configs:
        lines.append("The stores were made differently:")
    else:
        lines.append(
            "The stores were made the same way: same commit, device, library versions, machine "
            "and sweep arguments, and the same recipe in every cell both ran."
        )
    return lines


def compare(a_dir: str | Path, b_dir: str | Path, out_dir: str | Path | None = None):
    """Compare store A with store B; returns (the summary as Markdown, the whole Markdown, the
    files written).

    Both stores are read and everything computed before the first file is written; a missing or
    empty store raises StoreError naming it.
    """
    a, b = Store.read(a_dir, "A"), Store.read(b_dir, "B")
    cells = cell_differences(a, b)
    claims, tested, one_only = changed_claims(a, b)
    runs = runs_in_one_store(a, b)
    configs = config_differences(a, b)
    lines = summary(a, b, cells, claims, tested, one_only, runs, configs)
    shown_cells, shown_claims = _cells_shown(cells), _claims_shown(claims)
    title = f"{a.path.resolve().name} (A) compared with {b.path.resolve().name} (B)"
    md = [f"# {title}", "", summary_markdown(lines, configs), ""]
    for heading, frame, caption in (
        ("Cells both stores ran (A − B)", shown_cells, CELLS_CAPTION),
        ("Claims whose verdict changed", shown_claims, CLAIMS_CAPTION),
        ("Runs in one store only", runs, RUNS_CAPTION),
    ):
        md += [f"## {heading}", "", caption, ""]
        md += [to_markdown(frame) if len(frame) else "None.", ""]
    markdown = "\n".join(md)
    page = _html(title, (lines, configs), a, b, cells, shown_cells, shown_claims, runs)
    out = Path(out_dir) if out_dir else a.path / f"compare-{b.path.resolve().name}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        cells.to_csv(out / "cells.csv", index=False)
        files = [
            write_text_atomic(out / "compare.md", markdown),
            write_text_atomic(out / "compare.html", page),
            out / "cells.csv",
        ]
    except OSError as err:  # the message says what is wrong with the folder (--compare-out)
        raise fs_error(err, out, "write the comparison to") from None
    return summary_markdown(lines, configs), markdown, files


def summary_markdown(lines: list[str], configs: list[str]) -> str:
    """The summary as a Markdown list, the ways the stores differ nested under the last line."""
    return "\n".join([*(f"- {line}" for line in lines), *(f"  - {c}" for c in configs)])


def _html(title, summary_lines, a, b, cells, shown_cells, shown_claims, runs) -> str:
    lines, configs = summary_lines
    ra, rb = CellRuns(a.rows), CellRuns(b.rows)
    seeds = [
        side_by_side(ra.cell(*key), rb.cell(*key), ("A", "B"))
        for key in cells[CELL].itertuples(index=False)
    ]
    tables = [
        frame_table(
            "cells",
            shown_cells,
            title="Cells both stores ran (A − B)",
            caption=CELLS_CAPTION + " Click a difference for the runs of both stores.",
            verdicts=("verdict",),
            runs={"A − B [95 % CI]": seeds},
        ),
        frame_table(
            "claims",
            shown_claims,
            title="Claims whose verdict changed",
            caption=CLAIMS_CAPTION,
            verdicts=("verdict A", "verdict B"),
        ),
        frame_table("runs", runs, title="Runs in one store only", caption=RUNS_CAPTION),
    ]
    body = ['<section id="s-summary"><h2>Summary</h2><ul>']
    body += [f"<li>{html.escape(line)}</li>" for line in lines]
    if configs:
        body[-1] = body[-1].replace("</li>", "<ul>")
        body += [f"<li>{html.escape(c)}</li>" for c in configs] + ["</ul></li>"]
    body.append("</ul></section>")
    for table in tables:
        folded = table.name == "runs" and len(table.rows) > FOLD_RUNS
        block = (
            table_block(table, folded)
            if table.rows
            else (f"<h3>{html.escape(table.title)}</h3><p>None.</p>")
        )
        body.append(f'<section id="s-{table.name}">{block}</section>')
    return page_shell(title, body)
