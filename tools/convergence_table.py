"""The convergence table of results/convergence/: what doubling the smoke epochs changes, per method
and simulated set.

    python tools/convergence_table.py results/latency-smoke-epyc runs/convergence \
        --archive results/convergence/doubled.jsonl > results/convergence/table.md

The smoke budget (×1) is read from a latency-sweep store made with the committed presets (its T = 5
runs; DTS: its one model, read at t = 5); twice its epochs (×2) from the single-run JSON files of
`python -m hsd.train ... --epochs 2E [--pre-epochs 2P] --out <dir>/<method>-<dataset>-<seed>.json`.
The measure is the mean **validation** accuracy the engine selects the epoch with (`best_val_acc`),
over the seeds both budgets ran; a recipe counts as converged where doubling changes it by less
than `CONVERGED_POINTS`. The paired difference (×2 − ×1, same seeds) and the test accuracy at
t = 5 are shown beside it.

The same table one doubling further, whether twice the smoke epochs are converged (×2 against ×4):

    python tools/convergence_table.py results/convergence/doubled.jsonl runs/convergence-x4 \
        --labels ×2,×4 --archive results/convergence/quadrupled.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from table1_runs import DATASETS, METHODS, T, runs_at_T

from harness.report.stats import mean_ci, paired_difference

CONVERGED_POINTS = 2.0


def budget(path: Path) -> dict[tuple[str, str, int], dict]:
    """(method, dataset, seed) -> validation / test accuracy (%) and epochs of one budget's runs
    at t = T, read from a store folder (a latency sweep made with the committed presets), a folder
    of single-run JSON files, or a JSON-lines file of their rows (what `--archive` writes)."""
    if (path / "results.jsonl").exists():
        rows = runs_at_T(path).to_dict("records")
    else:
        rows = [r for r in single_run_rows(path) if r["t"] == T]
    return {
        (r["method"], r["dataset"], int(r["seed"])): {
            "val": 100 * r["best_val_acc"],
            "test": 100 * r["acc"],
            "epochs": _epochs(r.get("pre_epochs"), r["epochs"]),
        }
        for r in rows
    }


def single_run_rows(path: Path) -> list[dict]:
    if path.is_dir():
        return [r for f in sorted(path.glob("*.json")) for r in json.loads(f.read_text())["rows"]]
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _epochs(pre, epochs) -> str:
    return f"{int(pre)}+{int(epochs)}" if pre == pre and pre else str(int(epochs))  # NaN: no pre


def _iv(iv) -> str:
    return f"{iv.mean:.1f} [{iv.low:.1f}, {iv.high:.1f}]"


def table(x1: dict, x2: dict, labels: tuple[str, str] = ("×1", "×2")) -> str:
    a_, b_ = labels
    lines = [
        f"| method | set | epochs {a_} | val {a_} (%) | epochs {b_} | val {b_} (%) | {b_} − {a_} val "
        f"(paired, 95 % CI) | test {a_} (%) | test {b_} (%) | seeds | converged (< 2 points) |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for ds in DATASETS:
        for m in METHODS:
            seeds = sorted(s for (mm, d, s) in x2 if (mm, d) == (m, ds) and (m, ds, s) in x1)
            if not seeds:
                continue
            a = [x1[(m, ds, s)] for s in seeds]
            b = [x2[(m, ds, s)] for s in seeds]
            diff = paired_difference([r["val"] for r in b], [r["val"] for r in a]).diff
            converged = "yes" if abs(diff.mean) < CONVERGED_POINTS else "no"
            lines.append(
                f"| {m} | {ds} | {a[0]['epochs']} | {_iv(mean_ci([r['val'] for r in a]))} | "
                f"{b[0]['epochs']} | {_iv(mean_ci([r['val'] for r in b]))} | "
                f"{diff.mean:+.1f} [{diff.low:+.1f}, {diff.high:+.1f}] | "
                f"{_iv(mean_ci([r['test'] for r in a]))} | {_iv(mean_ci([r['test'] for r in b]))} | "
                f"{len(seeds)} | {converged} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "base",
        type=Path,
        help="the base budget's runs: a store folder (the latency "
        "sweep made with the committed presets), a folder of JSON files or .jsonl rows",
    )
    ap.add_argument(
        "doubled", type=Path, help="twice its epochs: folder of JSON files or .jsonl rows"
    )
    ap.add_argument("--archive", type=Path, help="also write the doubled runs' rows to this .jsonl")
    ap.add_argument("--labels", default="×1,×2", help="names of the two budgets (default ×1,×2)")
    args = ap.parse_args()
    if args.archive:
        rows = single_run_rows(args.doubled)
        args.archive.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    labels = tuple(args.labels.split(","))
    print(table(budget(args.base), budget(args.doubled), labels), end="")


if __name__ == "__main__":
    main()
