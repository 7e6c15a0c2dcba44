"""`python -m harness.run ... --dry-run`: the planned runs, their cells and cost, without running.

With ``--json`` every planned run is one JSON line (run id, the cells it serves, done/todo, cost
in epoch-frames and the resolved config: the result of the preset merge), for scripts and reviews.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from harness.common import sweeps as S

# Seconds per epoch-frame of one trial (sum of run wall times / sum of costs), measured with the
# smoke profile: the 54 runs of the default latency sweep (3 seeds) summed 10491 s of run time for
# 17784 epoch-frames on a 2-core AMD EPYC VM, two trials at a time (results/latency-smoke; the
# previous default gave 0.42 on an Intel Xeon VM and 0.56 on the EPYC one; validation passes are
# not in the cost, so larger validation splits raise the rate). --dry-run uses it until finished
# runs in the output folder give a better rate. None for paper (GPU-dependent).
SECONDS_PER_UNIT = {"smoke": 0.59, "paper": None}


def print_dry_run(
    trials: list[S.Trial], args, out: Path, finished: set[str], rate: float | None
) -> None:
    """The planned runs as a table (or, with --json, one JSON line each) and their estimated cost."""
    if args.json:
        for t in trials:
            line = {
                "run_id": t.run_id,
                "cells": [list(c) for c in t.cells],
                "state": "done" if t.run_id in finished else "todo",
                "cost": S.trial_cost(t.cfg),
                "config": t.cfg.to_dict(),
            }
            print(json.dumps(line, sort_keys=True))
        return
    print(f"{args.sweep}: {len(trials)} runs -> {out}")
    print(
        f"  {'cells':<30} {'dataset':<13} {'T':>3} {'seed':>4} {'frames':>6} {'T_p':>4} "
        f"{'pre_ep':>6} {'ep':>4} {'cost':>6}  run_id            state"
    )
    total_units = 0
    for t in trials:
        c = t.cfg
        cost = S.trial_cost(c)
        done = t.run_id in finished
        total_units += 0 if done else cost
        cells = ",".join(f"{s}:{v}" for s, v in t.cells)
        print(
            f"  {cells:<30} {c.dataset:<13} {c.T:>3} {c.seed:>4} {c.frames:>6} "
            f"{c.pre_frames or 0:>4} {c.pre_epochs or 0:>6} {c.epochs or 0:>4} {cost:>6}  "
            f"{t.run_id}  {'done' if done else 'todo'}"
        )
    per_ds = Counter(t.cfg.dataset for t in trials)
    print(f"  per dataset: {dict(per_ds)}")
    if "params" in S.sweep_names(args.sweep):
        print(f"  params: {len(args.datasets or S.DEFAULT_DATASETS)} rows, no training")
    print(
        f"estimated cost of the runs still to do: {total_units} epoch-frames "
        "(cost = epochs x frames per sample, summed over each run's training stages: ANN "
        "pre-training or a distillation teacher, then the SNN; x training samples = "
        "single-frame forward+backward passes)."
    )
    if rate:
        print(
            f"time estimate: ~{total_units * rate / 60:.1f} min of trial time (at {rate:.2f} s "
            "per epoch-frame, measured from finished runs in this folder)"
        )
    elif SECONDS_PER_UNIT.get(args.profile):
        rate = SECONDS_PER_UNIT[args.profile]
        print(
            f"time estimate: ~{total_units * rate / 60:.1f} min of trial time (at {rate} s per "
            f"epoch-frame, measured for the {args.profile} profile on a shared 2-core CPU VM; "
            "the ray executor runs trials in parallel, one per --cpus-per-trial cores)"
        )
    else:
        print("time estimate: none (no finished runs in this folder to calibrate from)")


def measured_rate(rows) -> float | None:
    """Seconds per epoch-frame from the wall time of finished ok runs already in the store."""
    import pandas as pd

    from hsd.config import RunConfig

    if rows is None or rows.empty or "wall_s" not in rows:
        return None
    secs = units = 0.0
    fields = [f for f in RunConfig.__dataclass_fields__ if f != "options"]
    for _, r in rows[rows["status"] == "ok"].drop_duplicates("run_id").iterrows():
        # the run's config as its row records it (options as opt_<name>), so that the cost counts
        # the stages it trained; rows of no registered method (params) have no cost
        options = {k[4:]: v for k, v in r.items() if k.startswith("opt_") and pd.notna(v)}
        try:
            cfg = RunConfig(**{k: r[k] for k in fields if k in r}, options=options)
            u = S.trial_cost(cfg)
        except (TypeError, ValueError, KeyError):
            continue
        if u > 0:
            secs, units = secs + float(r["wall_s"]), units + u
    return secs / units if units else None
