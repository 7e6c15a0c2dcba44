"""VGG-SNN and SNN-5: one spec builds both the 2-D QCFS ANN and the spiking net.

Every model is a ``SpecNet``: ``.features`` (conv stages, one flat ``nn.Sequential``) and
``.classifier`` (``nn.Sequential``), with the same module names whatever the activation, so
``snn.load_state_dict(ann.state_dict())`` matches key for key except the QCFS ``*.lam``
thresholds (which conversion turns into neuron thresholds, see ``hsd.convert``).

- ``neuron="qcfs"`` → ANN: ``[B, C, H, W] → [B, K]``; each frame is an independent image.
- any spiking kind (``hsd.neurons.NEURONS``) → SNN: ``[T, N, C, H, W] → [T, N, K]``. Stateless
  layers (conv, BN, pools, flatten, linear, vote) run once on the merged ``[T·N, ...]`` batch;
  stateful ones (neurons, SpikingJelly dropout) and ``block_extra`` modules get ``[T, N, ...]``.
  The last FC is applied per step with no output neuron: the logits at step t are o_t.

Call ``spikingjelly.activation_based.functional.reset_net(model)`` after every batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn
from spikingjelly.activation_based import base
from spikingjelly.activation_based import layer as sj_layer

from hsd.config import ConfigError
from hsd.neurons import NEURONS, QCFS, make_neuron
from hsd.registry import Registry

__all__ = [
    "MODELS",
    "SpecNet",
    "VotingLayer",
    "build_model",
    "count_parameters",
    "model_for_run",
    "snn5",
    "vgg_snn",
]

# VGG-SNN of TET (Deng et al. 2022): 64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-
# 512C3-512C3-AP2; pooling after blocks 2, 4, 6, 8.
_VGG_CHANNELS = (64, 128, 256, 256, 512, 512, 512, 512)
_VGG_POOL_AFTER = (2, 4, 6, 8)

BlockExtra = Mapping[int, Callable[[int], nn.Module]]


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _check_common(num_classes, in_channels, size, width, divisor: int, arch: str) -> None:
    for name, v in (("num_classes", num_classes), ("in_channels", in_channels), ("size", size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{arch}: {name} must be a positive integer, got {v!r}")
    if size % divisor:
        raise ValueError(
            f"{arch}: input size {size} must be divisible by {divisor} (it has "
            f"{divisor.bit_length() - 1} 2×2 pools); use e.g. {max(divisor, size // divisor * divisor)}"
        )
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"{arch}: width multiplier must be > 0, got {width!r}")


class VotingLayer(nn.Module):
    """Mean over consecutive groups of ``group`` outputs (PLIF's voting layer): [B, G·K] → [B, K]."""

    def __init__(self, group: int = 10) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, self.group)).mean(-1)

    def extra_repr(self) -> str:
        return f"group={self.group}"


def _is_temporal(layer: nn.Module) -> bool:
    """Stateful SpikingJelly modules (neurons, dropout) and any multi-step module need the
    sequence [T, N, ...]; everything else runs on the merged [T·N, ...] batch."""
    return isinstance(layer, base.MemoryModule) or getattr(layer, "step_mode", None) == "m"


