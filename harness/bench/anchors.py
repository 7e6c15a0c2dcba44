"""The networks the training-step benchmark compares: the ANN floor, our SNNs (SpikingJelly or lean
IF neuron), the converted SNN HSD fine-tunes, and two anchor styles written the usual ways.

All share the same VGG-SNN layers (`hsd.models.vgg_snn`), so a ratio to the floor measures the
cost of the temporal state and of the implementation style, not of a different network.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.bench.config import BenchError, TrainConfig

IMPLS = (
    "floor",
    "ours-sj",
    "ours-lean",
    "converted-sj",
    "converted-lean",
    "anchor-sj",
    "anchor-loop",
)
DESCRIPTIONS = {
    "floor": "ANN floor: same convs + ReLU on T*N frames as one batch",
    "ours-sj": "vgg_snn(neuron='if') as trained: SpikingJelly IFNode (fp32 on a CPU: hsd CPU scan)",
    "ours-lean": "vgg_snn(neuron='if') with LeanIFNode (hsd.kernels), engine loss path",
    "converted-sj": "ann_to_snn(QCFS VGG): ConvertedIFNode (θ=λ, v0=θ/2) as trained",
    "converted-lean": "ann_to_snn(QCFS VGG) with LeanIFNode.converted, engine loss path",
    "anchor-sj": "anchor: nn.Sequential VGG, SpikingJelly multi-step IFNode",
    "anchor-loop": "anchor: Python loop over T, hand-written IF neuron",
}


class _TriangleSpike(torch.autograd.Function):
    """H(v − θ) forward, max(0, 1 − |v − θ|) backward: the anchor loop's hand-written surrogate."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * (1 - u.abs()).clamp(min=0)


class _LoopAnchor(nn.Module):
    """A VGG stepped frame by frame: for t in 1..T, every layer on x_t; IF (θ = 1, reset by
    subtraction) state in a Python list. Input [T, N, C, H, W] → logits [T, N, K]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.features, self.classifier = net.features, net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v: dict[int, torch.Tensor | float] = {}
        outs = []
        for t in range(x.shape[0]):
            h = x[t]
            for i, layer in enumerate(self.features):
                if isinstance(layer, nn.Identity):  # the neuron slots
                    u = v.get(i, 0.0) + h
                    h = _TriangleSpike.apply(u - 1.0)
                    v[i] = u - h
                else:
                    h = layer(h)
            outs.append(self.classifier(h))
        return torch.stack(outs)


class _SeqAnchor(nn.Module):
    """SpikingJelly multi-step style: conv/BN on the merged T·N batch (``SeqToANNContainer``),
    ``IFNode(step_mode='m')`` on [T, N, ...]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        from spikingjelly.activation_based import layer, neuron

        from hsd.neurons import triangle

        mods: list[nn.Module] = []
        stateless: list[nn.Module] = []
        for m in net.features:
            if isinstance(m, nn.Identity):
                # SpikingJelly's own IFNode (not hsd's subclass): its kernels on every device
                sj_if = neuron.IFNode(v_reset=None, surrogate_function=triangle(), step_mode="m")
                mods += [layer.SeqToANNContainer(*stateless), sj_if]
                stateless = []
            else:
                stateless.append(m)
        if stateless:
            mods.append(layer.SeqToANNContainer(*stateless))
        mods.append(layer.SeqToANNContainer(*net.classifier))
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def model_for_impl(impl: str, cfg: TrainConfig) -> nn.Module:
    """The network of one implementation (same VGG-SNN layers everywhere, see module docstring)."""
    from hsd.convert import ann_to_snn
    from hsd.lean import swap_to_lean
    from hsd.models import vgg_snn

    kw = dict(num_classes=cfg.num_classes, size=cfg.size, width=cfg.width)
    if impl == "floor":
        return vgg_snn(neuron=nn.ReLU, **kw)  # ReLU is stateless: runs on the merged T·N batch
    if impl in ("ours-sj", "ours-lean"):
        net = vgg_snn(neuron="if", **kw)
        return swap_to_lean(net) if impl == "ours-lean" else net
    if impl in ("converted-sj", "converted-lean"):
        net = ann_to_snn(vgg_snn(neuron="qcfs", **kw))
        return swap_to_lean(net) if impl == "converted-lean" else net
    if impl == "anchor-sj":
        return _SeqAnchor(vgg_snn(neuron=nn.Identity, **kw))
    if impl == "anchor-loop":
        return _LoopAnchor(vgg_snn(neuron=nn.Identity, **kw))
    raise BenchError(f"unknown implementation {impl!r}; valid: {', '.join(IMPLS)}")
