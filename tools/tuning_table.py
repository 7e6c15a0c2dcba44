"""The tables of results/tuning/README.md: which smoke recipe each method gets, and its hand-set
recipe against the committed one on both simulated sets, with validation and test accuracy at T = 5.

    python tools/tuning_table.py choice results/tuning                      # before the presets
    python tools/tuning_table.py compare results/tuning results/tuning/tuned   # after
    python tools/tuning_table.py choice results/tuning/default-epochs \
        --against results/tuning/presets-decoupled   # the presets run as the studies ran

The choice: a study's best point against the hand-set recipe, on the same validation split and the
same tuning seeds (0..N-1 of the study, read from the hand-set store): the higher mean validation
accuracy becomes the smoke preset, so the hand-set recipe is always a candidate and no method is
handed a tuned recipe worse than its own default. With ``--against STORE`` the candidate is the
recipe that store ran instead (studies made at the default's epochs against the presets run at the
same epochs, seeds, decay form and machine). Each row also shows the study's best point.

Reads the studies' `best_params.json` (results/tuning/<method>/), the store of the hand-set recipes
(results/tuning/hand-set: the latency sweep at T = 5 before the tuned values became the presets)
and the store of the tuned ones (the latency sweep with the chosen presets at the studies' base,
results/tuning/tuned). Accuracies are the mean [95 % CI]
over the stores' seeds (`harness.report.stats.mean_ci`), at t = 5: validation is the engine's
model selection (`best_val_acc`, at the run's own T: all frames for DTS), test the accuracy at
t = 5 of the selected model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from table1_runs import DATASETS, METHODS, runs_at_T

from harness.report.stats import mean_ci

RECIPE_FIELDS = ("lr", "weight_decay", "pre_lr", "kd_lambda", "tau", "L", "opt_mse_weight")


def cells(store_dir: Path) -> dict[tuple[str, str], dict]:
    """(method, dataset) -> the recipe and the seeds' validation and test accuracies at t = T."""
    out: dict[tuple[str, str], dict] = {}
    for (method, dataset), g in runs_at_T(store_dir).groupby(["method", "dataset"]):
        first = g.iloc[0]
        recipe = {k: first[k] for k in RECIPE_FIELDS if k in g and pd.notna(first[k])}
        out[(method, dataset)] = {
            "recipe": recipe,
            "val": mean_ci(100 * g["best_val_acc"].to_numpy()),
            "test": mean_ci(100 * g["acc"].to_numpy()),
        }
    return out


def _iv(iv) -> str:
    return f"{iv.mean:.1f} [{iv.low:.1f}, {iv.high:.1f}] (n={iv.n})"


def _recipe(recipe: dict) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k.removeprefix('opt_')}={fmt(v)}" for k, v in recipe.items())


def choice(tuning: Path, against: Path | None = None) -> str:
    """Per method and set: the study's best validation accuracy (mean over its seeds), the
    candidate recipe's on the same seeds (the hand-set store's, or `against`'s), and which one the
    smoke preset takes."""
    name = "hand-set" if against is None else "preset"
    rows = runs_at_T(against or tuning / "hand-set")
    lines = [
        f"| method | set | study's best val (%) | {name} val, same seeds (%) | smoke preset | "
        "study's best point |",
        "|---|---|---:|---:|---|---|",
    ]
    for method in METHODS:
        path = tuning / method / "best_params.json"
        if not path.exists():  # a study not made (yet)
            continue
        doc = json.loads(path.read_text())
        seeds = range(doc["seeds_per_trial"])
        for ds in DATASETS:
            best = doc["best"].get(ds)
            hand = rows[(rows["method"] == method) & (rows["dataset"] == ds)]
            hand = hand[hand["seed"].isin(seeds)]["best_val_acc"]
            if best is None or len(hand) != len(seeds):
                continue
            tuned_val, hand_val = 100 * best["val_acc"], 100 * float(hand.mean())
            pick = f"tuned (trial {best['trial']})" if tuned_val > hand_val else name
            point = {k: v for k, v in best.items() if k not in ("T", "trial", "val_acc")}
            lines.append(
                f"| {method} | {ds} | {tuned_val:.1f} | {hand_val:.1f} | {pick} | {_recipe(point)} |"
            )
    return "\n".join(lines) + "\n"


def table(tuning: Path, tuned_store: Path) -> str:
    hand = cells(tuning / "hand-set")
    tuned = cells(tuned_store)
    lines = [
        "| method | set | recipe | values | val at T=5 (%) | test at T=5 (%) | study's best val (%) |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for method in METHODS:
        path = tuning / method / "best_params.json"
        best = json.loads(path.read_text())["best"] if path.exists() else {}
        for ds in DATASETS:
            for name, src in (("hand-set", hand), ("committed", tuned)):
                c = src.get((method, ds))
                if c is None:
                    continue
                study = (
                    f"{100 * best[ds]['val_acc']:.1f}" if name == "committed" and ds in best else ""
                )
                lines.append(
                    f"| {method} | {ds} | {name} | {_recipe(c['recipe'])} | {_iv(c['val'])} | "
                    f"{_iv(c['test'])} | {study} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("choice", "compare"))
    ap.add_argument("tuning", type=Path, help="results/tuning")
    ap.add_argument("store", type=Path, nargs="?", help="compare: the store of the presets")
    ap.add_argument("--against", type=Path, help="choice: the candidate's store (not hand-set/)")
    args = ap.parse_args()
    if args.what == "choice":
        print(choice(args.tuning, args.against), end="")
    else:
        print(table(args.tuning, args.store), end="")


if __name__ == "__main__":
    main()
