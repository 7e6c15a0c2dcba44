"""The report's tables as a page shows them: each number once, captions that say what the cells
are, verdicts marked, and every measured cell with the runs behind it.

The CSV and LaTeX files keep every number (``n``, ``mean``, ``ci_low``, ``ci_high`` ...); here a
paper table has one formatted column per dataset, a tidy table one ``mean [95 % CI]`` column, and
the claims and paired tables one ``effect [95 % CI]`` column. A cell's `Cell.runs` lists its seeds
(run id, status, accuracy; both sides for a paired difference), for the page to show on demand.
Columns a builder does not know (added to the claims or paired tables later) are shown as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.report import stats
from harness.report.aggregate import CSV_ONLY, MISSING, NOTES, dataset_label, format_cell
from harness.report.cell_runs import CellRuns
from harness.report.comparisons import claim_sides
from harness.report.latex import TITLES, cells_note, fmt_number, is_paper_column, merge_intervals
from harness.report.tables import SWEEP_OF

#: CSS class of a verdict, by how the verdict starts
VERDICT_MARKS = (
    ("supported", "v-yes", "✔"),
    ("HSD better", "v-yes", "✔"),
    ("not supported", "v-no", "✘"),
    ("HSD worse", "v-no", "✘"),
    ("inconclusive", "v-maybe", "?"),
    ("identical", "v-same", "="),
    ("A higher", "v-diff", "▲"),
    ("A lower", "v-diff", "▼"),
    ("no clear difference", "v-maybe", "?"),
)
SEEDS_HINT = "Click a cell for the seeds and runs behind it."


@dataclass
class Cell:
    text: str
    runs: pd.DataFrame | None = None  # the seeds' rows behind the cell
    mark: str = ""  # CSS class (a verdict)


@dataclass
class PageTable:
    name: str
    title: str
    caption: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)

    def numeric(self, j: int) -> bool:
        """Right-align a column whose cells all read as numbers (or intervals of them)."""
        texts = [r[j].text for r in self.rows if r[j].text not in (MISSING, "")]
        return bool(texts) and all(_numberish(t) for t in texts)


def _numberish(text: str) -> bool:
    head = text.split(" ")[0].lstrip("+-−✔✘?")
    try:
        float(head.replace("∞", "inf"))
    except ValueError:
        return False
    return True


def text_of(v, column: str = "") -> str:
    """A value as the page prints it: – for missing, 2 decimals (`fmt_number`), whole numbers
    without decimals."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return fmt_number(v, column)
    return str(v)


def format_diff(mean: float, low: float, high: float) -> str:
    """A difference with its interval, signs shown: ``+26.77 [+20.18, +33.35]``."""
    if mean is None or math.isnan(mean):
        return MISSING
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{mean:+.2f}"
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def verdict_cell(verdict) -> Cell:
    text = text_of(verdict)
    for start, css, sign in VERDICT_MARKS:
        if text.startswith(start):
            return Cell(f"{sign} {text}", mark=css)
    return Cell(text, mark="v-none")


def _plain(df: pd.DataFrame, skip=()) -> list[tuple[str, list[Cell]]]:
    """The columns of `df` not in `skip`, as (label, cells)."""
    return [(c, [Cell(text_of(v, c)) for v in df[c]]) for c in df.columns if c not in skip]


def _assemble(name, caption, columns: list[tuple[str, list[Cell]]], title=None) -> PageTable:
    rows = [list(r) for r in zip(*(cells for _, cells in columns), strict=True)]
    return PageTable(
        name,
        title or TITLES.get(name, name.replace("_", " ")),
        caption,
        [c for c, _ in columns],
        rows,
    )


def _seed_range(ns) -> str:
    ns = sorted({int(n) for n in ns if n > 0})
    if not ns:
        return "its seeds"
    count = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    return f"{count} seed" + ("" if ns == [1] else "s") + " per cell"


# -- the paper's tables: one column per dataset --------------------------------------------------------
def _dataset_of(label: str) -> str:
    plain = label.removesuffix(" (simulated)")
    return plain if dataset_label(plain) == label else label


def _ran(df: pd.DataFrame, label: str) -> pd.Series:
    """Rows where dataset column `label` has runs (ok or not)."""
    return (df[label] != MISSING) | (df[f"{label} non-ok"] > 0)


def _single_T(df: pd.DataFrame, label: str):
    Ts = set(df.loc[_ran(df, label), "T"])
    return next(iter(Ts)) if len(Ts) == 1 else None


def _collapsible(df: pd.DataFrame, labels: list[str], papers: list[str]) -> bool:
    """Whether each dataset column holds one T (Tables 2-4, 6): then a row per variant will do."""
    if "T" not in df or "variant" not in df or not labels:
        return False
    if any(_single_T(df, c) is None and _ran(df, c).any() for c in labels):
        return False
    per_variant = df.groupby("variant", sort=False)
    return all((per_variant[p].nunique(dropna=False) <= 1).all() for p in papers)


