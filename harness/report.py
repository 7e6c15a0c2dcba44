"""Rebuild every table and plot of a sweep folder from its results store, without training.

    python -m harness.report OUTDIR [--no-plots]

Writes ``OUTDIR/tables/<name>.{csv,md}`` and ``OUTDIR/plots/<name>.{png,svg}``, prints where they
are, and prints Table 1 and the Figure-2 data as Markdown. Bad input (missing folder, no store,
a corrupted row) prints a message on stderr and exits with code 2; nothing is written then, because
the whole store is read and every table built before the first file is written.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from harness.store import ResultStore, StoreError, TornTailWarning
from harness.tables import build_tables, to_markdown, write_tables


def build_report(out_dir: str | Path, *, plots: bool = True):
    """Write tables (and plots) for the store in `out_dir`.

    Returns ``(tables, table_files, plot_files)``: the DataFrames by name and the paths written.
    Raises StoreError / ValueError on bad input before writing anything.
    """
    store = ResultStore.existing(out_dir)
    rows = store.rows()
    if rows.empty:
        raise StoreError(f"{store.path} holds no complete rows yet; nothing to report")
    tables = build_tables(rows)  # validates everything before any file is written
    out = Path(out_dir)
    written = write_tables(rows, out / "tables")
    table_files = [p for pair in written.values() for p in pair]
    plot_files: list[Path] = []
    if plots:
        from harness import plots as plotting  # matplotlib only when plotting

        plot_files = plotting.write_plots(tables, out / "plots")
    return tables, table_files, plot_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report",
        description="Rebuild the tables and plots of a sweep folder from its results store.",
    )
    parser.add_argument("out_dir", help="the --out folder of a sweep (holds results.jsonl)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TornTailWarning)
        try:
            tables, table_files, plot_files = build_report(args.out_dir, plots=not args.no_plots)
        except (StoreError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    for w in caught:
        # A torn final chunk is expected after a crash: say so, but the report still succeeds.
        if issubclass(w.category, TornTailWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    out = Path(args.out_dir)
    for title, name in (("Table 1", "table1"), ("Figure 2 (accuracy at t = T vs T)", "figure2")):
        if not tables[name].empty:
            print(f"## {title}\n\n{to_markdown(tables[name])}")
    status = tables["status"]
    if not status.empty:
        print(f"## Runs per status\n\n{to_markdown(status)}")
    print(f"tables ({len(table_files)} files): {out / 'tables'}")
    if plot_files:
        print(f"plots ({len(plot_files)} files): {out / 'plots'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
