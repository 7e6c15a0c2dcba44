"""One self-contained ``report.html`` for a sweep folder, answer first; opens offline.

Order of the page: what was run (sweep, datasets, methods, seeds, profile, machine, and a warning
when the data is simulated), Figure 2 and the early-exit plot, the paper's claims with their
verdicts marked, the paper's tables (one formatted column per dataset, `harness.report.page_tables`),
the other comparisons and data tables, the learning curves when the folder has their plots
(``plots/curves*.png``), and provenance last. Every measured cell opens onto its seeds and runs
(``<details>``). Plots are embedded as ``data:`` URIs; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from harness.report import paper, stats, store_facts
from harness.report.aggregate import VARIANT_ORDER
from harness.report.cell_runs import CellRuns
from harness.report.latex import is_paper_column
from harness.report.page_tables import PageTable, page_table, text_of

REPORT_FILE = "report.html"
SHORT_CELL = 24  # cells up to this many characters stay on one line
CURVES_GLOB = "curves*.png"

#: (anchor, title, tables, plots) of the sections after the claims, in page order
SECTIONS = (
    ("tables", "The paper's tables", ("table1", "figure2", "table2", "table3", "table4", "table5",
                                     "table6"), ()),
    ("paired", "HSD against each baseline", ("paired", "rank_stability"), ("paired_differences",)),
    ("early-exit", "Early exit", ("early_exit_budget", "early_exit_frontier", "early_exit"),
     ("early_exit_stream",)),
    ("costs", "Accuracy against steps, energy and stream",
     ("figure2_data", "figure2_any_t", "energy", "stream_fraction"),
     ("figure2_any_t", "accuracy_vs_energy", "accuracy_vs_stream_fraction")),
    ("runs", "Runs", ("status", "failures"), ()),
)  # fmt: skip
TOP_PLOTS = ("figure2", "early_exit_steps")
#: long data tables start folded (the plots above them show the same numbers)
FOLDED = frozenset({"early_exit", "early_exit_frontier", "figure2_data", "figure2_any_t",
                    "energy", "stream_fraction", "rank_stability"})  # fmt: skip
#: what every table of a section holds, said once above them
INTROS = {
    "tables": f"Measured cells: top-1 accuracy (%) at t = T, {stats.CI_CELLS}. Click a cell for "
    "the seeds and runs behind it. Shaded columns hold the paper's numbers, never measured here; "
    "the CSV and LaTeX files under tables/ keep n, mean and the interval bounds as numbers.",
}
PLOT_CAPTIONS = {
    "figure2": "Figure 2: top-1 accuracy (%) at t = T against T; bands: 95 % confidence interval "
    "over seeds; hollow markers: the paper's values at T = 1 (real datasets only).",
    "early_exit_steps": "Early exit: accuracy against the mean exit step, a curve over confidence "
    "thresholds per method (its model trained at the largest T), 95 % intervals over seeds, and "
    "the Pareto frontier over every method, T and threshold.",
    "early_exit_stream": "Early exit: accuracy against the mean share of the event stream "
    "consumed at exit.",
    "paired_differences": "HSD − baseline accuracy against T, paired by seed, 95 % intervals.",
    "figure2_any_t": "Accuracy at every step t of the model trained at the largest T.",
    "accuracy_vs_energy": "Accuracy against estimated energy per sample (45 nm MAC/AC model).",
    "accuracy_vs_stream_fraction": "Accuracy against the share of the event stream consumed "
    "before the decision.",
}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin: 1.5em 0 0.3em; }
nav { font-size: 0.9em; color: #555; } nav a { margin-right: 0.8em; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dl.summary dt { font-weight: 600; } dl.summary dd { margin: 0; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.3em 0 1em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: left;
         vertical-align: top; }
th { border-bottom: 2px solid #444; background: #f6f6f6; }
th .sub { font-weight: normal; font-size: 0.9em; }
td.num, th.num { text-align: right; } td.num { white-space: nowrap; }
th.paper, td.paper { background: #fdf6e3; font-style: italic; }
td.v-yes { background: #e2f3e0; color: #1b5e20; font-weight: 600; white-space: nowrap; }
td.v-no { background: #fde3e1; color: #8e1b1b; font-weight: 600; white-space: nowrap; }
td.v-maybe { background: #f2f2f2; color: #555; white-space: nowrap; }
td.v-none { color: #999; } td.nw { white-space: nowrap; }
td.v-same { background: #eef3f8; color: #2c4a66; white-space: nowrap; }
td.v-diff { background: #fff0d9; color: #7a4300; font-weight: 600; white-space: nowrap; }
details summary { cursor: pointer; }
details table { font-size: 0.95em; margin: 0.3em 0; background: #fbfbfb; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .caption { color: #555; font-size: 0.85em; max-width: 75em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em;
      white-space: pre-wrap; }
.note { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.5em 0.8em; }
.warning { background: #fde3e1; border-left: 4px solid #c62828; padding: 0.5em 0.8em; }
"""