def wide_table(name: str, df: pd.DataFrame, runs: CellRuns | None) -> PageTable:
    """A paper table (rows variant[, T], a ``<dataset>`` cell column with ``n``/``non-ok``/numbers
    beside it, the paper's columns) with one formatted column per dataset."""
    labels = [c for c in df.columns if f"{c} n" in df.columns]
    papers = [c for c in df.columns if is_paper_column(c)]
    hidden = {*df.attrs.get(CSV_ONLY, ()), *(f"{c} {k}" for c in labels for k in ("n", "non-ok"))}
    keys = [c for c in df.columns if c not in {*labels, *papers, *hidden}]
    collapse = _collapsible(df, labels, papers)
    Ts = {c: _single_T(df, c) for c in labels} if collapse else {}
    index = df.drop_duplicates("variant") if collapse else df
    keys = [k for k in keys if not (collapse and k == "T")]
    sweep = SWEEP_OF.get(name)
    columns = _plain(index[keys])
    not_ok = 0
    for label in labels:
        cells = []
        for _, row in index.iterrows():
            T = Ts.get(label, row.get("T"))
            src = (
                df[(df["variant"] == row["variant"]) & (df["T"] == T)]
                if collapse
                else df.loc[[row.name]]
            )
            text = src[label].iloc[0] if len(src) else MISSING
            bad = int(src[f"{label} non-ok"].iloc[0]) if len(src) else 0
            not_ok += bad
            detail = None
            if runs is not None and sweep and (text != MISSING or bad):
                detail = runs.cell(sweep, _dataset_of(label), row["variant"], T)
            cells.append(Cell(text + (f" ({bad} not ok)" if bad else ""), detail))
        head = f"{label}\nT = {Ts[label]}" if Ts.get(label) is not None else label
        columns.append((head, cells))
    columns += _plain(index[papers])
    ns = df[[f"{c} n" for c in labels]].to_numpy().ravel()
    caption = [f"Cells: top-1 accuracy (%) at t = T, mean [95 % CI] over {_seed_range(ns)}"]
    if not_ok:
        caption.append(
            "(k not ok): runs that failed, diverged or ran out of memory, not in the mean"
        )
    caption.append("–: not run" + ("; shaded: the paper's numbers." if papers else "."))
    return _assemble(name, "; ".join(caption), columns)


# -- comparisons: one effect column, verdicts marked -------------------------------------------------
def _effect_column(df, label, mean, pair_of) -> tuple[str, list[Cell]]:
    cells = []
    for _, row in df.iterrows():
        text = format_diff(row[mean], row["ci_low"], row["ci_high"])
        cells.append(Cell(text, pair_of(row)))
    return label, cells


def claims_page(
    df: pd.DataFrame, runs: CellRuns | None, prepared: pd.DataFrame | None
) -> PageTable:
    def pair_of(row):
        if runs is None or prepared is None or pd.isna(row["T"]) or row["dataset"] is None:
            return None
        sides = claim_sides(prepared, row["claim"], row["dataset"], int(row["T"]))
        return runs.pairs(row["sweep"], row["dataset"], *sides) if sides else None

    claim = [
        Cell(c if i == 0 or c != df["claim"].iloc[i - 1] else "") for i, c in enumerate(df["claim"])
    ]
    known = {"claim", "sweep", "effect", "ci_low", "ci_high", "ci_method", "verdict", "p_ttest_rel"}
    columns = [("claim", claim), *_plain(df[["dataset", "T", "comparison", "n"]])]
    columns.append(_effect_column(df, "effect [95 % CI]", "effect", pair_of))
    columns += _plain(df[["p_ttest_rel"]].rename(columns={"p_ttest_rel": "p (paired t test)"}))
    columns.append(("verdict", [verdict_cell(v) for v in df["verdict"]]))
    shown = {*known, "dataset", "T", "comparison", "n"}
    columns += _plain(df, skip=shown)  # columns added later (e.g. leave-one-seed-out firmness)
    caption = (
        "Each claim as a paired difference a − b in accuracy points over the seeds both sides ran "
        f"ok (same seed): effect = {stats.CI_CELLS.replace('over seeds', 'over pairs')}. "
        "✔ supported: the interval lies above 0; ✘ not supported: below 0 (the opposite holds); "
        "? inconclusive: it covers 0. Click an effect for its seeds and runs."
    )
    return _assemble("claims", caption, columns)


