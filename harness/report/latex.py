"""Report tables as LaTeX (booktabs), ready to ``\\input`` into a paper.

Generic over any table of the report (a DataFrame by name):

- a pair of columns ``X`` and ``X ci95`` becomes one column ``X`` with cells ``mean ± interval``;
  a tidy ``mean``/``std`` pair becomes ``acc (%)`` with ``mean ± std``; cells already written as
  ``81.10 ± 0.50`` are kept;
- in every column of such values (and in the paper's columns) the best value is bold: the
  highest, or for cost columns (exit step, stream fraction, energy) the lowest when only one
  row has it; per dataset when the table has a ``dataset`` column;
- the paper's columns (``paper (<dataset>)``) are marked with a dagger and a note under the
  table saying they are the paper's numbers, not measurements;
- a ``non-ok`` column that is all zero is left out (nothing failed).

Needs ``\\usepackage{booktabs}`` in the document.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report import stats

PAPER_TITLE = (
    "Towards Low-latency Event-based Visual Recognition with Hybrid Step-wise Distillation "
    "Spiking Neural Networks"
)
#: a title per table of the report (others are named after their file)
TITLES = {
    "claims": "Claims of the paper checked against our measurements",
    "table1": "Table 1: top-1 accuracy (%) at each dataset's T",
    "figure2": "Figure 2 as a table: top-1 accuracy (%) at t = T versus T",
    "figure2_data": "Top-1 accuracy (%) at t = T per dataset, method and T",
    "figure2_any_t": "Top-1 accuracy (%) at every step t of the model trained at the largest T",
    "table2": "Table 2: ablation of hybrid training (HT) and step-wise distillation (SKD)",
    "table3": "Table 3: quantization step L of the pre-trained ANN",
    "table4": "Table 4: hybrid training added to TET and SLTT",
    "table5": "Table 5: parameters per dataset and architecture",
    "table6": "Table 6: vanilla knowledge-distillation variants",
    "energy": "Accuracy (%) and estimated energy per sample (J, 45 nm MAC/AC model)",
    "stream_fraction": "Accuracy (%) and share of the event stream consumed",
    "early_exit": "Early exit at a confidence threshold (test split)",
    "early_exit_frontier": "Pareto frontier of early exit: accuracy against mean exit step",
    "early_exit_budget": (
        "Accuracy (%) at a latency budget (mean exit ≤ B steps), threshold chosen on validation"
    ),
    "paired": "HSD against each baseline, paired by seed",
    "rank_stability": "How stable the ranking of the methods is over seeds",
    "status": "Runs per status",
    "failures": "Runs that did not finish",
    "curve_flags": "Runs flagged by their learning curves",
}
#: what "±" means in each table of the report (tables not listed say nothing)
INTERVALS = {
    "early_exit": "mean ± 95 % Student-t confidence interval over seeds",
    "early_exit_frontier": "mean ± 95 % Student-t confidence interval over seeds",
    "early_exit_budget": "mean ± 95 % Student-t confidence interval over seeds",
}
#: what "±" means elsewhere: `merge_intervals` writes tidy frames' mean and std as "mean ± std"
DEFAULT_INTERVAL = "mean ± sample standard deviation over seeds"
#: a cell written ``mean [low, high]`` (`harness.report.aggregate.format_cell`)
_CI_CELL = re.compile(r"^\s*[-+]?[\d.]+ \[[-+]?[\d.]+, [-+]?[\d.]+\]\s*$")
_PM = re.compile(r"^\s*(-?[\d.]+(?:e[-+]?\d+)?)\s*±\s*([\d.]+(?:e[-+]?\d+)?)\s*$")
_LOWER_IS_BETTER = re.compile(r"exit|stream|fraction|energy|macs|acs|latency", re.I)
_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "±": r"$\pm$",
    "–": "--",
    "∞": r"$\infty$",
}


def escape(text: str) -> str:
    """Plain text as LaTeX (special characters escaped, ≤ ± – as math or dashes)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def is_paper_column(name: str) -> bool:
    return str(name).startswith("paper (")


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


#: columns whose values need every digit (a threshold of 0.995 is not 1.00)
PRECISE_COLUMNS = frozenset({"threshold"})


def fmt_number(v: float, column: str = "") -> str:
    """Plain-text number: 2 decimals, 3 significant digits when tiny or huge, ∞ for infinity."""
    v = float(v)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if column in PRECISE_COLUMNS:
        return f"{v:g}"
    if v == 0 or 0.01 <= abs(v) < 1e6:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _tex_number(text: str) -> str:
    """A number printed by `fmt_number` as LaTeX math content (1.2e-07 -> 1.2 \times 10^{-7})."""
    if text in ("∞", "-∞"):
        return text.replace("∞", r"\infty")
    if "e" in text:
        mant, exp = text.split("e")
        return rf"{mant} \times 10^{{{int(exp)}}}"
    return text


