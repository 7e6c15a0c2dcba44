"""Plumbing every baseline shares: recipe defaults, the "with HT" start, and one train-then-test
call through the engine. A baseline file only states its loss (or step), neuron and recipe.

Two ways a baseline starts:

- **from scratch** (default): a fresh SNN of the dataset's architecture with the method's own
  neuron (or `cfg.neuron`), trained on a frame window and tested on a window (the same one for
  same-time-step training; DTS tests on a prefix of its training window);
- **with HT** (option `ht=True`, the paper's Table 4): HSD's pre-trained and converted SNN
  (`hsd.recipe.pretrain_and_convert`: QCFS ANN on frames [0, T_p), converted to IF neurons),
  fine-tuned with the method's loss on frames [T_p, T_p + T) and tested there. The fine-tuning
  schedule is HSD's (Adam 1e-5, 100 epochs: the paper swaps only the SKD module for TET/SLTT,
  Sec. 5.4), and the neuron is the converted net's IF neuron ("if-converted").
"""

from __future__ import annotations

from typing import Any

import torch
from spikingjelly.activation_based import base
from torch import nn

from hsd import neurons
from hsd.config import ConfigError, RunConfig
from hsd.data import ht_partition
from hsd.engine import Evaluation, Stage, StepFn, evaluate, fit, make_optimizer
from hsd.method import RunContext
from hsd.pipeline import (
    SMOKE_AUGMENT,
    SMOKE_EPOCHS,
    build_model,
    profile_defaults,
    stable_seed,
    window_batches,
)
from hsd.recipe import (
    SMOKE_ADAM_LR,  # smoke lr of the Adam 1e-3 recipes (shared with HSD without HT), see below
    SMOKE_ADAM_LR_FROM,
    check_ht_window,
    hsd_defaults,
    pretrain_and_convert,
)

HT_NEURON = "if-converted"  # what ANN->SNN conversion puts in place of QCFS


def direct_defaults(cfg: RunConfig, spec: Any, recipe: dict[str, Any]) -> dict[str, Any]:
    """Defaults of a from-scratch run: the shared profile, the whole stream integrated into T
    frames (same-time-step training), then the method's own recipe on top (paper profile only;
    the smoke profile keeps the method's optimiser but runs `SMOKE_EPOCHS`)."""
    d = profile_defaults(cfg, spec)
    d.update(frames=cfg.T, pre_frames=0)
    paper = {k: v for k, v in recipe.items() if k != "epochs" or cfg.profile == "paper"}
    d.update(paper)
    if spec.arch == "snn5" and d.get("augment") == "flip_roll":
        d["augment"] = "roll"  # a flip swaps mirror-image gesture classes (hsd.data.augment)
    if cfg.profile != "paper":
        # Same epochs as HSD's two stages together (see hsd.pipeline.SMOKE_EPOCHS), and the
        # smoke profile's augmentation in place of the recipe's (why: hsd.pipeline).
        d["epochs"] = SMOKE_EPOCHS[spec.arch]
        d["augment"] = SMOKE_AUGMENT
        if recipe.get("lr") == SMOKE_ADAM_LR_FROM:
            # Adam 1e-3 recipes (TET/STS/DTS, TCJA): 3e-3 on smoke, since a few hundred steps
            # at 1e-3 barely move SNN-5 (sim-gestures STS T=5, 10-12 epochs: 0.23 at 1e-3,
            # 0.58-0.68 at 3e-3; n-digits VGG T=3, 8 epochs: 0.51 at 1e-3 with flip_roll,
            # 1.00 at 3e-3 without). SGD recipes (SLTT) keep their lr.
            d["lr"] = SMOKE_ADAM_LR
    return d


def ht_defaults(cfg: RunConfig, spec: Any) -> dict[str, Any]:
    """Defaults of a "with HT" run: HSD's frames, pre-training and fine-tuning recipe, minus the
    distillation fields a non-distilling method does not use."""
    d = hsd_defaults(cfg, spec)
    d.pop("kd_lambda", None)
    d.pop("tau", None)
    d["neuron"] = HT_NEURON
    return d


