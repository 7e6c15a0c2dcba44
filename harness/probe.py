"""A method-neutral probe of a dataset's difficulty and of its latency trade-off.

    python -m harness.data probe --dataset sim-gestures [--size 32] [--epochs 30] [--seeds 3]

A small ANN (three conv-BN-ReLU blocks, global average pooling, a linear head; no spiking neuron,
no method of this project) is trained from scratch on the integrated frames of the training
split (Adam 3e-3, batch 32, 30 epochs: measured to reach 95 % on n-digits, where 15 epochs at
1e-3 left it at 57 %), its epoch chosen on the validation split, and tested, for two inputs:

- ``whole``: the whole event stream, integrated by event count into `FRAMES` frames stacked as
  channels (so the coarse temporal order — which separates a gesture from the same gesture
  played backwards — is there to learn);
- ``first tenth``: the first of those frames alone, i.e. the first tenth of the events.

A set on which such a probe is near 100 % on the whole stream cannot rank methods by accuracy,
and one whose first tenth is as good as the whole stream has no latency trade-off to measure.
Designing a simulated set against this probe, before any method is tuned or compared on it,
keeps the data from being shaped by the methods being compared.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

FRAMES = 10  # the first of 10 frames integrated by event count holds the first tenth of the events
INPUTS = ("whole", "first tenth")


def probe_net(in_channels: int, classes: int, width: int = 32):
    import torch.nn as nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(in_channels, width),
        nn.MaxPool2d(2),
        *block(width, 2 * width),
        nn.MaxPool2d(2),
        *block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, classes),
    )


def probe_input(frames: np.ndarray, which: str):
    """[N, F, 2, S, S] frames -> [N, C, S, S] float32 channels of the probe (log-scaled counts)."""
    import torch

    # a writable float32 copy: the frame cache is a read-only memmap
    x = torch.from_numpy(np.array(frames, dtype=np.float32))
    x = x[:, :1] if which == "first tenth" else x
    return torch.log1p(x.flatten(1, 2))


def _accuracy(net, x, y, batch: int) -> float:
    import torch

    net.eval()
    with torch.no_grad():
        hits = sum(
            int((net(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
            for i in range(0, len(y), batch)
        )
    return hits / max(1, len(y))


def train_probe(data, which: str, *, seed: int, epochs: int, batch: int = 32, lr: float = 3e-3):
    """Train one probe on `data` (a FrameSet of `FRAMES` frames); its validation-selected test
    accuracy and the chosen epoch."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xs = {s: probe_input(data.split(s).frames, which) for s in ("train", "val", "test")}
    ys = {s: torch.from_numpy(np.asarray(data.split(s).labels)).long() for s in xs}
    net = probe_net(xs["train"].shape[1], data.spec.num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best = (-1.0, 0, None)  # validation accuracy, epoch, weights
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.from_numpy(rng.permutation(len(ys["train"])))
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = torch.nn.functional.cross_entropy(net(xs["train"][idx]), ys["train"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = _accuracy(net, xs["val"], ys["val"], 256)
        if val > best[0]:
            best = (val, epoch, {k: v.clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[2])
    return {
        "input": which,
        "seed": seed,
        "val_acc": best[0],
        "epoch": best[1],
        "test_acc": _accuracy(net, xs["test"], ys["test"], 256),
    }


def run_probe(
    dataset: str, *, size: int | None, epochs: int, seeds: int, root=None, cache_dir=None
) -> dict[str, Any]:
    """Every input and seed of the probe on `dataset`, with the mean and 95 % interval of the
    test accuracy per input. `size` defaults to the smoke profile's input size, which the
    embedded default trains at."""
    import torch
    from tqdm.auto import tqdm

    from harness.report.stats import mean_ci
    from hsd.data import DATASETS, load_frames
    from hsd.presets import SMOKE_SIZE

    torch.set_num_threads(1)  # the same numbers on any core count of one machine type
    size = size or SMOKE_SIZE.pick(DATASETS[dataset])
    data = load_frames(dataset, frames=FRAMES, size=size, root=root, cache_dir=cache_dir)
    runs = []
    t0 = time.perf_counter()
    with tqdm(total=len(INPUTS) * seeds, desc=f"probe {dataset}", unit="run") as bar:
        for which in INPUTS:
            for seed in range(seeds):
                runs.append(train_probe(data, which, seed=seed, epochs=epochs))
                bar.update()
    summary = {}
    for which in INPUTS:
        iv = mean_ci([100 * r["test_acc"] for r in runs if r["input"] == which])
        summary[which] = {"mean": iv.mean, "ci_low": iv.low, "ci_high": iv.high, "n": iv.n}
    from hsd.device import provenance
    from hsd.execute import git_commit

    return {
        "dataset": dataset,
        "git_commit": git_commit(),
        **provenance(torch.device("cpu")),
        "threads": 1,
        "frames": FRAMES,
        "size": data.size,
        "epochs": epochs,
        "samples": {s: len(data.split(s)) for s in ("train", "val", "test")},
        "classes": data.spec.num_classes,
        "test_acc_pct": summary,
        "runs": runs,
        "seconds": round(time.perf_counter() - t0, 1),
    }
