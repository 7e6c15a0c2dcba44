"""The `local` executor: trials run one after another in this process (no Ray).

Each finished trial's rows are appended to the store at once, so a killed driver loses only the
trial in flight, and that trial resumes from its per-epoch checkpoints on the next run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from harness.common.sweeps import Trial
from harness.executors import ExecOptions, Progress
from harness.trial import record, run_trial


def run(trials: Sequence[Trial], store, opts: ExecOptions, execute=None) -> Counter:
    """Run `trials` sequentially; return a Counter of the statuses of the finished trials."""
    done: Counter = Counter()
    progress = Progress(trials, enabled=opts.progress)
    try:
        for trial in trials:
            progress.start(trial.run_id, trial.label())

            def on_epoch(stage, epoch, epochs, record_, _t=trial):
                val = record_.get("val_acc")
                val = f" val={val:.3f}" if isinstance(val, float) else ""
                progress.epoch(_t.run_id, f"{_t.label()} {stage} {epoch}/{epochs}{val}", stage)

            def on_retry(attempt, err, _t=trial):
                progress.write(
                    f"retrying {_t.label()} after attempt {attempt}: {type(err).__name__}: {err}"
                )

            rows = run_trial(trial, opts, on_epoch=on_epoch, on_retry=on_retry, execute=execute)
            done[record(trial.label(), rows, store, opts, progress)] += 1
    finally:
        progress.close()
    return done