def check_neuron(cfg: RunConfig) -> None:
    """HT fine-tunes the converted IF network; another neuron would silently not be used."""
    if cfg.option("ht", False):
        check_ht_window(cfg)
        if cfg.neuron not in (None, HT_NEURON):
            raise ConfigError(
                f"{cfg.method} with ht=true fine-tunes the converted SNN, whose neurons are "
                f"{HT_NEURON!r}; drop --neuron {cfg.neuron} or use ht=false"
            )
    elif cfg.neuron is not None and cfg.neuron not in neurons.NEURONS:
        raise ConfigError(
            f"unknown neuron {cfg.neuron!r}; valid: {', '.join(neurons.NEURONS.names())}"
        )


def fresh_snn(cfg: RunConfig, ctx: RunContext, block_extra=None, neuron=None) -> nn.Module:
    """The dataset's architecture with `cfg.neuron` (or `neuron`: a kind or a zero-argument
    factory of a configured neuron), seeded from (seed, "student")."""
    torch.manual_seed(stable_seed(cfg, "student"))
    return build_model(cfg, ctx.data.spec, neuron or cfg.neuron, block_extra=block_extra).to(
        ctx.device
    )


def start_model(cfg: RunConfig, ctx: RunContext) -> tuple[nn.Module, slice]:
    """The SNN to train and the frame window it trains and tests on (scratch or with HT)."""
    if cfg.option("ht", False):
        _, snn = pretrain_and_convert(cfg, ctx)
        _, window = ht_partition(cfg.frames, cfg.pre_frames, cfg.T)
        return snn, window
    return fresh_snn(cfg, ctx), slice(0, cfg.T)


def optimizer_for(cfg: RunConfig, params, name: str) -> torch.optim.Optimizer:
    """With HT the fine-tuning optimiser is HSD's (Adam, no weight decay); else the method's."""
    if cfg.option("ht", False):
        return make_optimizer("adam", params, cfg.lr, 0.0)
    return make_optimizer(name, params, cfg.lr, cfg.weight_decay)


def train_and_test(
    cfg: RunConfig,
    ctx: RunContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    train_window: slice,
    eval_window: slice | None = None,
    loss_fn=None,
    step_fn: StepFn | None = None,
    stage: str = "train",
    test_model: nn.Module | None = None,
) -> Evaluation:
    """Fit `model` on `train_window` (validation on `eval_window`), then test on `eval_window`.

    Records the neuron, its backend and the best validation accuracy in `ctx.info`, so they land
    in every result row. `test_model` is what gets evaluated when `model` wraps extra trainable
    parts (e.g. the feature-KD alignment conv).
    """
    eval_window = eval_window or train_window
    train, _, _ = window_batches(cfg, ctx, train_window, stage=stage, augment=cfg.augment)
    _, val, test = window_batches(cfg, ctx, eval_window, stage=stage, augment="none")
    summary = fit(
        Stage(stage, model, optimizer, cfg.epochs, train, val, loss_fn=loss_fn, step_fn=step_fn),
        run_id=cfg.run_id(),
        device=ctx.device,
        bf16=cfg.bf16,
        checkpoint_dir=ctx.checkpoint_dir,
        on_epoch=ctx.on_epoch,
    )
    net = test_model if test_model is not None else model
    ctx.info["neuron"] = cfg.neuron
    ctx.info["neuron_backend"] = neurons.neuron_backend(net)
    ctx.info["best_val_acc"] = summary["best_val_acc"]
    return evaluate(net, test(), bf16=cfg.bf16, device=ctx.device)


def detach_states(model: nn.Module) -> None:
    """Cut every neuron state (and any other stateful module) from the autograd graph, out of
    place, so the next time step starts a new graph: stop-gradient through time."""
    for m in model.modules():
        if isinstance(m, base.MemoryModule):
            for name, value in list(m.named_memories()):
                if isinstance(value, torch.Tensor):
                    setattr(m, name, value.detach())
