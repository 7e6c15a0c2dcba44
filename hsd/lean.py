"""`swap_to_lean`: rewrite a model's IF neurons into the memory-lean kernel (`hsd.kernels`).

A model rewrite, not a kernel: it knows the package's neurons (`hsd.neurons`) and the kernel, so
neither of those needs to know the other's module.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional, neuron, surrogate
from torch import nn

from hsd.kernels import LeanIFNode
from hsd.neurons import ConvertedIFNode

__all__ = ["swap_to_lean"]


def swap_to_lean(model: nn.Module, **kw) -> nn.Module:
    """Replace, in place, every SpikingJelly IF neuron with reset by subtraction (``IFNode`` with
    ``v_reset=None``, including ``hsd.neurons.ConvertedIFNode``) by an equivalent ``LeanIFNode``
    (same θ; converted ones keep v0 = θ/2 and output θ·s). Other modules are left alone. Returns
    ``model``; raises ValueError for an IF neuron this kernel cannot reproduce (hard reset)."""

    def lean_for(m: neuron.IFNode) -> LeanIFNode:
        if m.v_reset is not None:
            raise ValueError("swap_to_lean: only reset-by-subtraction IF neurons (v_reset=None)")
        sg = m.surrogate_function
        if not isinstance(sg, surrogate.PiecewiseQuadratic):
            raise ValueError(f"swap_to_lean: only the triangle surrogate, got {type(sg).__name__}")
        opts = dict(alpha=float(sg.alpha), detach_reset=bool(m.detach_reset), **kw)
        if isinstance(m, ConvertedIFNode):
            return LeanIFNode.converted(float(m.v_threshold), **opts)
        return LeanIFNode(float(m.v_threshold), **opts)

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, neuron.IFNode):
                setattr(parent, name, lean_for(child).to(_device_of(model)))
    invalidate = getattr(functional, "invalidate_reset_cache", None)
    if invalidate is not None:  # reset_net caches the module list it resets
        invalidate(model)
    return model


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
