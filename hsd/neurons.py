"""Activations and spiking neurons: the QCFS ANN activation and the multi-step SpikingJelly
neurons the SNNs use, behind one small adapter so SpikingJelly API drift stays in this file.

Kinds (``NEURONS`` registry, built with ``make_neuron(kind, **kw)``; all multi-step, ``[T, N, ...]``):

- ``"if"``: IF, reset by subtraction (Rueckauer et al. 2017), threshold 1.0 unless given.
  v ← v + x; s = H(v − θ); v ← v − s·θ; v starts at 0. Emits binary spikes.
- ``"lif"``: TET-style LIF (Deng et al. 2022): v ← decay·v + x (decay 0.5), s = H(v − θ),
  hard reset to 0, θ = 1.0. SpikingJelly ``LIFNode(tau=1/(1−decay), decay_input=False,
  v_reset=0.0)`` gives exactly H = V − V/τ + X = (1 − 1/τ)·V + X, so τ = 2.0 ⇔ decay 0.5.
  ``v_reset=None`` switches to soft reset (SLTT-style), ``decay`` sets the leak, and
  ``decay_input=True`` scales the input by (1 − decay) as well: v ← decay·v + (1 − decay)·x
  (SpikingJelly's H = V + (X − V)/τ, the TCJA authors' neuron).
- ``"if-converted"``: the neuron an ANN→SNN conversion puts in place of QCFS (Bu et al. 2022):
  IF with reset by subtraction, threshold θ (= the QCFS λ of that layer), membrane potential
  starting at θ/2 at every sequence (restored by ``functional.reset_net``), and spikes of
  amplitude θ (output θ·s). The θ amplitude is what makes the next layer see the same scale as
  the ANN (mean_t θ·s_t ≈ QCFS output), so the ANN weights load unchanged; it matches the
  QCFS reference code (``spike = ZIF(mem − thre)·thre``). θ is a fixed float (not trained in
  fine-tuning, as in the reference code, where ``thresh.data`` is used in SNN mode).

All spiking kinds use the triangle surrogate ``triangle()`` = ``PiecewiseQuadratic(alpha=1)``:
∂s/∂v = max(0, 1 − |v − θ|) (γ = 1, in membrane units), which SpikingJelly also runs in its fused
kernels. The converted IF neuron has two forms (``SURROGATE_FORMS``):

- ``"normalized"`` (default): the triangle on the membrane divided by θ, as in HSD's Eq. 12 and
  the HSD authors' IF neuron: s = H(v/θ − 1), ∂s/∂v = (1/θ)·max(0, 1 − |v − θ|/θ), a window of
  ±θ in membrane units; the emitted θ·s then has ∂(θ·s)/∂v = max(0, 1 − |v − θ|/θ). It is the
  same triangle with α = 1/θ (``triangle(width=θ)``), so the fused kernels still run.
- ``"raw"``: the triangle on the raw membrane, as in the QCFS reference code (``ZIF(mem − thre)``):
  ∂s/∂v = max(0, 1 − |v − θ|), a window of ±1, so ∂(θ·s)/∂v = θ·max(0, 1 − |v − θ|).
"""

from __future__ import annotations

import math
import numbers
import os
from importlib.metadata import version

import torch
import torch.nn as nn
from spikingjelly.activation_based import base, functional, neuron, surrogate

from hsd.kernels.cpu_scan import ScanParams, neuron_scan
from hsd.kernels.qcfs import qcfs
from hsd.registry import Registry

__all__ = [
    "QCFS",
    "ConvertedIFNode",
    "IFNeuron",
    "LIFNeuron",
    "NEURONS",
    "SURROGATE_FORMS",
    "is_spiking_neuron",
    "make_neuron",
    "neuron_backend",
    "triangle",
]

SPIKINGJELLY_VERSION = version("spikingjelly")
SURROGATE_FORMS = ("normalized", "raw")  # of the converted IF neuron, see the module docstring


# --------------------------------------------------------------------------------------------
# QCFS (ANN side)
# --------------------------------------------------------------------------------------------