def image_data_uri(path: str | Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _runs_html(runs: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in runs.columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(text_of(v, str(c)))}</td>" for c, v in r.items())
        + "</tr>"
        for _, r in runs.iterrows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def table_html(table: PageTable) -> str:
    """A page table; cells with runs behind them expand (``<details>``) into those runs."""
    numeric = [table.numeric(j) for j in range(len(table.columns))]

    def cls(j: int, extra: str = "") -> str:
        names = [n for n in (extra, "num" if numeric[j] else "") if n]
        if is_paper_column(table.columns[j]):
            names.append("paper")
        return f' class="{" ".join(names)}"' if names else ""

    def header(c: str) -> str:
        if is_paper_column(c):
            return html.escape(c[len("paper (") : -1]) + '<br><span class="sub">the paper\'s</span>'
        return "<br>".join(html.escape(part) for part in c.split("\n"))

    head = "".join(f"<th{cls(j)}>{header(str(c))}</th>" for j, c in enumerate(table.columns))
    body = []
    for row in table.rows:
        cells = []
        for j, cell in enumerate(row):
            text = html.escape(cell.text)
            if cell.runs is not None and len(cell.runs):
                text = f"<details><summary>{text}</summary>{_runs_html(cell.runs)}</details>"
            short = "nw" if len(cell.text) <= SHORT_CELL else ""  # never break "sim-gestures"
            cells.append(f"<td{cls(j, ' '.join(filter(None, (cell.mark, short))))}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll" id="t-{html.escape(table.name)}"><table><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def table_block(table: PageTable, folded: bool = False) -> str:
    """Title, caption and table; a `folded` table opens on demand."""
    parts = [f'<h3 id="{html.escape(table.name)}">{html.escape(table.title)}</h3>']
    if table.caption:
        parts.append(f'<p class="caption">{html.escape(table.caption)}</p>')
    body = table_html(table)
    if folded:
        body = f"<details><summary>show {len(table.rows)} rows</summary>{body}</details>"
    return "\n".join([*parts, body])


def _figure(path: Path) -> str:
    caption = PLOT_CAPTIONS.get(path.stem, path.stem.replace("_", " "))
    return (
        f'<figure><img src="{image_data_uri(path)}" alt="{html.escape(path.stem)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _join(items: Iterable) -> str:
    return ", ".join(str(i) for i in items) or "(not recorded)"


def _variants(rows: pd.DataFrame, sweep: str) -> list[str]:
    """The variants of `sweep` in `rows`, in the order its tables list them."""
    present = set(rows.loc[rows["sweep"] == sweep, "variant"].dropna())
    order = VARIANT_ORDER.get(sweep, ())
    return [v for v in order if v in present] + sorted(present - set(order))


def summary(out_dir: str | Path, rows: pd.DataFrame | None) -> tuple[dict[str, str], list[str]]:
    """What was run, as (label -> text, warnings): sweep, datasets, methods, seeds, profile, runs,
    machine and time (from ``COMMAND.txt``)."""
    args = store_facts.manifest(out_dir).get("args", {}) or {}
    info: dict[str, str] = {"sweep": str(store_facts.manifest(out_dir).get("sweep", "?"))}
    warnings: list[str] = []
    if rows is not None and len(rows):
        sweeps = store_facts.values(rows, "sweep")
        info["sweep"] += f" (tables of: {', '.join(sweeps)})" if len(sweeps) > 1 else ""
        datasets = store_facts.values(rows, "dataset")
        sim = [d for d in datasets if d in paper.SIMULATED_DATASETS]
        info["datasets"] = _join(f"{d} (simulated)" if d in sim else d for d in datasets)
        info["methods"] = _join(_variants(rows, "latency") or store_facts.values(rows, "method"))
        others = [s for s in sweeps if s not in ("latency", "params")]
        if others:
            info["variants of the other tables"] = "; ".join(
                f"{s}: {', '.join(_variants(rows, s))}" for s in others
            )
        seeds = store_facts.values(rows, "seed")
        info["seeds"] = f"{len(seeds)} ({', '.join(seeds)})" if seeds else "(not recorded)"
        runs = rows.drop_duplicates("run_id")
        trained = runs[runs["seed"].notna()]  # parameter counts (Table 5) have no seed
        counts = trained["status"].value_counts()
        info["runs"] = f"{len(trained)} trainings: " + ", ".join(
            f"{n} {s}" for s, n in counts.items()
        )
        if len(runs) > len(trained):
            info["runs"] += f"; {len(runs) - len(trained)} parameter counts (no training)"
        if sim:
            warnings.append(
                f"Simulated data: {', '.join(sim)} are generated by this project's event-camera "
                "simulator. Their numbers show how the methods compare on them; they are not "
                "comparable with the paper's numbers, which are on recorded datasets."
            )
    info["profile"] = str(args.get("profile") or _join(store_facts.values(rows, "profile")))
    blocks = store_facts.command_blocks(out_dir)
    if blocks:
        machines = sorted({b["machine"] for b in blocks if "machine" in b})
        info["machine"] = "; ".join(machines) or "(not recorded)"
        if rows is not None:
            info["device"] = _join(store_facts.values(rows, "device"))
        wall = sum(float(b.get("wall_s", 0) or 0) for b in blocks)
        when = f"{blocks[0].get('start', '?')} to {blocks[-1].get('end', '?')}"
        info["when"] = f"{when}, {wall / 60:.1f} min of sweep" if wall else when
        commits = sorted({b["git_commit"] for b in blocks if "git_commit" in b})
        info["commit"] = _join(commits)
    return info, warnings


def render(
    *,
    title: str,
    tables: dict[str, pd.DataFrame],
    plots: Iterable[str | Path] = (),
    notes: Iterable[str] = (),
    info: dict[str, str] | None = None,
    what: tuple[dict[str, str], list[str]] | None = None,
    rows: pd.DataFrame | None = None,
    curves: Iterable[str | Path] = (),
) -> str:
    """The page as a string. `plots` and `curves` are PNG files, each embedded, never linked;
    `what` is `summary`'s answer, `rows` the prepared rows cells expand into."""
    runs = CellRuns(rows) if rows is not None and len(rows) else None
    pngs = {Path(p).stem: Path(p) for p in plots}
    present = {n: t for n, t in tables.items() if t is not None and not t.empty}

    def block(name: str) -> str:
        return table_block(page_table(name, present.pop(name), runs, rows), name in FOLDED)

    parts = []
    sections = [("summary", "What was run"), ("figures", "Figure 2 and early exit")]
    sections += [("claims", "The paper's claims")] if "claims" in present else []
    sections += [(a, t) for a, t, names, _ in SECTIONS if any(n in present for n in names)]
    curves = [Path(c) for c in curves]
    sections += [("curves", "Learning curves")] if curves else []
    sections.append(("provenance", "Provenance"))
    nav = "".join(f'<a href="#s-{a}">{html.escape(t)}</a>' for a, t in sections[1:])
    parts.append(f"<nav>{nav}</nav>")
    facts, warnings = what or ({}, [])
    parts.append('<section id="s-summary"><h2>What was run</h2>')
    parts += [f'<p class="warning">{html.escape(w)}</p>' for w in warnings]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    if facts:
        items = "".join(
            f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items()
        )
        parts.append(f'<dl class="summary">{items}</dl>')
    parts.append('</section><section id="s-figures"><h2>Figure 2 and early exit</h2>')
    top = [pngs.pop(s) for s in TOP_PLOTS if s in pngs]
    parts += [_figure(p) for p in top] or ["<p>No plots (built with --no-plots, or no data).</p>"]
    parts.append("</section>")
    if "claims" in present:
        parts.append('<section id="s-claims"><h2>The paper\'s claims</h2>')
        parts.append(block("claims") + "</section>")
    for anchor, heading, names, stems in SECTIONS:
        if not any(n in present for n in names):
            continue
        parts.append(f'<section id="s-{anchor}"><h2>{html.escape(heading)}</h2>')
        if anchor in INTROS:
            parts.append(f"<p>{html.escape(INTROS[anchor])}</p>")
        parts += [_figure(pngs.pop(s)) for s in stems if s in pngs]
        parts += [block(n) for n in names if n in present]
        parts.append("</section>")
    if present or pngs:  # tables and plots no section claims: shown, never dropped
        parts.append('<section id="s-other"><h2>Other tables and plots</h2>')
        parts += [block(n) for n in list(present)] + [_figure(p) for p in pngs.values()]
        parts.append("</section>")
    if curves:
        parts.append('<section id="s-curves"><h2>Learning curves</h2>')
        parts += [_figure(p) for p in curves] + ["</section>"]
    parts.append('<section id="s-provenance"><h2>Provenance</h2>')
    for key, value in (info or {}).items():
        parts.append(f"<h3>{html.escape(key)}</h3><pre>{html.escape(value)}</pre>")
    parts.append("</section>")
    return page_shell(title, parts)


def page_shell(title: str, body: Iterable[str]) -> str:
    """A whole page: head (title, style), the title as heading, then `body`."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *body,
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_html(
    out_dir: str | Path,
    tables: dict[str, pd.DataFrame],
    *,
    plots: Iterable[str | Path] = (),
    notes: Iterable[str] = (),
    rows: pd.DataFrame | None = None,
) -> Path:
    """Write ``<out_dir>/report.html`` (PNG plots embedded) and return its path.

    Learning-curve plots (``plots/curves*.png``) are found in the folder, whoever wrote them.
    """
    out = Path(out_dir)
    pngs = [p for p in plots if Path(p).suffix == ".png"]
    curves = sorted((out / "plots").glob(CURVES_GLOB))
    page = render(
        title=f"Results of {out.resolve().name}",
        tables=tables,
        plots=[p for p in pngs if Path(p).name not in {c.name for c in curves}],
        notes=notes,
        info=store_facts.provenance(out, rows),
        what=summary(out, rows),
        rows=rows,
        curves=curves,
    )
    return write_text_atomic(out / REPORT_FILE, page)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file, so a reader never sees half a page."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
