"""Executors run a list of resolved trials and append each finished trial's rows to the store.

- `local`: in-process, sequential, no Ray import (works on the GPU machine, which has no Ray).
- `ray`: Ray Tune, one Tune trial per run, fractional resources, local instance or a cluster.

Both share `ExecOptions` and the contract: the driver is the only writer of the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path


class ExecutorError(RuntimeError):
    """The executor cannot start (e.g. unreachable Ray address); the CLI exits with code 2."""


@dataclass(frozen=True)
class ExecOptions:
    """How trials run, the same for every executor (and for tuning)."""

    out_dir: Path  # absolute
    root: str | None = None
    cache_dir: str | None = None
    device: str = "auto"
    retries: int = 1
    keep_checkpoints: bool = False
    progress: bool = True
    threads: int = 1  # torch intra-op threads of each trial (recorded in its rows)
    command: str | None = None  # the command as typed, recorded in every row

    def to_dict(self) -> dict:
        """Plain values, for a Ray worker."""
        return {**asdict(self), "out_dir": str(self.out_dir)}

    @classmethod
    def from_dict(cls, d: dict) -> ExecOptions:
        return cls(**{**d, "out_dir": Path(d["out_dir"])})


class Progress:
    """The driver's progress bar, weighted by each trial's cost in epoch-frames
    (`harness.common.sweeps.trial_cost`), so the ETA accounts for an HSD run costing many STS runs.

    Each reported epoch advances the bar by that epoch's frames per sample in its stage (the
    method's `training_stages`; the trial's average cost per epoch for a stage it does not list),
    capped at the trial's cost; a finished trial tops up to its full cost. The postfix shows
    trials done and the trials running. Tuning asks for its trials one at a time: it passes the
    cost it `expected` in all, and how many runs it `planned`, so that the bar has a total and an
    ETA from the first trial on.
    """

    def __init__(
        self,
        trials,
        *,
        enabled: bool = True,
        desc: str = "sweep",
        expected: int = 0,
        planned: int = 0,
    ):
        import sys

        from tqdm.auto import tqdm

        self.cost: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        self.stage_frames: dict[str, dict[str, int]] = {}
        self.done_cost: dict[str, float] = {}
        self.running: dict[str, str] = {}
        self.n_trials, self.finished = 0, 0
        for t in trials:
            self._count(t)
        self.expected, self.planned = expected, planned
        self.bar = tqdm(
            total=max(expected, sum(self.cost.values())),
            desc=desc,
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} epoch-frames "
            "[{elapsed}<{remaining}{postfix}]",
        )

    def _count(self, trial) -> None:
        from harness.common.sweeps import trial_cost
        from hsd.method import METHODS

        stages = METHODS[trial.cfg.method].training_stages(trial.cfg)
        self.cost[trial.run_id] = max(1, trial_cost(trial.cfg))
        self.epochs[trial.run_id] = max(1, sum(e for _, e, _ in stages))
        self.stage_frames[trial.run_id] = {name: f for name, _, f in stages}
        self.n_trials += 1

    def add(self, trial) -> None:
        """A trial decided on the way (tuning asks for one at a time)."""
        self._count(trial)
        self.bar.total = max(self.expected, sum(self.cost.values()))
        self.bar.refresh()

    def arrived(self, run_id: str, cost: float) -> None:
        """A run first seen when it has finished (Ray tuning reports runs only then): its cost,
        so that `finish` advances the bar by it."""
        self.cost[run_id] = cost

    def _advance(self, run_id: str, amount: float) -> None:
        have = self.done_cost.get(run_id, 0.0)
        amount = max(0.0, min(amount, self.cost.get(run_id, 0) - have))
        self.done_cost[run_id] = have + amount
        # set, not add: summed float increments could pass the total (tqdm then warns and shows a
        # negative time left); the sum of what each trial has done never does
        self.bar.n = min(self.bar.total, sum(self.done_cost.values()))
        self.bar.refresh()

    def _show(self) -> None:
        running = " | ".join(list(self.running.values())[:2])
        self.bar.set_postfix_str(
            f"trials {self.finished}/{max(self.n_trials, self.planned)}"
            + (f", {running}" if running else "")
        )

    def epoch(self, run_id: str, text: str, stage: str | None = None) -> None:
        per_epoch = self.stage_frames.get(run_id, {}).get(stage)
        if per_epoch is None:
            per_epoch = self.cost.get(run_id, 0) / self.epochs.get(run_id, 1)
        self._advance(run_id, per_epoch)
        self.running[run_id] = text
        self._show()

    def start(self, run_id: str, text: str) -> None:
        self.running[run_id] = text
        self._show()

    def finish(self, run_id: str) -> None:
        self._advance(run_id, float("inf"))
        self.running.pop(run_id, None)
        self.finished += 1
        self._show()

    def write(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
