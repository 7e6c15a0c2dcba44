"""The `local` executor: trials run one after another in this process (no Ray).

Each finished trial's rows are appended to the store at once, so a killed driver loses only the
trial in flight, and that trial resumes from its per-epoch checkpoints on the next run.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from tqdm.auto import tqdm

from harness.executors import ExecOptions
from harness.sweeps import Trial
from harness.trial import drop_checkpoints, run_trial


def run(trials: Sequence[Trial], store, opts: ExecOptions, execute=None) -> Counter:
    """Run `trials` sequentially; return a Counter of row statuses per finished trial."""
    done: Counter = Counter()
    bar = tqdm(
        total=len(trials),
        unit="trial",
        desc="trials",
        disable=not opts.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        for trial in trials:
            bar.set_postfix_str(trial.label())

            def on_epoch(stage, epoch, epochs, record, _t=trial):
                bar.set_postfix_str(
                    f"{_t.label()} | {stage} {epoch}/{epochs} val={record.get('val_acc', 0):.3f}"
                )

            def on_retry(attempt, err, _t=trial):
                bar.write(
                    f"retrying {_t.label()} after attempt {attempt}: {type(err).__name__}: {err}"
                )

            rows = run_trial(
                trial,
                out_dir=opts.out_dir,
                root=opts.root,
                cache_dir=opts.cache_dir,
                device=opts.device,
                retries=opts.retries,
                on_epoch=on_epoch,
                on_retry=on_retry,
                execute=execute,
            )
            store.append(rows)
            status = rows[0]["status"]
            done[status] += 1
            if status == "ok" and not opts.keep_checkpoints:
                drop_checkpoints(opts.out_dir, trial.run_id)
            if status != "ok":
                bar.write(
                    f"{status}: {trial.label()}: {str(rows[0].get('error', '')).splitlines()[0][:200]}"
                )
            bar.update(1)
    finally:
        bar.close()
    return done
