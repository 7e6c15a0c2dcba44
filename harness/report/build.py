"""Rebuild every table and plot of a sweep folder from its results store, without training.

    python -m harness.report OUTDIR [--no-plots]
    python -m harness.report OUTDIR --compare OTHER [--compare-out DIR]   (`harness.report.compare_report`)

Writes ``OUTDIR/tables/<name>.{csv,md,tex}``, ``OUTDIR/plots/<name>.{png,svg,pdf}`` and one
self-contained ``OUTDIR/report.html`` (tables, embedded plots, provenance), prints where they are,
and prints Table 1 and the Figure-2 data as Markdown. The learning curves
``OUTDIR/curves/<run_id>.json`` (`harness.common.curves`) give the status table's flags and
``plots/curves-<dataset>.*``; a store without them gets every other output and "no curve" in the
flag columns. The early-exit tables and plots (`harness.report.early_exit`) come from the per-sample
files ``OUTDIR/samples/<run_id>.npz``; a store without them gets every other output and a note
saying so. Bad input (missing folder, no store, a corrupted row or curve file, two runs of one
cell and seed) prints a message on stderr and exits with code 2; nothing is written then, because
the whole store and every curve are read and every table built before the first file is written.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from harness.common import curves
from harness.common.store import ResultStore, StoreError, TornTailWarning
from harness.report import aggregate, early_exit, html_report, latex
from harness.report.tables import build_tables, to_markdown, write_tables


def build_report(out_dir: str | Path, *, plots: bool = True, notes: list[str] | None = None):
    """Write tables (CSV, Markdown, LaTeX), plots (PNG, SVG, PDF) and report.html for `out_dir`.

    Returns ``(tables, table_files, plot_files)``: the DataFrames by name (the early-exit ones
    included) and the paths written. Notes on missing data (also shown in report.html) are
    appended to `notes` when given. Raises StoreError / ValueError on bad input before writing
    anything.
    """
    store = ResultStore.existing(out_dir)
    rows = store.rows()
    if rows.empty:
        raise StoreError(f"{store.path} holds no complete rows yet; nothing to report")
    out = Path(out_dir)
    learning = curves.load_all(out, rows["run_id"].dropna().unique())
    rows = aggregate.with_curve_flags(rows, learning)
    tables = build_tables(rows)  # validates everything before any file is written
    prepared = aggregate.prepare_rows(rows)
    ee_tables, ee_notes = early_exit.tables(out, prepared)
    if notes is not None:
        notes += ee_notes
    tables = {**tables, **ee_tables}
    written = write_tables(rows, out / "tables")
    table_files = [p for pair in written.values() for p in pair]
    for name, table in ee_tables.items():
        if not table.empty:
            csv, md = out / "tables" / f"{name}.csv", out / "tables" / f"{name}.md"
            table.to_csv(csv, index=False)
            md.write_text(to_markdown(table))
            table_files += [csv, md]
    table_files += latex.write_latex(tables, out / "tables")
    plot_files: list[Path] = []
    if plots:
        from harness.report import plots as plotting  # matplotlib only when plotting

        plot_files = plotting.write_plots(tables, out / "plots", curves=learning)
    html_report.write_html(out, tables, plots=plot_files, notes=ee_notes, rows=prepared)
    return tables, table_files, plot_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report",
        description="Rebuild the tables and plots of a sweep folder from its results store.",
    )
    parser.add_argument("out_dir", help="the --out folder of a sweep (holds results.jsonl)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument(
        "--compare",
        metavar="B",
        help="instead of the report, compare this store (A) with the store in folder B: "
        "differences A − B per cell, claims whose verdict changed, runs in one store only, "
        "how the two were made differently",
    )
    parser.add_argument(
        "--compare-out",
        metavar="DIR",
        help="where --compare writes compare.md, compare.html, cells.csv "
        "(default: OUT_DIR/compare-<name of B>)",
    )
    args = parser.parse_args(argv)
    if args.compare_out and not args.compare:
        parser.error("--compare-out needs --compare B")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TornTailWarning)
        try:
            notes: list[str] = []
            if args.compare:
                from harness.report.compare_report import compare

                summary, _, files = compare(args.out_dir, args.compare, args.compare_out)
            else:
                tables, table_files, plot_files = build_report(
                    args.out_dir, plots=not args.no_plots, notes=notes
                )
        except (StoreError, ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    _pass_on(caught)
    if args.compare:
        print(summary)
        print(f"comparison: {', '.join(str(f) for f in files)}")
        return 0
    return _print_report(Path(args.out_dir), tables, table_files, plot_files, notes)


def _pass_on(caught) -> None:
    for w in caught:
        # A torn final chunk is expected after a crash: say so, but the report still succeeds.
        if issubclass(w.category, TornTailWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _print_report(out: Path, tables, table_files, plot_files, notes) -> int:
    for note in notes:
        print(f"note: {note}")
    for title, name in (("Table 1", "table1"), ("Figure 2 (accuracy at t = T vs T)", "figure2")):
        if not tables[name].empty:
            print(f"## {title}\n\n{to_markdown(tables[name])}")
    status = tables["status"]
    if not status.empty:
        print(f"## Runs per status\n\n{to_markdown(status)}")
    print(f"tables ({len(table_files)} files): {out / 'tables'}")
    if not tables["early_exit_budget"].empty:
        print(
            "## Accuracy at a latency budget (threshold chosen on validation)\n\n"
            + to_markdown(tables["early_exit_budget"])
        )
    if plot_files:
        print(f"plots ({len(plot_files)} files): {out / 'plots'}")
    print(f"report: {out / html_report.REPORT_FILE}")
    return 0