class QCFS(nn.Module):
    """Quantization-clip-floor-shift activation (Bu et al., ICLR 2022, "Optimal ANN-SNN
    conversion for high-accuracy and ultra-low-latency SNNs"):

        h(z) = λ · clip( floor(z·L/λ + φ) / L, 0, 1 ),   φ = ½,

    computed as λ·floor(clip(z/λ, 0, 1)·L + ½)/L (same forward values) in one autograd node
    (`hsd.kernels.qcfs`). Backward: straight-through through the floor, hence ∂h/∂z = 1 for
    0 < z/λ < 1 and 0 outside; ∂h/∂λ = h/λ − (z/λ)·1[0 < z/λ < 1] (= 1 above the window, 0 below).

    ``lam`` is one trainable scalar per layer (``nn.Parameter`` named ``lam``); it becomes the
    threshold θ of the IF neuron after conversion. ``L`` is the quantization step (integer ≥ 1).
    """

    def __init__(self, L: int = 16, lam: float = 8.0) -> None:
        super().__init__()
        if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 1:
            raise ValueError(f"QCFS quantization step L must be an integer >= 1, got {L!r}")
        lam_f = float(lam)
        if not math.isfinite(lam_f) or lam_f <= 0:
            raise ValueError(f"QCFS threshold lam must be a finite number > 0, got {lam!r}")
        self.L = int(L)
        self.lam = nn.Parameter(torch.tensor(lam_f))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return qcfs(z, self.lam, self.L)

    def extra_repr(self) -> str:
        return f"L={self.L}, lam={float(self.lam.detach()):.4g}"


# --------------------------------------------------------------------------------------------
# Spiking neurons (SNN side)
# --------------------------------------------------------------------------------------------


def triangle(width: float = 1.0) -> surrogate.SurrogateFunctionBase:
    """Triangle surrogate of Deng et al. 2022 / HSD Eq. 12: forward H(u − θ), backward
    (1/w)·max(0, 1 − |u − θ|/w) for half-width w (default 1: max(0, 1 − |u − θ|)).
    SpikingJelly's PiecewiseQuadratic(alpha) has exactly this derivative (−α²|x| + α for
    |x| ≤ 1/α) with α = 1/w, and is one of the surrogates its fused kernels run. w = θ is the
    triangle on the normalised membrane u/θ − 1, differentiated with respect to u."""
    return surrogate.PiecewiseQuadratic(alpha=1.0 / width)


def _check_threshold(v_threshold: object) -> float:
    if isinstance(v_threshold, torch.Tensor):
        if v_threshold.numel() != 1:
            raise ValueError("v_threshold must be a scalar")
        v_threshold = float(v_threshold.detach())
    if isinstance(v_threshold, bool) or not isinstance(v_threshold, numbers.Real):
        raise ValueError(f"v_threshold must be a real number > 0, got {v_threshold!r}")
    th = float(v_threshold)
    if not math.isfinite(th) or th <= 0:
        raise ValueError(f"v_threshold must be a finite number > 0, got {v_threshold!r}")
    return th


# HSD_CPU_SCAN=0 runs every sequence on SpikingJelly's own path (to compare the two, e.g. with
# `python -m harness.bench kernels`).
CPU_SCAN_ENV = "HSD_CPU_SCAN"


def cpu_scan_enabled() -> bool:
    return os.environ.get(CPU_SCAN_ENV, "1") != "0"


class _CPUScan:
    """Mixin for SpikingJelly's IFNode/LIFNode: an fp32 sequence on a CPU runs
    `hsd.kernels.cpu_scan` (same spikes, about half the neuron's time); anything else — a GPU,
    bf16, another surrogate, ``store_v_seq`` — runs SpikingJelly's own kernels.
    ``HSD_CPU_SCAN=0`` sends every sequence to SpikingJelly."""

    def scan_params(self, device: torch.device, dtype: torch.dtype) -> ScanParams | None:
        """The scan's description of this neuron for a sequence of `dtype` on `device`, or None
        where SpikingJelly's own kernels run instead (the one place that decides)."""
        sg = self.surrogate_function
        if (
            device.type != "cpu"
            or dtype != torch.float32
            or self.store_v_seq
            or type(sg) is not surrogate.PiecewiseQuadratic
            or not isinstance(sg.alpha, float | int)
            or not isinstance(self.v_threshold, float | int)
            or not cpu_scan_enabled()
        ):
            return None
        tau = getattr(self, "tau", None)
        if tau is not None and not isinstance(tau, float | int):
            return None
        return ScanParams(
            threshold=float(self.v_threshold),
            tau=None if tau is None else float(tau),
            decay_input=bool(getattr(self, "decay_input", False)),
            v_reset=None if self.v_reset is None else float(self.v_reset),
            detach_reset=bool(self.detach_reset),
            alpha=float(sg.alpha),
        )

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        params = None if args else self.scan_params(x_seq.device, x_seq.dtype)
        if params is None:
            return super().multi_step_forward(x_seq, *args, **kwargs)
        states = self.materialize_states((x_seq,), tuple(self._memories.values()), "m")
        spikes, v = neuron_scan(x_seq, states[0], params)
        self._memories["v"] = v
        self.v_seq = None
        return spikes


