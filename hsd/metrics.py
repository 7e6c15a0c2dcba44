"""Evaluation metrics: accuracy at every time step, training accuracy, firing rates, synaptic
operations, energy.

Usage in an evaluation loop (one context over the whole test set accumulates per-sample means)::

    with SpikeStats(snn) as stats:
        for x, y in batches:
            logits = snn(x)                     # [T, N, K]
            functional.reset_net(snn)
    stats.firing_rates()                        # {layer: spikes per neuron per step}
    ops = stats.synaptic_ops()                  # ops["macs"][t-1], ops["acs"][t-1]: per sample, steps 1..t
    # SpikeStats(snn, per_sample=True) also keeps each sample's own counts:
    stats.per_sample_ops()                      # {"macs": [N, T], "acs": [N, T]}, cumulative over t
    energy_joules(ops["macs"], ops["acs"])      # [T] joules per sample

Operation counting (per sample, per time step, then cumulated over t):

- MAC (multiply-accumulate) for the first weighted layer, which sees analog frames: the dense
  count out_elements × (C_in/groups · k_h · k_w) for a conv, in × out for a linear layer. In a
  QCFS ANN every weighted layer is counted as MACs this way.
- AC (accumulate) for every later conv/linear layer of an SNN: each non-zero input event
  triggers one accumulate per synapse it reaches, so ACs = Σ over non-zero inputs of their
  fan-out (exact at borders: what a conv of the event map with an all-ones kernel sums, the way
  SpikingJelly's ``SynOpCounter`` counts spike-driven convolutions; computed as the events at each
  position, summed over channels, times that position's fan-out). θ-amplitude spikes of
  converted neurons count as events too (θ folds into the weights on hardware).
- Average-pooled spikes (``OPS_CONVENTIONS``, recorded in every result row as
  ``ops_convention``): a pooled cell holding k spikes feeds the next layer k events, which is
  what an event-driven chip does when the pool's 1/k_h·k_w folds into the next layer's weights.
  ``"per-spike"`` (default) counts k ACs per synapse the cell reaches; ``"per-input"`` counts one
  AC per non-zero pooled value, a lower bound (a cell holding 4 spikes costs 1 instead of 4).
  Without pooling both conventions give the same count.
- Modules that define ``macs_per_step(x) -> float`` (MACs per sample per time step for their
  ``[T, N, ...]`` input; e.g. TCJA's attention, whose Conv1d layers and mask multiplies see analog
  values) are counted as MACs with that value; their submodules are not counted again.
- BatchNorm (folded into the conv at inference), pooling, neuron updates and the final vote
  are not counted.

Why not ``spikingjelly.activation_based.op_counter`` directly: its ``SynOpCounter`` only counts
inputs that are exactly binary, so it would miss every layer fed by θ-amplitude or pooled spikes;
it reports totals over the merged T·N batch, not per time step; and it does not separate the
analog first layer. ``tests/test_metrics.py`` checks this counter against ``SynOpCounter`` on
binary spikes, where both apply.

Energy (45 nm CMOS, 32-bit float; Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014): E_MAC = 4.6 pJ (3.7 pJ multiply + 0.9 pJ add), E_AC = 0.9 pJ.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hsd.models import count_parameters
from hsd.neurons import is_spiking_neuron

__all__ = [
    "E_AC_45NM",
    "E_MAC_45NM",
    "OPS_CONVENTIONS",
    "SpikeStats",
    "TrainAccuracy",
    "accuracy_per_t",
    "count_parameters",
    "energy_joules",
]

E_MAC_45NM = 4.6e-12  # J per 32-bit float multiply-accumulate (Horowitz 2014)
E_AC_45NM = 0.9e-12  # J per 32-bit float accumulate (Horowitz 2014)
OPS_CONVENTIONS = ("per-spike", "per-input")  # how ACs of average-pooled spikes are counted


def accuracy_per_t(logits: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Top-1 accuracy at every t = 1..T using the cumulative mean of logits up to t:
    pred_t = argmax (1/t)·Σ_{s≤t} o_s. ``logits`` [T, N, K], ``target`` [N] → array [T] in [0, 1]."""
    if logits.dim() != 3:
        raise ValueError(f"accuracy_per_t: logits must be [T, N, K], got {tuple(logits.shape)}")
    if target.shape != (logits.shape[1],):
        raise ValueError(
            f"accuracy_per_t: target must be [N={logits.shape[1]}], got {tuple(target.shape)}"
        )
    with torch.no_grad():
        cum = logits.detach().float().cumsum(0)  # argmax of the sum = argmax of the mean
        correct = cum.argmax(-1) == target.to(logits.device).view(1, -1)
        return correct.float().mean(1).cpu().numpy().astype(np.float64)


