"""Does a study made at fewer epochs pick what one at the default's epochs picks? Or one made
with Adam's coupled weight decay what one with decoupled decay picks?

    python tools/tuning_transfer.py results/tuning results/tuning/default-epochs
    python tools/tuning_transfer.py results/tuning/coupled-decay results/tuning/default-epochs \
        --labels coupled,decoupled

Two studies of one method and set with the same sampler and seed propose the same first points
(TPE's random start-up trials), so each such point has an objective at both budgets: a paired
comparison of the same configs. Per method and set: how many points both studies finished, the
Spearman rank correlation of their objectives (mean validation accuracy over the tuning seeds),
where each study's best point ranks in the other, and the mean change of a point's objective from
the first study to the second with its 95 % interval over the points (`harness.report.stats`).
Reads `<folder>/<method>/trials-<set>.csv`
(`harness.tune_study.trials_csv`); points are matched on every parameter, exactly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr
from table1_runs import DATASETS, METHODS

from harness.report.stats import mean_ci

NOT_PARAMS = ("number", "state", "value")


def finished(path: Path) -> pd.DataFrame:
    trials = pd.read_csv(path)
    return trials[trials["state"] == "COMPLETE"].drop_duplicates(
        [c for c in trials if c not in NOT_PARAMS]
    )


def paired(low: Path, high: Path) -> pd.DataFrame:
    """The points both studies finished: value_low, value_high and the trial numbers."""
    a, b = finished(low), finished(high)
    params = [c for c in a if c not in NOT_PARAMS]
    return a.merge(b, on=params, suffixes=("_low", "_high"))


def _rank(values: pd.Series, which) -> int:
    """1 = best (highest objective) among the paired points."""
    return int(values.rank(ascending=False, method="min")[which])


def table(low_dir: Path, high_dir: Path, labels: tuple[str, str] = ("low", "high")) -> str:
    a, b = labels
    lines = [
        f"| method | set | points in both | Spearman ρ | {a}'s best: rank at {b} | "
        f"{b}'s best: rank at {a} | best at {a} (%) | best at {b} (%) | "
        f"mean change, {a} to {b} (points) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method in METHODS:
        for ds in DATASETS:
            low = low_dir / method / f"trials-{ds}.csv"
            high = high_dir / method / f"trials-{ds}.csv"
            if not (low.exists() and high.exists()):
                continue
            both = paired(low, high)
            if len(both) < 3:
                continue
            constant = min(both["value_low"].nunique(), both["value_high"].nunique()) < 2
            # one study's points all alike (all at chance, say): no ranks to correlate
            rho = (
                "n/a"
                if constant
                else f"{spearmanr(both['value_low'], both['value_high']).statistic:+.2f}"
            )
            best_low, best_high = both["value_low"].idxmax(), both["value_high"].idxmax()
            change = mean_ci(100 * (both["value_high"] - both["value_low"]).to_numpy())
            lines.append(
                f"| {method} | {ds} | {len(both)} | {rho} | "
                f"{_rank(both['value_high'], best_low)} | {_rank(both['value_low'], best_high)} | "
                f"{100 * both['value_low'].max():.1f} | {100 * both['value_high'].max():.1f} | "
                f"{change.mean:+.1f} [{change.low:+.1f}, {change.high:+.1f}] |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("low", type=Path, help="the first studies (results/tuning: fewer epochs)")
    ap.add_argument("high", type=Path, help="the same studies made again (results/tuning/...)")
    ap.add_argument(
        "--labels", default="low,high", help="names of the two folders in the header (a,b)"
    )
    args = ap.parse_args()
    labels = tuple(args.labels.split(","))
    if len(labels) != 2 or not all(labels):
        ap.error(f"--labels takes two names separated by a comma, got {args.labels!r}")
    print(table(args.low, args.high, labels), end="")


if __name__ == "__main__":
    main()