class IFNeuron(_CPUScan, neuron.IFNode):
    """SpikingJelly's IFNode, with the CPU scan for fp32 sequences on a CPU."""


class LIFNeuron(_CPUScan, neuron.LIFNode):
    """SpikingJelly's LIFNode, with the CPU scan for fp32 sequences on a CPU."""


class ConvertedIFNode(IFNeuron):
    """IF neuron of a converted SNN: reset by subtraction, threshold θ, v0 = θ/2 at every
    sequence, output θ·s (spikes of amplitude θ; see the module docstring for why).

    ``surrogate`` ("normalized" | "raw", see the module docstring) picks the triangle's window:
    ±θ (the membrane normalised by θ, HSD Eq. 12, default) or ±1 (raw membrane, QCFS code); an
    explicit ``surrogate_function`` overrides it. Subclasses SpikingJelly's IFNode (through
    `IFNeuron`) without touching its functional forward, so the fused ``if_multi_step`` path still
    runs on a GPU and the CPU scan on a CPU; only the initial state, the surrogate's width and the
    output scale change. ``reset()`` (hence ``functional.reset_net``) restores v to θ/2.
    """

    def __init__(
        self,
        v_threshold: float,
        surrogate_function: surrogate.SurrogateFunctionBase | None = None,
        detach_reset: bool = False,
        step_mode: str = "m",
        surrogate: str = "normalized",
    ) -> None:
        th = _check_threshold(v_threshold)
        if surrogate not in SURROGATE_FORMS:
            raise ValueError(
                f"converted IF surrogate {surrogate!r} unknown; valid: {', '.join(SURROGATE_FORMS)}"
            )
        super().__init__(
            v_threshold=th,
            v_reset=None,
            surrogate_function=surrogate_function or triangle(),
            detach_reset=detach_reset,
            step_mode=step_mode,
        )
        self.surrogate_form = surrogate if surrogate_function is None else "custom"
        self.set_threshold(th)

    def set_threshold(self, v_threshold: float) -> None:
        """Set θ (and the θ/2 start it implies, and the ±θ surrogate window of the normalised
        form); the next sequence starts from θ/2."""
        th = _check_threshold(v_threshold)
        self.v_threshold = th
        if self.surrogate_form == "normalized":
            self.surrogate_function = triangle(width=th)
        self.set_reset_value("v", th / 2.0)
        self.v = th / 2.0

    def materialize_states(self, inputs, states, step_mode):
        # A stale tensor state of another shape means the net was not reset between batches;
        # start that sequence from θ/2 (BaseNode would start it from 0).
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        v = states[0]
        if isinstance(v, torch.Tensor) and v.shape != x.shape:
            states = (self.v_threshold / 2.0, *states[1:])
        return super().materialize_states(inputs, states, step_mode)

    def single_step_forward(self, x: torch.Tensor, *args, **kwargs):
        return super().single_step_forward(x, *args, **kwargs) * self.v_threshold

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        return super().multi_step_forward(x_seq, *args, **kwargs) * self.v_threshold

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", v_init=v_threshold/2, output=v_threshold*spike, surrogate={self.surrogate_form}"
        )


def _make_if(
    v_threshold: float = 1.0, surrogate_function=None, detach_reset: bool = False
) -> IFNeuron:
    return IFNeuron(
        v_threshold=_check_threshold(v_threshold),
        v_reset=None,
        surrogate_function=surrogate_function or triangle(),
        detach_reset=detach_reset,
        step_mode="m",
    )


def _make_lif(
    decay: float = 0.5,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate_function=None,
    detach_reset: bool = False,
    decay_input: bool = False,
) -> LIFNeuron:
    decay = float(decay)
    if not 0.0 < decay < 1.0:
        raise ValueError(f"LIF decay must lie in (0, 1), got {decay!r}")
    return LIFNeuron(
        tau=1.0 / (1.0 - decay),  # (1 − 1/τ) = decay
        decay_input=bool(decay_input),
        v_threshold=_check_threshold(v_threshold),
        v_reset=None if v_reset is None else float(v_reset),
        surrogate_function=surrogate_function or triangle(),
        detach_reset=detach_reset,
        step_mode="m",
    )


