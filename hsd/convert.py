"""ANN → SNN conversion (Bu et al., ICLR 2022; HSD §4.2).

The QCFS ANN and the SNN are built from the same spec (``hsd.models``), so conversion is:
build the spiking twin with ``neuron="if-converted"``, copy every weight and BN buffer, and give
each IF neuron the threshold θ = λ of the QCFS it replaces. The IF neurons reset by subtraction,
start each sequence at v0 = θ/2 and emit spikes of amplitude θ, so for a constant input z and
T = L steps the mean output (1/L)·Σ_t θ·s_t equals the QCFS output exactly when 0 ≤ z ≤ λ
(and in expectation otherwise). BatchNorm is kept (affine in eval mode; fine-tuning may train
it). The ANN is left untouched.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hsd.models import MODELS, SpecNet
from hsd.neurons import QCFS, ConvertedIFNode

__all__ = ["ann_to_snn", "load_ann_state", "qcfs_thresholds"]


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


def ann_to_snn(ann: nn.Module) -> SpecNet:
    """Convert a QCFS ANN (``hsd.models`` with ``neuron="qcfs"``) into its spiking twin:
    same spec with each QCFS → IF (reset by subtraction, θ = λ, v0 = θ/2), weights and BN
    buffers deep-copied, same device and train/eval mode as ``ann``. Returns a new model."""
    if not isinstance(ann, SpecNet):
        raise TypeError(
            f"ann_to_snn needs a model built by hsd.models (vgg_snn/snn5/build_model), "
            f"got {type(ann).__name__}"
        )
    if ann.spiking or ann.spec["neuron"] != "qcfs":
        raise ValueError(
            f"ann_to_snn needs a QCFS ANN (neuron='qcfs'); this model uses "
            f"neuron={ann.spec['neuron']!r}, it is already spiking"
        )
    thresholds = qcfs_thresholds(ann)
    bad = {k: v for k, v in thresholds.items() if not v > 0}
    if bad:
        raise ValueError(f"QCFS thresholds must be > 0 to become IF thresholds; got {bad}")
    spec = {k: v for k, v in ann.spec.items() if k != "arch"}
    spec["neuron"] = "if-converted"
    spec["neuron_kw"] = None
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
