"""Sizes, targets and the error type shared by the training-step and packing benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

from hsd.presets import SMOKE_BATCH, SMOKE_SIZE, SMOKE_WIDTH

#: Targets on an H100/H200: an SNN training step within 1.2x the ANN floor's time and 1.5x its
#: peak memory; an epoch within 1.1x its summed steps (data loading must not stall the GPU).
TARGETS = {"step_ratio": 1.2, "mem_ratio": 1.5, "epoch_ratio": 1.1}

#: (size, width, batch, T) of the run profiles. `smoke` is the VGG-SNN that `--profile smoke`
#: trains (hsd.presets' smoke sizes); `paper` is the paper's VGG-SNN at 48 px, batch 128. Both at
#: T = 10, the step cost at the paper's time steps.
SIZE_PROFILES = {
    "smoke": (SMOKE_SIZE.values["vgg"], SMOKE_WIDTH.values["vgg"], SMOKE_BATCH.values["vgg"], 10),
    "paper": (48, 1.0, 128, 10),
}

#: `--quick`: the smallest network that exercises every code path, seconds on one CPU core (CI).
QUICK = dict(size=16, width=1 / 16, batch=4, T=4, repeats=3, warmup=1)


class BenchError(ValueError):
    """Bad bench arguments; the CLI prints it on stderr and exits with code 2."""


@dataclass(frozen=True)
class TrainConfig:
    """One measured setting; the defaults are the `paper` profile on a GPU."""

    size: int = SIZE_PROFILES["paper"][0]
    width: float = SIZE_PROFILES["paper"][1]
    batch: int = SIZE_PROFILES["paper"][2]
    T: int = SIZE_PROFILES["paper"][3]
    num_classes: int = 10
    repeats: int = 20
    warmup: int = 5
    precision: str = "bf16"  # of every implementation, the floor included unless ...
    floor_precision: str | None = None  # ... this pins the floor's
    channels_last: bool = True
    device: str = "auto"


def precision_of(impl: str, cfg: TrainConfig) -> str:
    """The precision `impl` runs in: the floor's may be pinned apart (`--floor-precision`)."""
    if impl == "floor" and cfg.floor_precision:
        return cfg.floor_precision
    return cfg.precision