def _make_if_converted(
    v_threshold: float = 1.0,
    surrogate_function=None,
    detach_reset: bool = False,
    surrogate: str = "normalized",
) -> ConvertedIFNode:
    return ConvertedIFNode(
        v_threshold, surrogate_function, detach_reset, step_mode="m", surrogate=surrogate
    )


def _make_if_lean(v_threshold: float = 1.0, surrogate_function=None, detach_reset: bool = False):
    """IF with reset by subtraction as one autograd node over T (hsd.kernels): 1 byte saved per
    activation under bf16 and a Triton kernel on CUDA; same spikes/gradients as "if" (tested)."""
    from hsd.kernels import LeanIFNode

    if surrogate_function is not None:
        raise ValueError("if-lean has the triangle surrogate built in; drop surrogate_function")
    return LeanIFNode(_check_threshold(v_threshold), detach_reset=detach_reset)


# Other packages add kinds through the "hsd.neurons" entry-point group (hsd.registry).
NEURONS: Registry = Registry("neuron", group="hsd.neurons")
NEURONS.register("if", _make_if)
NEURONS.register("if-lean", _make_if_lean)
NEURONS.register("lif", _make_lif)
NEURONS.register("if-converted", _make_if_converted)


def make_neuron(kind: str, **kw) -> nn.Module:
    """Build a multi-step (``step_mode='m'``) spiking neuron of a registered kind.

    ``"if"``: ``v_threshold=1.0, surrogate_function=triangle(), detach_reset=False``;
    ``"lif"``: ``decay=0.5, v_threshold=1.0, v_reset=0.0`` (None → soft reset),
    ``decay_input=False``, same rest;
    ``"if-converted"``: ``v_threshold`` (= λ), ``surrogate="normalized"`` (or "raw"), same rest. Unknown kinds raise
    ``UnknownNameError`` listing the valid ones.
    """
    factory = NEURONS[kind]
    try:
        return factory(**kw)
    except TypeError as e:
        raise ValueError(f"bad options for neuron kind {kind!r}: {e}") from None


def is_spiking_neuron(module: nn.Module) -> bool:
    """True for the SpikingJelly spiking neurons this package builds (stateful, multi-step)."""
    return isinstance(module, (neuron.IFNode, neuron.LIFNode)) or (
        isinstance(module, base.MemoryModule) and hasattr(module, "v_threshold")
    )


def _implementation(kind: str, device: torch.device) -> str:
    try:
        return str(functional.neuron_implementation(kind, device)["implementation"])
    except Exception as e:  # a missing GPU backend must not crash result bookkeeping
        return f"unavailable({type(e).__name__})"


def neuron_backend(
    module: nn.Module, device: torch.device | str | None = None, *, bf16: bool = False
) -> str:
    """Which implementation the spiking neurons in ``module`` run, for result rows: the CPU scan
    (``"hsd-cpu-scan/if,lif"``, fp32 on a CPU) or SpikingJelly's, e.g.
    ``"spikingjelly-2.0.0/if:triton"`` on CUDA; both joined by ``+`` when a net mixes them.

    ``device`` defaults to the device of the module's first parameter (CPU if none); ``bf16``
    says the run autocasts to bf16 (which the scan leaves to SpikingJelly). A module without
    spiking neurons (the QCFS ANN) gives ``"torch/qcfs"``.
    """
    if device is None:
        p = next(module.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    scanned: set[str] = set()
    kinds: set[str] = set()
    for m in module.modules():
        kind = None
        if isinstance(m, neuron.LIFNode):
            kind = "lif"
        elif isinstance(m, neuron.IFNode):
            kind = "if"
        elif is_spiking_neuron(m):
            kinds.add(type(m).__name__)
            continue
        if kind is None:
            continue
        dtype = torch.bfloat16 if bf16 else torch.float32
        on_scan = isinstance(m, _CPUScan) and m.scan_params(device, dtype) is not None
        (scanned if on_scan else kinds).add(kind)
    if not kinds and not scanned:
        return "torch/qcfs" if any(isinstance(m, QCFS) for m in module.modules()) else "torch"
    parts = []
    if scanned:
        parts.append("hsd-cpu-scan/" + ",".join(sorted(scanned)))
    if kinds:
        impls = [
            f"{k}:{_implementation(k, device) if k in ('if', 'lif') else 'torch-reference'}"
            for k in sorted(kinds)
        ]
        parts.append(f"spikingjelly-{SPIKINGJELLY_VERSION}/" + ",".join(impls))
    return "+".join(parts)