class TrainAccuracy:
    """Top-1 accuracy of the training batches as the loss saw them (train mode, weights moving
    during the epoch): a forward hook on the module that produces the logits collects its
    outputs of one batch, whatever calls it (a loss function, SLTT's per-step loop, a wrapper
    that calls its inner SNN), and `end_batch` scores the mean of the logits over all steps.

    Outputs may be ``[T, N, K]`` (an SNN), ``[1, N, K]`` once per step (single-step training)
    or ``[T·N, K]`` (a 2-D ANN over frames, folded time-major by ``hsd.engine.forward_frames``):
    all become ``[steps, N, K]``. A batch with no forward (e.g. one SLTT skips) is not counted.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.outputs: list[torch.Tensor] = []
        self.correct = 0
        self.seen = 0
        self._handle = None

    def __enter__(self) -> TrainAccuracy:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def _hook(self, module, args, out) -> None:
        if isinstance(out, torch.Tensor) and out.dim() >= 2:
            self.outputs.append(out.detach())

    def end_batch(self, target: torch.Tensor) -> None:
        outputs, self.outputs = self.outputs, []
        n = len(target)
        if not outputs or n == 0:
            return
        k = outputs[0].shape[-1]
        flat = torch.cat([o.reshape(-1, k).float() for o in outputs])
        if flat.shape[0] % n:
            return  # outputs that are not logits of this batch: nothing to score
        pred = flat.view(-1, n, k).sum(0).argmax(-1)
        self.correct += int((pred.cpu() == target.cpu()).sum())
        self.seen += n

    @property
    def value(self) -> float:
        return self.correct / self.seen if self.seen else math.nan


def energy_joules(macs, acs, e_mac: float = E_MAC_45NM, e_ac: float = E_AC_45NM):
    """Energy estimate E = MACs·E_MAC + ACs·E_AC (scalars or arrays, e.g. the per-t arrays of
    ``SpikeStats.synaptic_ops()``); defaults are the 45 nm constants above."""
    return np.asarray(macs, dtype=np.float64) * e_mac + np.asarray(acs, dtype=np.float64) * e_ac


def _dense_macs(module: nn.Module, out: torch.Tensor, n_rows: int) -> float:
    """Dense MACs per row of the (merged) batch."""
    if isinstance(module, nn.Conv2d):
        per_out = (
            module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        )
        return out.numel() / n_rows * per_out
    return out.numel() / n_rows * module.in_features


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    """1.0 where x ≠ 0, else 0.0, as float32 whatever x's dtype (counts stay exact), written
    straight into a float tensor: on a CPU converting the boolean ``x != 0`` costs 10x more."""
    return torch.ne(x, 0, out=torch.empty(x.shape, dtype=torch.float32, device=x.device))


def _coverage(module: nn.Conv2d, height: int, width: int, device: torch.device) -> torch.Tensor:
    """[H, W] float64: how many output positions of `module` each input position reaches (its
    fan-out per output channel, fewer at the borders): the gradient of the sum of an all-ones
    convolution with respect to its input."""
    z = torch.zeros(1, 1, height, width, device=device, requires_grad=True)
    ones = torch.ones(1, 1, *module.kernel_size, device=device)
    with torch.enable_grad():
        out = F.conv2d(z, ones, None, module.stride, module.padding, module.dilation)
        (cover,) = torch.autograd.grad(out.sum(), z)
    return cover[0, 0].double()


def _event_acs(
    module: nn.Module,
    x: torch.Tensor,
    events: torch.Tensor | None = None,
    coverage: torch.Tensor | None = None,
):
    """ACs per row: Σ over inputs of (events at that input) × fan-out, events = 1 per non-zero
    input unless an event map of x's shape is given (spikes per pooled cell). Returns [rows]
    (float64). A conv's fan-out is the same for every channel of a position: `coverage`
    (`_coverage`) × output channels per group, so the events are summed over channels first."""
    ev = _nonzero(x) if events is None else events.reshape(x.shape).float()
    if isinstance(module, nn.Linear):
        return ev.flatten(1).sum(1).double() * module.out_features
    if coverage is None:
        coverage = _coverage(module, x.shape[-2], x.shape[-1], x.device)
    per_position = ev.sum(1).double()  # [rows, H, W]: events at each position, all channels
    return (per_position * coverage).flatten(1).sum(1) * (module.out_channels // module.groups)


class SpikeStats:
    """Hooks that count spikes and synaptic operations while a model runs (a context manager;
    the hooks are removed on exit, the counts stay readable).

    Works for the SNNs of ``hsd.models`` (input [T, N, ...]; stateless layers on the merged
    [T·N, ...] batch) and for the QCFS ANN (input [B, ...], reported as T = 1, B samples).
    Accumulates over every forward inside the context, so per-sample numbers are means over
    all samples seen. All batches must have the same T. With ``per_sample=True`` the counts of
    each sample are kept as well (`per_sample_ops`), in the order the samples were seen.
    ``count_ops=False`` counts spikes only (`firing_rates`), without the operation hooks.
    """

    def __init__(
        self,
        model: nn.Module,
        ops: str = "per-spike",
        *,
        per_sample: bool = False,
        count_ops: bool = True,
    ) -> None:
        if ops not in OPS_CONVENTIONS:
            raise ValueError(
                f"SpikeStats: operation-count convention {ops!r} unknown; valid: "
                f"{', '.join(OPS_CONVENTIONS)}"
            )
        self.model = model
        self.convention = ops
        self.per_sample = per_sample
        self.count_ops = count_ops  # False: spikes only (a cheaper pass, e.g. every epoch)
        self._handles: list = []
        # modules that count their own MACs (macs_per_step); nothing inside them is counted again
        self.custom = [
            (n, m) for n, m in model.named_modules() if callable(getattr(m, "macs_per_step", None))
        ]
        inside = {id(sub) for _, m in self.custom for sub in m.modules() if sub is not m}
        self.weighted = [
            (n, m)
            for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in inside
        ]
        self.pools = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.AvgPool2d)]
        self.neurons = [(n, m) for n, m in model.named_modules() if is_spiking_neuron(m)]
        self.spiking = bool(self.neurons)
        # the first weighted layer sees analog frames (MACs); in an SNN the rest see events
        first = self.weighted[0][0] if self.weighted else None
        self.kinds = {
            n: ("mac" if (n == first or not self.spiking) else "ac") for n, _ in self.weighted
        }
        self.kinds.update({n: "mac" for n, _ in self.custom})
        self.reset()

    # -- bookkeeping -------------------------------------------------------------------------
    def reset(self) -> None:
        self.T: int | None = None
        self.samples = 0
        self._cur: tuple[int, int] | None = None
        self._ops: dict[str, np.ndarray] = {}
        self._spikes: dict[str, np.ndarray] = {}
        self._neurons_per_sample: dict[str, int] = {}
        # per forward: {"mac": [T, N], "ac": [T, N]} operations of each sample at each step
        self._sample_ops: list[dict[str, np.ndarray]] = []
        self._pooled: dict[int, tuple[weakref.ref, torch.Tensor]] = {}
        self._coverage: dict[tuple[str, int, int], torch.Tensor] = {}

    def __enter__(self) -> SpikeStats:
        self._handles.append(self.model.register_forward_pre_hook(self._on_input))
        for name, m in self.neurons:
            self._handles.append(m.register_forward_hook(self._spike_hook(name)))
        if not self.count_ops:
            return self
        for name, m in self.weighted:
            self._handles.append(m.register_forward_hook(self._ops_hook(name, self.kinds[name])))
        for name, m in self.custom:
            self._handles.append(m.register_forward_hook(self._custom_hook(name)))
        if self.spiking and self.convention == "per-spike":
            for _, m in self.pools:
                self._handles.append(m.register_forward_hook(self._pool_hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _on_input(self, module, args) -> None:
        x = args[0]
        T, N = (x.shape[0], x.shape[1]) if self.spiking else (1, x.shape[0])
        if self.T is not None and T != self.T:
            raise ValueError(
                f"SpikeStats: all batches in one context need the same T ({self.T}), got {T}; "
                "use one SpikeStats per T"
            )
        self.T, self._cur = T, (T, N)
        self.samples += N
        if self.per_sample:
            self._sample_ops.append({"mac": np.zeros((T, N)), "ac": np.zeros((T, N))})
        self._pooled.clear()

    def _rows_to_steps(self, values: torch.Tensor) -> np.ndarray:
        """[T·N] per-row values → [T] summed over the N samples."""
        if self._cur is None:
            raise RuntimeError("SpikeStats hooks fired without a forward of the wrapped model")
        T, N = self._cur
        return values.reshape(T, N).sum(1).cpu().numpy()

    def _add(self, store: dict, name: str, per_step: np.ndarray) -> None:
        store[name] = store[name] + per_step if name in store else per_step.astype(np.float64)

    def _events_of(self, x: torch.Tensor) -> torch.Tensor | None:
        """Spikes per element of `x` if `x` is (a view of) an average pool's output, else None.
        Keyed by the pooled tensor itself (a weak reference), so a reshaped view still matches
        and a new tensor at a recycled address never does."""
        root = x if x._base is None else x._base
        hit = self._pooled.get(id(root))
        if hit is None or hit[0]() is not root or hit[1].numel() != x.numel():
            return None
        return hit[1]

    def _pool_hook(self, module, args, out):
        # Spikes per pooled cell: the sum (not mean) of the spikes of its window.
        x = args[0].detach()
        with torch.no_grad():
            events = self._events_of(x)
            events = _nonzero(x) if events is None else events.reshape(x.shape).float()
            counts = F.avg_pool2d(
                events,
                module.kernel_size,
                module.stride,
                module.padding,
                module.ceil_mode,
                True,  # count_include_pad: irrelevant with divisor_override
                divisor_override=1,
            )
        self._pooled[id(out)] = (weakref.ref(out), counts)

    def _ops_hook(self, name: str, kind: str):
        def hook(module, args, out):
            x = args[0]
            with torch.no_grad():
                if kind == "mac":
                    rows = x.shape[0]
                    per_row = torch.full(
                        (rows,), _dense_macs(module, out, rows), dtype=torch.float64
                    )
                else:
                    key = (name, x.shape[-2], x.shape[-1])
                    if key not in self._coverage and isinstance(module, nn.Conv2d):
                        self._coverage[key] = _coverage(module, *key[1:], x.device)
                    events = self._events_of(x)  # before detach(): matched by the pooled tensor
                    per_row = _event_acs(module, x.detach(), events, self._coverage.get(key))
            self._count(name, kind, per_row)

        return hook

    def _custom_hook(self, name: str):
        def hook(module, args, out):
            x = args[0]
            rows = x.shape[0] * x.shape[1]  # [T, N, ...]
            per_row = torch.full((rows,), float(module.macs_per_step(x)), dtype=torch.float64)
            self._count(name, "mac", per_row)

        return hook

    def _count(self, name: str, kind: str, per_row: torch.Tensor) -> None:
        """Add one layer's per-row counts ([T·N]) to its totals (and to each sample's)."""
        self._add(self._ops, name, self._rows_to_steps(per_row))
        if self.per_sample:
            T, N = self._cur
            self._sample_ops[-1][kind] += per_row.reshape(T, N).cpu().numpy()

    def _spike_hook(self, name: str):
        def hook(module, args, out):
            with torch.no_grad():
                s = out.detach()
                self._neurons_per_sample[name] = s[0, 0].numel()
                per_step = _nonzero(s).flatten(2).sum(2).double().sum(1).cpu().numpy()
            self._add(self._spikes, name, per_step)

        return hook

    # -- results -----------------------------------------------------------------------------
    def firing_rates(self, per_t: bool = False) -> dict[str, float] | dict[str, np.ndarray]:
        """Per spiking layer: mean spikes per neuron per time step (over all samples seen);
        ``per_t=True`` gives the rate at each step t as an array [T]."""
        out = {}
        for name, spikes in self._spikes.items():
            denom = self.samples * self._neurons_per_sample[name]
            rate_t = spikes / denom
            out[name] = rate_t if per_t else float(rate_t.mean())
        return out

    def mean_firing_rate(self) -> float:
        """Spikes per neuron per step over all spiking layers together."""
        total = sum(float(s.sum()) for s in self._spikes.values())
        steps = sum(self.samples * self._neurons_per_sample[n] * self.T for n in self._spikes)
        return total / steps if steps else 0.0

    def synaptic_ops(self) -> dict:
        """Per-sample operation counts, cumulative over time steps:

        ``{"macs": [T], "acs": [T], "T": T, "samples": n, "per_layer": {name: {"kind": "mac" |
        "ac", "per_step": [T]}}}`` where ``macs[t-1]``/``acs[t-1]`` are the operations one sample
        needs to run steps 1..t (so the harness can report ops at every t ≤ T) and
        ``per_step`` is the (non-cumulative) count of a layer at each step; ``"convention"``:
        how pooled spikes were counted (``OPS_CONVENTIONS``)."""
        if not self.samples:
            raise RuntimeError("SpikeStats saw no forward pass; run the model inside `with`")
        T = self.T
        macs, acs = np.zeros(T), np.zeros(T)
        per_layer = {}
        for name, ops in self._ops.items():
            per_step = ops / self.samples
            kind = self.kinds[name]
            per_layer[name] = {"kind": kind, "per_step": per_step}
            if kind == "mac":
                macs += per_step
            else:
                acs += per_step
        return {
            "macs": np.cumsum(macs),
            "acs": np.cumsum(acs),
            "T": T,
            "samples": self.samples,
            "per_layer": per_layer,
            "convention": self.convention,
        }

    def per_sample_ops(self) -> dict[str, np.ndarray]:
        """Each sample's own operation counts, cumulative over time steps: ``{"macs": [N, T],
        "acs": [N, T]}`` in the order the samples were seen, where ``macs[i, t-1]`` is what sample
        i needs to run steps 1..t (what an early exit at t costs). Their mean over samples is
        `synaptic_ops`. Needs ``SpikeStats(model, per_sample=True)``."""
        if not self.per_sample:
            raise RuntimeError("per_sample_ops needs SpikeStats(model, per_sample=True)")
        if not self.samples:
            raise RuntimeError("SpikeStats saw no forward pass; run the model inside `with`")
        out = {}
        for kind, key in (("mac", "macs"), ("ac", "acs")):
            per_step = np.concatenate([b[kind] for b in self._sample_ops], axis=1)  # [T, N]
            out[key] = np.cumsum(per_step, axis=0).T.copy()
        return out
