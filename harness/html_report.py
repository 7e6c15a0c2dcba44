"""One self-contained ``report.html`` for a sweep folder: opens offline, no external resources.

Tables (any in the report's ``tables`` dict; a table named ``claims`` comes first), plots embedded
as ``data:`` URIs (their PNG files), notes (e.g. missing early-exit data), and provenance: the
folder's ``COMMAND.txt`` (commands, machine, start/end, wall time) and ``sweep.json``, and from the
rows the git commits, devices, seeds and the time the report was built.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from harness.latex import (
    DEFAULT_INTERVAL,
    INTERVALS,
    TITLES,
    fmt_number,
    is_paper_column,
    merge_intervals,
)
from harness.store import MANIFEST_FILE, PROVENANCE_FILE

REPORT_FILE = "report.html"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { border-bottom: 2px solid #444; background: #f6f6f6; }
td.text, th.text { text-align: left; }
th.paper, td.paper { background: #fdf6e3; font-style: italic; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.note { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.5em 0.8em; }
.caption { color: #555; font-size: 0.85em; }
"""


def _cell(v, column: str) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return fmt_number(v, column)
    return str(v)


def table_html(df: pd.DataFrame) -> str:
    """A plain HTML table; the paper's columns are shaded and labelled as the paper's."""
    table = merge_intervals(df)
    numeric = {
        c: pd.api.types.is_numeric_dtype(table[c])
        or table[c].map(lambda v: isinstance(v, str) and "±" in v).any()
        for c in table.columns
    }

    def cls(c) -> str:
        names = ([] if numeric[c] else ["text"]) + (["paper"] if is_paper_column(c) else [])
        return f' class="{" ".join(names)}"' if names else ""

    head = "".join(
        f"<th{cls(c)}>"
        + (
            html.escape(str(c)[len("paper (") : -1]) + " (the paper's, not measured)"
            if is_paper_column(c)
            else html.escape(str(c))
        )
        + "</th>"
        for c in table.columns
    )
    body = []
    for row in table.itertuples(index=False):
        cells = "".join(
            f"<td{cls(c)}>{html.escape(_cell(v, str(c)))}</td>"
            for c, v in zip(table.columns, row, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def image_data_uri(path: str | Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def provenance(out_dir: str | Path, rows: pd.DataFrame | None) -> dict[str, str]:
    """What produced the folder: commands, manifest, commits, devices, seeds, report time."""
    out = Path(out_dir)
    info: dict[str, str] = {}
    command = out / PROVENANCE_FILE
    info["commands and machine (COMMAND.txt)"] = (
        command.read_text() if command.exists() else "(no COMMAND.txt in this folder)"
    )
    manifest = out / MANIFEST_FILE
    if manifest.exists():
        try:
            info["sweep (sweep.json)"] = json.dumps(json.loads(manifest.read_text()), indent=2)
        except json.JSONDecodeError:
            info["sweep (sweep.json)"] = manifest.read_text()
    if rows is not None and len(rows):

        def values(col: str) -> str:
            if col not in rows:
                return "(not recorded)"
            vals = sorted({str(v) for v in rows[col].dropna()})
            return ", ".join(vals) if vals else "(not recorded)"

        info["git commits of the runs"] = values("git_commit")
        info["devices"] = values("device")
        info["seeds"] = values("seed")
        info["runs"] = str(rows["run_id"].nunique()) if "run_id" in rows else "?"
    info["report built"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return info


def render(
    *,
    title: str,
    tables: dict[str, pd.DataFrame],
    plots: Iterable[str | Path] = (),
    notes: Iterable[str] = (),
    info: dict[str, str] | None = None,
) -> str:
    """The page as a string. `plots` are PNG files; each is embedded, never linked."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for note in notes:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    names = [n for n in tables if tables[n] is not None and not tables[n].empty]
    names.sort(key=lambda n: n != "claims")  # the claims table first when present
    if names:
        parts.append("<h2>Contents</h2><ul>")
        parts += [f'<li><a href="#{n}">{html.escape(TITLES.get(n, n))}</a></li>' for n in names]
        parts.append('<li><a href="#plots">Plots</a></li>')
        parts.append('<li><a href="#provenance">Provenance</a></li></ul>')
    for name in names:
        interval = INTERVALS.get(name, DEFAULT_INTERVAL)
        parts.append(f'<h2 id="{name}">{html.escape(TITLES.get(name, name))}</h2>')
        parts.append(
            f'<p class="caption">Table <code>{html.escape(name)}</code>; cells with ± are '
            f"{html.escape(interval)}.</p>"
        )
        parts.append(table_html(tables[name]))
    parts.append('<h2 id="plots">Plots</h2>')
    any_plot = False
    for path in plots:
        path = Path(path)
        any_plot = True
        parts.append(
            f'<figure><img src="{image_data_uri(path)}" alt="{html.escape(path.stem)}">'
            f"<figcaption>{html.escape(path.stem)}</figcaption></figure>"
        )
    if not any_plot:
        parts.append("<p>No plots (built with --no-plots, or no data to plot).</p>")
    parts.append('<h2 id="provenance">Provenance</h2>')
    for key, value in (info or {}).items():
        parts.append(f"<h3>{html.escape(key)}</h3><pre>{html.escape(value)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(
    out_dir: str | Path,
    tables: dict[str, pd.DataFrame],
    *,
    plots: Iterable[str | Path] = (),
    notes: Iterable[str] = (),
    rows: pd.DataFrame | None = None,
) -> Path:
    """Write ``<out_dir>/report.html`` (PNG plots embedded) and return its path."""
    out = Path(out_dir)
    pngs = [p for p in plots if Path(p).suffix == ".png"]
    page = render(
        title=f"Results of {out.resolve().name}",
        tables=tables,
        plots=pngs,
        notes=notes,
        info=provenance(out, rows),
    )
    path = out / REPORT_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
