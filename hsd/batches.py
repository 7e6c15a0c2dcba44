"""Batches of one frame window for a run: shuffled and augmented for training, plain for
validation and test, with randomness derived from (seed, stage, epoch) so a resumed run sees the
same batches in its remaining epochs as an uninterrupted one would have."""

from __future__ import annotations

import torch

from hsd.config import RunConfig
from hsd.method import RunContext


def stable_seed(cfg: RunConfig, stage: str) -> int:
    """Seed for one stage of a run. Built from the characters, not `hash()`, which Python
    randomises per process: a Ray worker and the driver must agree."""
    return (cfg.seed * 1_000_003 + sum(i * ord(c) for i, c in enumerate(stage, 1))) % 2**31


def epoch_generator(cfg: RunConfig, stage: str, epoch: int) -> torch.Generator:
    """Shuffle/augmentation randomness of one epoch of one stage."""
    g = torch.Generator()
    g.manual_seed(stable_seed(cfg, stage) * 10_007 + epoch)
    return g


def window_batches(cfg: RunConfig, ctx: RunContext, window: slice, *, stage: str, augment: str):
    """Batch factories over one frame window: (train(epoch), val(), test()).

    Training batches are shuffled and augmented; validation and test batches never are.
    """
    from hsd.data import iterate_batches

    data, dev, bs = ctx.data, ctx.device, cfg.batch_size

    def train(epoch: int):
        return iterate_batches(
            data.train,
            bs,
            window,
            shuffle=True,
            generator=epoch_generator(cfg, stage, epoch),
            device=dev,
            augment=augment,
        )

    def val():
        return iterate_batches(data.val, bs, window, shuffle=False, device=dev)

    def test():
        return iterate_batches(data.test, bs, window, shuffle=False, device=dev)

    return train, val, test
