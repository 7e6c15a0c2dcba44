"""ANN → SNN conversion (Bu et al., ICLR 2022; HSD §4.2).

Two paths, one rule (every QCFS becomes an IF neuron with θ = its λ):

- a ``SpecNet`` of ``hsd.models`` (the fast path): build the spiking twin from the same spec with
  ``neuron="if-converted"``, copy every weight and BN buffer, and give each IF neuron the
  threshold θ = λ of the QCFS it replaces; stateless layers run once on the merged ``[T·N, ...]``
  batch.
- any other ``nn.Module`` whose activations are ``QCFS`` modules (e.g. a residual network a user
  writes): a deep copy with every QCFS replaced by a single-step IF neuron, wrapped in
  ``SteppedSNN``, which runs the network once per time step on ``[T, N, ...]`` input. Residual
  additions, concatenations and any other layer work unchanged because each step is an ordinary
  forward of the copied network; the neurons keep their membrane between steps.
 The IF neurons reset by subtraction,
start each sequence at v0 = θ/2 and emit spikes of amplitude θ, so for a constant input z and
T = L steps the mean output (1/L)·Σ_t θ·s_t equals the QCFS output exactly when 0 ≤ z ≤ λ
(and in expectation otherwise). BatchNorm is kept (affine in eval mode; fine-tuning may train
it). The ANN is left untouched. ``surrogate`` picks the IF neurons' surrogate gradient
("normalized", HSD Eq. 12, default; "raw", the QCFS code's; see ``hsd.neurons``).

Call ``spikingjelly.activation_based.functional.reset_net(snn)`` after every batch (both paths).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from hsd.models import MODELS, SpecNet
from hsd.neurons import QCFS, SURROGATE_FORMS, ConvertedIFNode, is_spiking_neuron

__all__ = ["SteppedSNN", "ann_to_snn", "load_ann_state", "qcfs_thresholds"]


def qcfs_thresholds(ann: nn.Module) -> dict[str, float]:
    """Module name → λ for every QCFS layer of ``ann``."""
    return {name: float(m.lam.detach()) for name, m in ann.named_modules() if isinstance(m, QCFS)}


def load_ann_state(snn: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a QCFS-ANN state dict into an SNN of the same spec, skipping the QCFS ``*.lam``
    entries (they become neuron thresholds, not weights). Any other mismatch — a missing or
    unexpected key, or a shape difference — means another architecture/width/size/class count
    and raises ``ValueError`` listing the offending keys (nothing is loaded in that case)."""
    own = snn.state_dict()
    lam_keys = {k for k in state_dict if k.endswith(".lam") and k not in own}
    given = {k: v for k, v in state_dict.items() if k not in lam_keys}
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    shapes = sorted(
        f"{k}: {tuple(given[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(given)
        if tuple(given[k].shape) != tuple(own[k].shape)
    )

    def show(keys: list[str]) -> str:
        more = f" ... (+{len(keys) - 12} more)" if len(keys) > 12 else ""
        return ", ".join(keys[:12]) + more

    if missing or unexpected or shapes:
        lines = [
            "state dict does not match the SNN (different architecture, width, size or classes?)"
        ]
        if missing:
            lines.append(f"  missing in the state dict: {show(missing)}")
        if unexpected:
            lines.append(f"  not in the SNN: {show(unexpected)}")
        if shapes:
            lines.append(f"  shape mismatch (given vs SNN): {show(shapes)}")
        raise ValueError("\n".join(lines))
    snn.load_state_dict(given, strict=True)


class SteppedSNN(nn.Module):
    """A converted network run one time step at a time: ``[T, N, ...] → [T, N, ...]``, each
    step an ordinary forward of ``net`` (whose IF neurons are single-step and keep their
    membrane between steps). Works for any architecture, residual ones included. Its layers
    see one step at a time, so ``hsd.metrics.SpikeStats`` (which expects stateless layers on the
    merged ``[T·N, ...]`` batch, as ``SpecNet`` runs them) does not count its operations."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(
                f"SteppedSNN expects time-first input [T, N, ...], got shape {tuple(x.shape)}"
            )
        return torch.stack([self.net(x_t) for x_t in x.unbind(0)])


def _check_thresholds(ann: nn.Module) -> dict[str, float]:
    thresholds = qcfs_thresholds(ann)
    bad = {k: v for k, v in thresholds.items() if not v > 0}
    if bad:
        raise ValueError(f"QCFS thresholds must be > 0 to become IF thresholds; got {bad}")
    return thresholds


def _convert_any(ann: nn.Module, surrogate: str) -> SteppedSNN:
    """Every QCFS of a deep copy → a single-step converted IF neuron (θ = λ); see the module
    docstring."""
    if any(is_spiking_neuron(m) for m in ann.modules()):
        raise ValueError("ann_to_snn needs a QCFS ANN; this model already holds spiking neurons")
    thresholds = _check_thresholds(ann)
    if not thresholds:
        raise ValueError(
            f"ann_to_snn: {type(ann).__name__} has no QCFS activation to convert; build the ANN "
            "with hsd.neurons.QCFS in place of its ReLUs"
        )
    net = copy.deepcopy(ann)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, QCFS):
                node = ConvertedIFNode(
                    float(child.lam.detach()), step_mode="s", surrogate=surrogate
                )
                setattr(parent, name, node)
    p = next(ann.parameters(), None)
    snn = SteppedSNN(net)
    if p is not None:
        snn.to(p.device)
    snn.train(ann.training)
    return snn


def ann_to_snn(ann: nn.Module, surrogate: str = "normalized") -> nn.Module:
    """Convert a QCFS ANN into an SNN: each QCFS → IF (reset by subtraction, θ = λ, v0 = θ/2,
    output θ·s), weights and BN buffers deep-copied, same device and train/eval mode as ``ann``.
    Returns a new model taking ``[T, N, ...]``: the spiking twin ``SpecNet`` for a model of
    ``hsd.models`` (``neuron="qcfs"``), else a ``SteppedSNN`` around a converted copy."""
    if surrogate not in SURROGATE_FORMS:
        raise ValueError(
            f"ann_to_snn: surrogate {surrogate!r} unknown; valid: {', '.join(SURROGATE_FORMS)}"
        )
    if not isinstance(ann, SpecNet):
        return _convert_any(ann, surrogate)
    if ann.spiking or ann.spec["neuron"] != "qcfs":
        raise ValueError(
            f"ann_to_snn needs a QCFS ANN (neuron='qcfs'); this model uses "
            f"neuron={ann.spec['neuron']!r}, it is already spiking"
        )
    thresholds = _check_thresholds(ann)
    spec = {k: v for k, v in ann.spec.items() if k != "arch"}
    spec["neuron"] = "if-converted"
    spec["neuron_kw"] = {"surrogate": surrogate}
    snn = MODELS[ann.spec["arch"]](**spec)
    load_ann_state(snn, ann.state_dict())
    modules = dict(snn.named_modules())
    for name, lam in thresholds.items():
        node = modules.get(name)
        if not isinstance(node, ConvertedIFNode):  # same spec ⇒ same names; guard anyway
            raise RuntimeError(f"no IF neuron at {name!r} in the converted SNN")
        node.set_threshold(lam)
    p = next(ann.parameters(), None)
    if p is not None:
        snn.to(p.device)
    snn.train(ann.training)
    return snn
