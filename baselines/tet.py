"""TET: Temporal Efficient Training (Deng et al., ICLR 2022).

Loss on the per-step logits o_t ([T, N, K]):

    L_TET = (1 − λ) · (1/T) Σ_t CE(o_t, y)  +  λ · (1/T) Σ_t MSE(o_t, φ)

the first term supervises every time step instead of only the mean output, the second keeps
the outputs near φ (an outlier regulariser). λ = 1e-3 and φ = 1.0 are the defaults of the authors'
code (Gus-Lab/temporal_efficient_training, `--lamb 1e-3`, `--means 1.0`; `functions.TET_loss`,
whose MSE is the mean over all [T, N, K] elements, i.e. the mean over t of per-step MSEs).

Neuron: LIF, decay 0.5, hard reset to 0, threshold 1, triangle surrogate (`"lif"`).
Option `ht` (default False): start from HSD's converted SNN and fine-tune with L_TET on the
T frames after the T_p pre-training frames (the paper's Table 4, "TET w/ HT").
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from baselines.common import (
    check_neuron,
    direct_defaults,
    ht_defaults,
    optimizer_for,
    start_model,
    train_and_test,
)
from hsd.config import RunConfig
from hsd.engine import Evaluation
from hsd.method import Method, RunContext, register

# Authors' code (main_training_parallel.py): Adam lr 1e-3 (no weight decay), cosine annealing
# over all epochs, batch 128; CIFAR10-DVS augmentation = random horizontal flip + roll ±5 px
# (data_loaders.py). Epochs: the code's default is 150; the HSD paper gives none for TET.
TET_RECIPE: dict[str, Any] = {
    "neuron": "lif",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "epochs": 150,
    "augment": "flip_roll",
}
TET_LAMBDA = 1e-3  # authors' code, --lamb
TET_PHI = 1.0  # authors' code, --means


def tet_loss(
    logits: torch.Tensor, target: torch.Tensor, lam: float = TET_LAMBDA, phi: float = TET_PHI
) -> torch.Tensor:
    """(1 − λ)·mean_t CE(o_t, y) + λ·mean_t MSE(o_t, φ) for logits [T, N, K], target [N]."""
    if logits.dim() != 3:
        raise ValueError(f"tet_loss expects logits [T, N, K], got shape {tuple(logits.shape)}")
    T = logits.shape[0]
    ce = F.cross_entropy(logits.flatten(0, 1), target.repeat(T))  # = mean over t of per-step CE
    if lam == 0:
        return ce
    mse = F.mse_loss(logits, torch.full_like(logits, phi))
    return (1.0 - lam) * ce + lam * mse


def tet_recipe(cfg: RunConfig, spec: Any) -> dict[str, Any]:
    """TET's defaults; the paper profile's batch is the authors' 128 on the 48-px sets (their
    only event sets) and the shared profile's 32 on DVS-Gesture."""
    recipe = dict(TET_RECIPE)
    if cfg.profile == "paper" and spec.arch == "vgg":
        recipe["batch_size"] = 128
    return recipe


@register
class TET(Method):
    name = "tet"
    summary = "TET loss (per-step CE + λ·MSE to φ), LIF, same T in training and inference"
    neuron = "lif"
    options = {"ht": False}

    def defaults(self, cfg: RunConfig, spec: Any) -> dict[str, Any]:
        if cfg.option("ht", False):
            return ht_defaults(cfg, spec)
        return direct_defaults(cfg, spec, tet_recipe(cfg, spec))

    def check(self, cfg: RunConfig) -> None:
        check_neuron(cfg)

    def loss(self, logits, target):
        """The training loss of logits `[T, N, K]`; subclasses that only change it override it."""
        return tet_loss(logits, target)

    def run(self, cfg: RunConfig, ctx: RunContext) -> Evaluation:
        model, window = start_model(cfg, ctx)
        opt = optimizer_for(cfg, model.parameters(), "adam")

        def loss_fn(net, x, y):
            return self.loss(net(x), y)

        return train_and_test(cfg, ctx, model, opt, train_window=window, loss_fn=loss_fn)