class SpecNet(nn.Module):
    """A model built from a spec (``.spec``: the builder's keyword arguments, used by conversion
    to build a twin). ``.spiking`` says which side it is; ``.features``/``.classifier`` as above."""

    def __init__(
        self,
        features: nn.Sequential,
        classifier: nn.Sequential,
        spec: dict,
        extra_idx: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.spec = dict(spec)
        self.spiking = spec["neuron"] != "qcfs"
        self._extra_idx = extra_idx  # indices in .features that get [T, N, ...] in the SNN

    # The time dimension is folded into the batch for stateless layers (one big conv instead of
    # T small ones) and unfolded for stateful ones, which must see the sequence in order.
    def _run(self, seq: nn.Sequential, h: torch.Tensor, T: int, N: int, extra=frozenset()):
        for i, layer in enumerate(seq):
            if _is_temporal(layer) or i in extra:
                h = layer(h.unflatten(0, (T, N))).flatten(0, 1)
            else:
                h = layer(h)
        return h

    def _check_input(self, x: torch.Tensor) -> None:
        want = 5 if self.spiking else 4
        if x.dim() != want:
            shape = "[T, N, C, H, W]" if self.spiking else "[B, C, H, W] (one frame per image)"
            raise ValueError(
                f"{'SNN' if self.spiking else 'QCFS ANN'} expects a {want}-D input {shape}, "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[-3] != self.spec["in_channels"] or x.shape[-1] != self.spec["size"]:
            raise ValueError(
                f"expected {self.spec['in_channels']} channels of {self.spec['size']}×"
                f"{self.spec['size']}, got input shape {tuple(x.shape)}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last conv stage: [B, C, h, w] (ANN) or [T, N, C, h, w] (SNN)."""
        self._check_input(x)
        if not self.spiking:
            return self.features(x)
        T, N = x.shape[:2]
        return self._run(self.features, x.flatten(0, 1), T, N, self._extra_idx).unflatten(0, (T, N))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spiking:
            return self.classifier(self.forward_features(x))
        T, N = x.shape[:2]
        h = self.forward_features(x).flatten(0, 1)
        return self._run(self.classifier, h, T, N).unflatten(0, (T, N))


def _activation(neuron: str | Callable[[], nn.Module], L: int, neuron_kw: dict | None):
    """A fresh activation module per call: QCFS(L) for the ANN, else a multi-step neuron."""
    if callable(neuron) and not isinstance(neuron, str):
        return neuron()
    if neuron == "qcfs":
        return QCFS(L, **(neuron_kw or {}))
    if neuron not in NEURONS:
        valid = ", ".join(["qcfs", *NEURONS.names()])
        raise ValueError(f"unknown neuron {neuron!r}; valid: {valid} (or a callable)")
    return make_neuron(neuron, **(neuron_kw or {}))


class AvgPool2x2(nn.AvgPool2d):
    """``nn.AvgPool2d(2)`` (2×2 windows, stride 2) as two strided additions: the same values up
    to float rounding, and on a CPU less time than the pooling kernel, forward and backward (SNN-5
    training steps 1-11 % faster, `python -m harness.bench kernels`). Odd sizes fall back to the
    kernel."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            return super().forward(x)
        rows = x[..., 0::2, :] + x[..., 1::2, :]
        return (rows[..., 0::2] + rows[..., 1::2]) * 0.25


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return [conv, nn.BatchNorm2d(cout)]


def _check_extra(block_extra: BlockExtra | None, n_blocks: int, arch: str) -> dict:
    extra = dict(block_extra or {})
    bad = [k for k in extra if not (isinstance(k, int) and 1 <= k <= n_blocks)]
    if bad:
        raise ValueError(
            f"{arch}: block_extra keys must be conv-block numbers 1..{n_blocks}, got {bad}"
        )
    return extra


def vgg_snn(
    num_classes: int = 10,
    in_channels: int = 2,
    size: int = 48,
    width: float = 1.0,
    neuron: str | Callable[[], nn.Module] = "qcfs",
    L: int = 16,
    block_extra: BlockExtra | None = None,
    neuron_kw: dict | None = None,
) -> SpecNet:
    """VGG-SNN (TET, Deng et al. 2022): 64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-
    512C3-512C3-AP2-flatten-FC(512·(size/16)² → K). C3 = Conv3×3 (stride 1, pad 1, bias) + BN +
    activation; Kaiming-normal (fan_out) conv init. 9,271,498 parameters for K = 10 at 2×48×48.

    ``block_extra[i](channels)`` inserts a module after conv block i's activation and before its
    pool (i = 1..8; TCJA uses {6: ..., 8: ...}); in the SNN it receives ``[T, N, C, H, W]``, in the
    ANN ``[B, C, H, W]``. ``neuron_kw`` goes to ``make_neuron``; ``neuron`` may also be a
    zero-argument callable returning a multi-step neuron module (custom SNN neurons, e.g.
    SLTT's); it must be a SpikingJelly ``MemoryModule`` or have ``step_mode == "m"`` so that it
    receives ``[T, N, ...]`` and is reset by ``reset_net``.
    """
    _check_common(num_classes, in_channels, size, width, 16, "vgg_snn")
    extra = _check_extra(block_extra, len(_VGG_CHANNELS), "vgg_snn")
    layers: list[nn.Module] = []
    extra_idx = []
    cin = in_channels
    for i, c in enumerate(_VGG_CHANNELS, start=1):
        cout = _scaled(c, width)
        layers += [*_conv_bn(cin, cout), _activation(neuron, L, neuron_kw)]
        if i in extra:
            extra_idx.append(len(layers))
            layers.append(extra[i](cout))
        if i in _VGG_POOL_AFTER:
            layers.append(AvgPool2x2())
        cin = cout
    flat = cin * (size // 16) ** 2
    classifier = nn.Sequential(nn.Flatten(1), nn.Linear(flat, num_classes))
    spec = dict(
        arch="vgg",
        num_classes=num_classes,
        in_channels=in_channels,
        size=size,
        width=width,
        neuron=neuron,
        L=L,
        block_extra=block_extra,
        neuron_kw=neuron_kw,
    )
    return SpecNet(nn.Sequential(*layers), classifier, spec, frozenset(extra_idx))


def snn5(
    num_classes: int = 11,
    in_channels: int = 2,
    size: int = 128,
    width: float = 1.0,
    neuron: str | Callable[[], nn.Module] = "qcfs",
    L: int = 16,
    block_extra: BlockExtra | None = None,
    neuron_kw: dict | None = None,
    dropout: float = 0.5,
    vote: int = 10,
) -> SpecNet:
    """SNN-5, the DVS-Gesture net of the PLIF paper (Fang et al., ICCV 2021):
    5 × [Conv3×3 128 + BN + act + AvgPool 2] → flatten → dropout → FC(128·(size/32)² → 512) →
    act → dropout → FC(512 → vote·K) → vote (mean over groups of ``vote``) → K.

    Choices (the HSD paper does not spell its SNN-5 out): average pools (PLIF uses max pools;
    average pools are what ANN→SNN conversion needs); convs and FCs with bias (PLIF's are
    bias-free) to match the C3 block of VGG-SNN; no output neuron (logits per step, as in
    VGG-SNN, rather than PLIF's spiking output layer); dropout p = 0.5 (PLIF). In the SNN,
    dropout is SpikingJelly's multi-step ``layer.Dropout``: one mask per sequence, shared by all
    time steps (Lee et al. 2020), redrawn after ``reset_net``; in the ANN it is ``nn.Dropout``.
    Parameter count for K = 11 at 2×128×128: 1,699,566.
    """
    _check_common(num_classes, in_channels, size, width, 32, "snn5")
    extra = _check_extra(block_extra, 5, "snn5")
    layers: list[nn.Module] = []
    extra_idx = []
    cin = in_channels
    c = _scaled(128, width)
    hidden = _scaled(512, width)
    for i in range(1, 6):
        layers += [*_conv_bn(cin, c), _activation(neuron, L, neuron_kw)]
        if i in extra:
            extra_idx.append(len(layers))
            layers.append(extra[i](c))
        layers.append(AvgPool2x2())
        cin = c
    spiking = neuron != "qcfs"

    def drop() -> nn.Module:
        return sj_layer.Dropout(dropout, step_mode="m") if spiking else nn.Dropout(dropout)

    classifier = nn.Sequential(
        nn.Flatten(1),
        drop(),
        nn.Linear(c * (size // 32) ** 2, hidden),
        _activation(neuron, L, neuron_kw),
        drop(),
        nn.Linear(hidden, num_classes * vote),
        VotingLayer(vote),
    )
    spec = dict(
        arch="snn5",
        num_classes=num_classes,
        in_channels=in_channels,
        size=size,
        width=width,
        neuron=neuron,
        L=L,
        block_extra=block_extra,
        neuron_kw=neuron_kw,
        dropout=dropout,
        vote=vote,
    )
    return SpecNet(nn.Sequential(*layers), classifier, spec, frozenset(extra_idx))


MODELS: Registry = Registry("architecture", group="hsd.models")
MODELS.register("vgg", vgg_snn)
MODELS.register("snn5", snn5)


def build_model(
    arch: str,
    num_classes: int,
    in_channels: int,
    size: int,
    width: float,
    neuron: str | Callable[[], nn.Module],
    L: int,
    block_extra: BlockExtra | None = None,
    neuron_kw: dict | None = None,
    **arch_kw: Any,
) -> SpecNet:
    """Build ``arch`` ("vgg" | "snn5"; unknown names raise ``UnknownNameError``); `arch_kw` are
    the architecture's own arguments (SNN-5's ``dropout``)."""
    return MODELS[arch](
        num_classes=num_classes,
        in_channels=in_channels,
        size=size,
        width=width,
        neuron=neuron,
        L=L,
        block_extra=block_extra,
        neuron_kw=neuron_kw,
        **arch_kw,
    )


def count_parameters(model: nn.Module, include_thresholds: bool = False) -> int:
    """Number of trainable weights: conv + BN + FC (+ any extra modules such as TCJA).

    QCFS thresholds λ (one scalar per activation layer) are excluded by default: they become
    neuron thresholds after conversion, not synaptic weights, and the paper's "9.3M" /
    9,271,498 for VGG-SNN counts conv + BN + FC only. BN running statistics are buffers and
    never counted. ``include_thresholds=True`` adds the λs.
    """
    n = 0
    for mod in model.modules():
        if isinstance(mod, QCFS) and not include_thresholds:
            continue
        n += sum(p.numel() for p in mod.parameters(recurse=False))
    return n


#: Run-config fields that are an architecture's own argument (unset: the architecture's default).
ARCH_FIELDS = ("dropout",)


def arch_fields(cfg) -> dict[str, Any]:
    """The run's values of `ARCH_FIELDS` that are set."""
    return {f: getattr(cfg, f) for f in ARCH_FIELDS if getattr(cfg, f) is not None}


def check_arch_fields(cfg, spec) -> None:
    """A set field the dataset's architecture does not take (VGG-SNN's dropout) would be
    silently ignored: refuse it, naming the flag to drop."""
    takes = inspect.signature(MODELS[spec.arch]).parameters
    for name, value in arch_fields(cfg).items():
        if name not in takes:
            raise ConfigError(
                f"{spec.name}'s {spec.arch} architecture has no {name}; "
                f"drop --{name.replace('_', '-')} {value}"
            )


def model_for_run(cfg, spec, neuron: str, block_extra: BlockExtra | None = None) -> SpecNet:
    """The architecture of dataset `spec` at the run's size and width, with activation `neuron`
    ("qcfs" gives the 2-D ANN, any spiking kind the SNN)."""
    return build_model(
        spec.arch,
        num_classes=spec.num_classes,
        in_channels=2,
        size=cfg.size,
        width=cfg.width,
        neuron=neuron,
        L=cfg.L or 16,
        block_extra=block_extra,
        neuron_kw={"lam": cfg.qcfs_threshold or 8.0} if neuron == "qcfs" else None,
        **arch_fields(cfg),
    )