def paired_page(df: pd.DataFrame, runs: CellRuns | None) -> PageTable:
    def pair_of(row):
        if runs is None:
            return None
        return runs.pairs("latency", row["dataset"], ("hsd", row["T"]), (row["baseline"], row["T"]))

    renamed = df.rename(columns={"hsd_mean": "HSD (%)", "baseline_mean": "baseline (%)"})
    columns = _plain(renamed[["dataset", "T", "baseline", "HSD (%)", "baseline (%)"]])
    columns.append(_effect_column(df, "HSD − baseline [95 % CI]", "diff_mean", pair_of))
    p_values = {"p_ttest_rel": "p (paired t test)", "p_wilcoxon": "p (Wilcoxon)"}
    columns += _plain(df[["n", *p_values]].rename(columns=p_values))
    columns.append(("verdict", [verdict_cell(v) for v in df["verdict"]]))
    skip = {"dataset", "T", "baseline", "hsd_mean", "baseline_mean", "diff_mean", "ci_low",
            "ci_high", "ci_method", "n", "p_ttest_rel", "p_wilcoxon", "verdict"}  # fmt: skip
    if "unpaired" in df and (df["unpaired"] == 0).all():
        skip.add("unpaired")
    columns += _plain(df, skip=skip)
    caption = (
        "HSD − baseline in accuracy points at t = T, paired by seed: "
        f"{stats.CI_CELLS.replace('over seeds', 'over pairs')}; HSD (%) and baseline (%) are "
        "means over every ok seed. p: paired t test and Wilcoxon signed-rank (two-sided; below 6 "
        "pairs Wilcoxon cannot reach 0.05). " + SEEDS_HINT
    )
    return _assemble("paired", caption, columns)


# -- every other table -------------------------------------------------------------------------------
def tidy_table(name: str, df: pd.DataFrame, runs: CellRuns | None) -> PageTable:
    """A frame with ``mean``/``ci_low``/``ci_high``/``n`` per row: one ``mean [95 % CI]`` column."""
    cells = []
    for _, row in df.iterrows():
        detail = None
        sweep = row.get("sweep", SWEEP_OF.get(name))
        if runs is not None and sweep and {"dataset", "variant", "T"} <= set(row.index):
            t = int(row["t"]) if "t" in row and pd.notna(row["t"]) else None
            detail = runs.cell(sweep, row["dataset"], row["variant"], row["T"], t)
        cells.append(
            Cell(format_cell(row["mean"], row["ci_low"], row["ci_high"], row["n"]), detail)
        )
    skip = {"mean", "std", "ci_low", "ci_high", "ci_method"}
    if "non_ok" in df and (df["non_ok"] == 0).all():
        skip.add("non_ok")
    first = list(df.columns).index("mean")
    columns = _plain(df.iloc[:, :first], skip)
    columns.append(("acc (%) [95 % CI]", cells))
    columns += _plain(df.iloc[:, first:], skip)
    caption = f"acc (%): top-1 accuracy, {stats.CI_CELLS}; n: seeds. " + SEEDS_HINT
    return _assemble(name, caption, columns)


def generic_table(name: str, df: pd.DataFrame, runs: CellRuns | None = None) -> PageTable:
    """Any other table, ``X``/``X ci95`` pairs merged into ``X ± ci`` (`merge_intervals`)."""
    table = merge_intervals(df)
    columns = _plain(table)
    if name == "status" and runs is not None and "total" in table:
        # the run count of a (sweep, dataset, variant) opens onto its runs
        cells = [
            Cell(str(total), runs.cell(r["sweep"], r["dataset"], r["variant"]))
            for (_, r), total in zip(table.iterrows(), table["total"], strict=True)
        ]
        columns = [(c, cells if c == "total" else col) for c, col in columns]
    meaning = cells_note(name, table)
    caption = f"Cells: {meaning}." if meaning else ""
    notes = df.attrs.get(NOTES, "")
    if notes and not notes.startswith("Cells:"):
        caption = f"{caption} {notes}".strip()
    return _assemble(name, caption, columns)


def frame_table(
    name: str,
    df: pd.DataFrame,
    *,
    title: str,
    caption: str = "",
    verdicts: tuple[str, ...] = (),
    runs: dict[str, list] | None = None,
) -> PageTable:
    """A frame shown as it is (numbers formatted), `verdicts` columns marked; `runs` maps a column
    to the runs behind each of its cells (a DataFrame or None per row)."""
    columns = []
    for c in df.columns:
        cells = [verdict_cell(v) if c in verdicts else Cell(text_of(v, c)) for v in df[c]]
        for cell, detail in zip(cells, (runs or {}).get(c, [None] * len(df)), strict=True):
            cell.runs = detail
        columns.append((c, cells))
    return _assemble(name, caption, columns, title=title)


def page_table(
    name: str,
    df: pd.DataFrame,
    runs: CellRuns | None = None,
    prepared: pd.DataFrame | None = None,
) -> PageTable:
    """The page form of report table `name` (see the module docstring)."""
    if name == "claims" and {"effect", "verdict"} <= set(df.columns):
        return claims_page(df, runs, prepared)
    if name == "paired" and {"diff_mean", "verdict"} <= set(df.columns):
        return paired_page(df, runs)
    if any(f"{c} n" in df.columns for c in df.columns) and df.attrs.get(CSV_ONLY):
        return wide_table(name, df, runs)
    if {"mean", "ci_low", "ci_high", "n"} <= set(df.columns):
        return tidy_table(name, df, runs)
    return generic_table(name, df, runs)
