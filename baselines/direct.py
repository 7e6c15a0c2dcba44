"""Direct training at the same or a different time step (the paper's Fig. 1/2, Sec. 1 and 5.5),
and plain cross-entropy direct training.

The paper's Figure 2 compares HSD with "TET (STS)" and "TET (DTS)", so both variants use TET's
loss (`baselines.tet.tet_loss`), TET's LIF neuron and TET's recipe; they differ only in frames:

- `sts` (Same Time Step): the whole event stream is integrated into T frames (`frames = T`);
  the SNN trains and tests on those T frames. (This is `tet` under the name Figure 2 uses.)
- `dts` (Different Time Step): the stream is integrated into the dataset's full frame count
  F_total (`frames = F_total`: 10 for CIFAR10-DVS / N-Caltech101 / n-digits, 16 for DVS-Gesture);
  the SNN trains on all F_total frames and is tested on the FIRST T frames only (t ≤ T, so the
  latency is the sensor time of those T frames). Validation, which selects the epoch, uses the
  same first-T window as the test (on the validation split, never the test split).
- `ce`: plain direct training, L = CE(mean_t o_t, y), LIF neuron, TET's optimiser and frames
  (`frames = T`); the "baseline" row of Table 6. Option `ht` as in `tet`.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from baselines.common import (
    check_neuron,
    direct_defaults,
    fresh_snn,
    train_and_test,
)
from baselines.tet import TET, tet_loss, tet_recipe
from hsd.config import ConfigError, RunConfig
from hsd.engine import Evaluation, make_optimizer
from hsd.method import Method, RunContext, register


def ce_of_mean(logits, target):
    """CE of the time-averaged logits: CE((1/T) Σ_t o_t, y)."""
    return F.cross_entropy(logits.mean(0), target)


@register
class STS(TET):
    """TET under the name Figure 2 uses; same-time-step training has no HT variant."""

    name = "sts"
    summary = "TET (STS): train and test on the same T frames (stream integrated into T)"
    options: dict[str, Any] = {}


@register
class DTS(Method):
    name = "dts"
    summary = "TET (DTS): train on all F_total frames, test on the first T of them"
    neuron = "lif"
    options: dict[str, Any] = {}

    def defaults(self, cfg: RunConfig, spec: Any) -> dict[str, Any]:
        d = direct_defaults(cfg, spec, tet_recipe(cfg, spec))
        d["frames"] = spec.default_frames
        return d

    def check(self, cfg: RunConfig) -> None:
        check_neuron(cfg)
        if cfg.pre_frames:
            raise ConfigError("dts tests on the first T frames; pre_frames must be 0 or unset")

    def run(self, cfg: RunConfig, ctx: RunContext) -> Evaluation:
        model = fresh_snn(cfg, ctx)
        opt = make_optimizer("adam", model.parameters(), cfg.lr, cfg.weight_decay)
        return train_and_test(
            cfg,
            ctx,
            model,
            opt,
            train_window=slice(0, cfg.frames),
            eval_window=slice(0, cfg.T),
            loss_fn=lambda m, x, y: tet_loss(m(x), y),
        )


@register
class CE(TET):
    name = "ce"
    summary = "plain direct training: CE of the time-averaged logits, LIF, same T"

    def loss(self, logits, target):
        return ce_of_mean(logits, target)
