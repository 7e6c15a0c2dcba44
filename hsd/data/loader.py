"""Mini-batches of cached frames, time-first, on the training device.

The selected frames of a whole split are copied once into one device tensor (float16; the
cache is small: CIFAR10-DVS at 48 px is < 1 GB) and batches are indexed from it, so there is no
DataLoader, no worker processes and no per-batch host-to-device copy. The copy is memoized on
the FrameSplit, so later epochs with the same frames and device reuse it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from hsd.data.augment import AUGMENTATIONS
from hsd.data.augment import augment as apply_augment


def _device_of(generator: torch.Generator | None):
    return generator.device if generator is not None else "cpu"


def iterate_batches(
    split,
    batch_size: int,
    frames: slice,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    device="cpu",
    augment: str = "none",
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x [T, N, 2, S, S] float32 on `device`, y [N] int64 on `device`).

    Args:
        split: a FrameSplit (`.frames` [N, F, 2, S, S], `.labels` [N]).
        batch_size: N per batch (the last one may be smaller unless drop_last).
        frames: which of the F integrated frames to use, e.g. from `ht_partition`.
        shuffle: draw a random permutation of the samples (from `generator`).
        generator: torch.Generator (any device) for the permutation and augmentation parameters.
        device: where batches live and augmentation runs.
        augment: "none" | "flip_roll" | "nda"; callers pass "none" when evaluating.
        drop_last: skip a final incomplete batch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(frames, slice):
        raise ValueError(f"frames must be a slice (see ht_partition), got {frames!r}")
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augment!r}; valid: {', '.join(AUGMENTATIONS)}")
    n_total = split.frames.shape[1]
    if len(range(*frames.indices(n_total))) == 0:
        raise ValueError(f"frames {frames} selects none of the {n_total} cached frames")
    if hasattr(split, "to_tensor"):
        data = split.to_tensor(frames, device)  # [N, T, 2, S, S] float16, memoized
    else:
        data = torch.as_tensor(split.frames[:, frames]).to(device)
    labels = torch.as_tensor(split.labels, dtype=torch.int64).to(device)
    n = data.shape[0]
    if shuffle:
        order = torch.randperm(n, generator=generator, device=_device_of(generator))
    else:
        order = torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size].to(data.device)
        x = data[idx].transpose(0, 1).float()  # [T, B, 2, S, S]
        if augment != "none":
            x = apply_augment(x, augment, generator)
        yield x.contiguous(), labels[idx]
