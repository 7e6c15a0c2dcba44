"""Does a rerun of a sweep reproduce a committed store? Per cell, Welch's 95 % interval of the
difference of means (rerun − committed), and whether it covers zero.

    python tools/reproduction_check.py results/latency-smoke-epyc results/latency-smoke-40epochs

A rerun on another machine gives the same run ids, so `python -m harness.report A --compare B`
pairs the runs by seed; this check treats the two stores as independent samples instead, the
question being whether the rerun's cell means fall where the committed runs' spread says they
may. A store reproduces where at least `TARGET` of its cells' intervals cover zero.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from harness.common.store import StoreError
from harness.provenance import machine_lines
from harness.report import stats
from harness.report.store_compare import CELL, Store, ok_cell_pairs, sort_cells

TARGET = 0.9


def welch_cells(rerun: Store, committed: Store):
    """One row per cell both stores ran ok: each mean, the Welch difference and its interval."""
    records = []
    for key, ga, gb in ok_cell_pairs(rerun, committed):
        iv = stats.welch_difference(ga["acc_pct"], gb["acc_pct"]).diff
        covers = bool(iv.low <= 0.0 <= iv.high)
        records.append((*key, len(ga), ga["acc_pct"].mean(), gb["acc_pct"].mean(), iv.mean,
                        iv.low, iv.high, covers))  # fmt: skip
    cols = [*CELL, "seeds", "mean rerun", "mean committed", "diff", "ci_low", "ci_high", "covers 0"]
    return sort_cells(pd.DataFrame(records, columns=cols))


def markdown(df) -> str:
    lines = [
        "| sweep | dataset | variant | T | seeds | rerun (%) | committed (%) | rerun − committed "
        "(Welch 95 % CI) | covers 0 |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in df.itertuples(index=False):
        lines.append(
            f"| {r[0]} | {r[1]} | {r[2]} | {int(r[3])} | {r[4]} | {r[5]:.1f} | {r[6]:.1f} | "
            f"{r[7]:+.1f} [{r[8]:+.1f}, {r[9]:+.1f}] | {'yes' if r[10] else 'no'} |"
        )
    n, k = len(df), int(df["covers 0"].sum())
    verdict = "reproduces" if n and k / n >= TARGET else "does not reproduce"
    lines += ["", f"{k} of {n} cells ({100 * k / max(n, 1):.0f} %) cover 0: the rerun {verdict} "
              f"the committed store by the {100 * TARGET:.0f} % rule."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rerun", type=Path, help="the rerun's store folder")
    ap.add_argument("committed", type=Path, help="the committed store it should reproduce")
    args = ap.parse_args()
    try:
        stores = Store.read(args.rerun, "rerun"), Store.read(args.committed, "committed")
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)  # bad input, as every command of the harness
    df = welch_cells(*stores)
    print(f"command: python tools/reproduction_check.py {args.rerun} {args.committed}  ")
    print(f"{machine_lines()[0]}\n")
    print(markdown(df), end="")


if __name__ == "__main__":
    main()
