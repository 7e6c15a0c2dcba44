"""Plumbing every baseline shares: the "with HT" option, the neuron check, and one
train-then-test call through the engine. A baseline file only states its loss (or step), neuron
and recipe (presets as data).

Two ways a baseline starts:

- **from scratch** (default): a fresh SNN of the dataset's architecture with the method's own
  neuron (or `cfg.neuron`), trained and tested on the same-time-step frames (the whole stream
  integrated into T frames), or on all frames for DTS;
- **with HT** (option `ht=True`, the paper's Table 4): HSD's pre-trained and converted SNN
  (`hsd.hybrid`: QCFS ANN on frames [0, T_p), converted to IF neurons), fine-tuned with the
  method's loss on frames [T_p, T_p + T) and tested there, with HSD's fine-tuning schedule (Adam
  1e-5, 100 epochs: the paper swaps only the SKD module for TET/SLTT, Sec. 5.7).
"""

from __future__ import annotations

from typing import Any

import torch
from spikingjelly.activation_based import base
from torch import nn

from hsd import neurons
from hsd.batches import stable_seed, window_batches
from hsd.config import ConfigError, RunConfig
from hsd.data import ht_partition
from hsd.engine import Evaluation, Stage, StepFn, evaluate, fit, make_optimizer
from hsd.hybrid import (
    HYBRID_PRESETS,
    check_converted_neuron,
    check_ht_window,
    hybrid_frame_plan,
    pretrain_and_convert,
)
from hsd.method import Method, RunContext
from hsd.models import model_for_run


def check_neuron(cfg: RunConfig) -> None:
    """With HT the converted IF neuron; from scratch any registered kind."""
    if cfg.option("ht", False):
        check_ht_window(cfg)
        check_converted_neuron(cfg)
    elif cfg.neuron not in neurons.NEURONS:
        raise ConfigError(
            f"unknown neuron {cfg.neuron!r}; valid: {', '.join(neurons.NEURONS.names())}"
        )


class Baseline(Method):
    """A baseline whose option ``ht`` (when it has one) swaps its recipe for HSD's HT recipe."""

    def preset_layers(self, cfg: RunConfig):
        return [HYBRID_PRESETS] if cfg.option("ht", False) else [self.presets]

    def frame_plan(self, cfg: RunConfig, spec: Any) -> dict[str, Any]:
        if cfg.option("ht", False):
            return hybrid_frame_plan(cfg, spec)
        return super().frame_plan(cfg, spec)

    def check(self, cfg: RunConfig) -> None:
        check_neuron(cfg)


def fresh_snn(cfg: RunConfig, ctx: RunContext, block_extra=None, neuron=None) -> nn.Module:
    """The dataset's architecture with `cfg.neuron` (or `neuron`: a kind or a zero-argument
    factory of a configured neuron), seeded from (seed, "student")."""
    torch.manual_seed(stable_seed(cfg, "student"))
    kind = neuron or cfg.neuron
    return model_for_run(cfg, ctx.data.spec, kind, block_extra=block_extra).to(ctx.device)


def start_model(cfg: RunConfig, ctx: RunContext) -> tuple[nn.Module, slice]:
    """The SNN to train and the frame window it trains and tests on (scratch or with HT)."""
    if cfg.option("ht", False):
        _, snn = pretrain_and_convert(cfg, ctx)
        _, window = ht_partition(cfg.frames, cfg.pre_frames, cfg.T)
        return snn, window
    return fresh_snn(cfg, ctx), slice(0, cfg.frames)


def optimizer_for(cfg: RunConfig, params, name: str) -> torch.optim.Optimizer:
    """With HT the fine-tuning optimiser is HSD's (Adam, no weight decay); else the method's."""
    if cfg.option("ht", False):
        return make_optimizer("adam", params, cfg.lr, 0.0)
    return make_optimizer(name, params, cfg.lr, cfg.weight_decay, cfg.adam_decay)


def train_and_test(
    cfg: RunConfig,
    ctx: RunContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    window: slice,
    loss_fn=None,
    step_fn: StepFn | None = None,
    stage: str = "train",
    test_model: nn.Module | None = None,
) -> Evaluation:
    """Fit `model` on `window` (validation on the same window), then test on it.

    Records the neuron, its backend and the best validation accuracy in `ctx.info`, so they land
    in every result row. `test_model` is what gets evaluated (and whose outputs give the training
    accuracy) when `model` wraps extra trainable parts (e.g. the feature-KD alignment conv).
    """
    train, val, test = window_batches(cfg, ctx, window, stage=stage, augment=cfg.augment)
    net = test_model if test_model is not None else model
    summary = fit(
        Stage(
            stage,
            model,
            optimizer,
            cfg.epochs,
            train,
            val,
            loss_fn=loss_fn,
            step_fn=step_fn,
            predictor=net,
        ),
        run_id=cfg.run_id(),
        device=ctx.device,
        bf16=cfg.bf16,
        checkpoint_dir=ctx.checkpoint_dir,
        on_epoch=ctx.on_epoch,
    )
    ctx.info["neuron"] = cfg.neuron
    ctx.info["neuron_backend"] = neurons.neuron_backend(net, bf16=cfg.bf16)
    ctx.info["best_val_acc"] = summary["best_val_acc"]
    return evaluate(net, test(), val_batches=val(), bf16=cfg.bf16, device=ctx.device)


def detach_states(model: nn.Module) -> None:
    """Cut every neuron state (and any other stateful module) from the autograd graph, out of
    place, so the next time step starts a new graph: stop-gradient through time."""
    for m in model.modules():
        if isinstance(m, base.MemoryModule):
            for name, value in list(m.named_memories()):
                if isinstance(value, torch.Tensor):
                    setattr(m, name, value.detach())
