"""SLTT's LIF neuron (Meng et al., ICCV 2023, "Towards Memory- and Time-Efficient Backpropagation
for Training Spiking Neural Networks"), registered as neuron kind ``"sltt"`` through the
``hsd.neurons`` entry-point group (pyproject.toml), like any outside package's neuron would be.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import base

from hsd import neurons

SLTT_TAU = 1.1  # authors' `-tau` default


class SLTTNode(base.MemoryModule):
    """SLTT's LIF neuron: v_t = (1 − 1/τ)·sg(v_{t−1}) + x_t; s_t = H(v_t − θ); v_t −= θ·s_t.

    Multi-step (`[T, N, ...]`) like the package's other neurons; because the previous state is
    detached inside the update, even a whole-sequence forward carries no gradient through time.
    The state starts at 0 and `reset()` (`functional.reset_net`) restores it.
    """

    def __init__(
        self,
        tau: float = SLTT_TAU,
        v_threshold: float = 1.0,
        surrogate_function=None,
    ) -> None:
        super().__init__()
        if not tau > 1.0:
            raise ValueError(f"SLTT tau must be > 1 (leak factor 1 - 1/tau in (0, 1)), got {tau}")
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.surrogate_function = surrogate_function or neurons.triangle()
        self.step_mode = "m"
        self.register_memory("v", 0.0)

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.v
        if not isinstance(v, torch.Tensor) or v.shape != x.shape:
            v = torch.zeros_like(x)  # a new sequence (or a stale state of another batch)
        h = (1.0 - 1.0 / self.tau) * v.detach() + x
        spike = self.surrogate_function(h - self.v_threshold)
        self.v = h - spike * self.v_threshold
        return spike

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.single_step_forward(x) for x in x_seq])

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_threshold={self.v_threshold}, soft_reset, detach_v_prev"


def make_sltt_node(tau: float = SLTT_TAU, v_threshold: float = 1.0, surrogate_function=None):
    """The ``hsd.neurons`` entry point: `hsd.neurons.make_neuron("sltt", ...)` builds it."""
    return SLTTNode(tau, v_threshold, surrogate_function)
