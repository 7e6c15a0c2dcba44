"""The `local` executor: trials run one after another in this process (no Ray).

Each finished trial's rows are appended to the store at once, so a killed driver loses only the
trial in flight, and that trial resumes from its per-epoch checkpoints on the next run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from harness.executors import ExecOptions, Progress
from harness.sweeps import Trial
from harness.trial import drop_checkpoints, run_trial


def run(trials: Sequence[Trial], store, opts: ExecOptions, execute=None) -> Counter:
    """Run `trials` sequentially; return a Counter of the statuses of the finished trials."""
    done: Counter = Counter()
    progress = Progress(trials, enabled=opts.progress)
    try:
        for trial in trials:
            rid = trial.run_id
            progress.start(rid, trial.label())

            def on_epoch(stage, epoch, epochs, record, _t=trial):
                val = record.get("val_acc")
                val = f" val={val:.3f}" if isinstance(val, float) else ""
                progress.epoch(_t.run_id, f"{_t.label()} {stage} {epoch}/{epochs}{val}")

            def on_retry(attempt, err, _t=trial):
                progress.write(
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
                drop_checkpoints(opts.out_dir, rid)
            if status != "ok":
                first = str(rows[0].get("error", "")).splitlines()[0][:200]
                progress.write(f"{status}: {trial.label()}: {first}")
            progress.finish(rid)
    finally:
        progress.close()
    return done