def merge_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """``X`` + ``X ci95`` -> ``X`` = "m ± ci"; tidy ``mean`` + ``std`` -> ``acc (%)``."""
    out = df.copy()
    pairs = [(c, f"{c} ci95") for c in df.columns if f"{c} ci95" in df.columns]
    if "mean" in df.columns and "std" in df.columns:
        pairs.append(("mean", "std"))
    for value, interval in pairs:
        cells = []
        for m, i in zip(out[value], out[interval], strict=True):
            if _missing(m):
                cells.append("–")
            elif _missing(i) or not math.isfinite(float(m)):
                cells.append(fmt_number(m, value))
            else:
                cells.append(f"{fmt_number(m, value)} ± {fmt_number(i, value)}")
        out[value] = cells
        out = out.drop(columns=interval)
    if ("mean", "std") in pairs:
        out = out.rename(columns={"mean": "acc (%)"})
    drop = [c for c in out.columns if str(c).endswith(("non-ok", "non_ok")) and (out[c] == 0).all()]
    return out.drop(columns=drop)


def cells_note(name: str, table: pd.DataFrame) -> str:
    """What the cells of `table` (after `merge_intervals`) hold, for its caption; "" when no cell
    carries an interval (plain numbers, whose columns say what they are)."""

    def any_cell(test) -> bool:
        return any(table[c].map(lambda v: isinstance(v, str) and test(v)).any() for c in table)

    if any_cell(lambda v: bool(_CI_CELL.match(v))):
        return stats.CI_CELLS
    if name in INTERVALS:
        return INTERVALS[name]
    return DEFAULT_INTERVAL if any_cell(lambda v: "±" in v) else ""


def _mean_of(v) -> float:
    """The mean of a "m ± i" cell or a number; NaN otherwise."""
    if isinstance(v, str):
        m = _PM.match(v)
        if m:
            return float(m.group(1))
        try:
            return float(v)
        except ValueError:
            return math.nan
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return float(v)
    return math.nan


def best_mask(df: pd.DataFrame) -> pd.DataFrame:
    """True where a cell is the best of its column (per dataset when the table has one)."""
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    groups = df.groupby("dataset", sort=False).groups if "dataset" in df else {None: df.index}
    for col in df.columns:
        values = df[col]
        scored = values.map(lambda v: isinstance(v, str) and "±" in v).any()
        if not (scored or is_paper_column(col)):
            continue
        means = values.map(_mean_of).astype(float)
        lower = bool(_LOWER_IS_BETTER.search(str(col)))
        for idx in groups.values():
            sub = means.loc[idx]
            if sub.notna().sum() < 2:
                continue
            best = sub.min() if lower else sub.max()
            hits = sub.index[sub == best]
            if lower and len(hits) > 1:
                continue  # a cost every point ties on (e.g. 1 step at T = 1) singles nothing out
            mask.loc[hits, col] = True
    return mask


def _cell(v, bold: bool, column: str = "") -> str:
    if _missing(v):
        text = "--"
    elif isinstance(v, (float, np.floating)):
        text = f"${_tex_number(fmt_number(v, column))}$"
        if not re.search(r"\\", text):  # plain decimals need no math mode
            text = text.strip("$")
    elif isinstance(v, str) and _PM.match(v):
        m = _PM.match(v)
        a, b = _tex_number(m.group(1)), _tex_number(m.group(2))
        if bold:  # \textbf does not reach into math mode
            return rf"$\mathbf{{{a}}} \pm \mathbf{{{b}}}$"
        return rf"${a} \pm {b}$"
    else:
        text = escape(v)
    return rf"\textbf{{{text}}}" if bold else text


def _header(col: str) -> str:
    if is_paper_column(col):
        return escape(str(col)[len("paper (") : -1]) + r"$^\dagger$"
    return escape(col)


def to_latex(df: pd.DataFrame, *, name: str = "", caption: str | None = None) -> str:
    """A booktabs ``table`` environment for `df` (see the module docstring for the rules)."""
    table = merge_intervals(df).reset_index(drop=True)
    bold = best_mask(table)
    numeric = [
        pd.api.types.is_numeric_dtype(table[c])
        or table[c].map(lambda v: isinstance(v, str) and "±" in v).any()
        for c in table.columns
    ]
    spec = "".join("r" if n else "l" for n in numeric)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_header(c) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    for i in range(len(table)):
        cells = [
            _cell(table.iat[i, j], bool(bold.iat[i, j]), str(table.columns[j]))
            for j in range(table.shape[1])
        ]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    meaning = cells_note(name, table)
    text = caption or TITLES.get(name, name.replace("_", " "))
    said = [f"Cells: {meaning}"] if meaning else []
    if bold.to_numpy().any():
        said.append("best per column in bold" if said else "Best per column in bold")
    note = f"{text}." + (f" {'; '.join(said)}." if said else "")
    if any(is_paper_column(c) for c in table.columns):
        note += f" $^\\dagger$ As reported in the paper ``{PAPER_TITLE}'', not measured here."
    lines.append(rf"\caption{{{escape_caption(note)}}}")
    if name:
        lines.append(rf"\label{{tab:{name.replace('_', '-')}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def escape_caption(text: str) -> str:
    """Escape a caption but keep the inline math markers we put there ourselves."""
    parts = re.split(r"(\$\^\\dagger\$)", text)
    return "".join(p if p == r"$^\dagger$" else escape(p) for p in parts)


def write_latex(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """``<out_dir>/<name>.tex`` for every non-empty table; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in tables.items():
        if table is None or table.empty:
            continue
        path = out / f"{name}.tex"
        path.write_text(to_latex(table, name=name))
        paths.append(path)
    return paths
