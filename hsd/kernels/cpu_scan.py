"""SpikingJelly's multi-step IF and LIF neurons on a CPU, as one autograd node over the sequence.

Dynamics, for t = 1..T, with k = 1 − 1/τ:

    charge  h_t = v_{t-1} + x_t                          (IF)
            h_t = k·v_{t-1} + x_t  (+ r/τ)               (LIF, decay_input=False)
            h_t = v_{t-1} + (x_t − (v_{t-1} − r))/τ      (LIF, decay_input=True)
    fire    s_t = H(h_t − θ)                             (H(0) = 1)
    reset   v_t = h_t − θ·s_t                            (soft: r = None)
            v_t = s_t·r + (1 − s_t)·h_t                  (hard, to r)

(r in the charge is 0 under a soft reset.) SpikingJelly writes the first LIF charge as
v − (v − r)/τ + x; for τ = 2 (every LIF this package builds) both forms give the same floats, so
spikes and membrane potentials equal SpikingJelly's CPU path bit for bit; for other τ they may
differ by one rounding. Backward uses the triangle surrogate of ``PiecewiseQuadratic(α)``:
g_t = max(0, α − α²·|h_t − θ|), and

    ∂L/∂h_t = ∂L/∂s_t·g_t + ∂L/∂v_t·ρ_t,   ρ_t = ∂v_t/∂h_t (1 − θ·g_t soft, 1 − s_t + (r − h_t)·g_t
    hard; the g terms dropped with ``detach_reset``); ∂L/∂v_{t−1} = k·∂L/∂h_t (1 for IF);
    ∂L/∂x_t = ∂L/∂h_t (LIF with decay_input: ∂L/∂h_t / τ).

Why a separate path. On a CPU, SpikingJelly runs each step as a dozen small tensor operations
(a boolean spike converted to float is the slowest of them) and stacks three sequences (spikes, v,
h) at the end, and its backward recomputes the surrogate step by step. Here a step is three
operations writing into preallocated sequences (h only when a gradient is needed), and the
backward computes g_t and ρ_t for all steps at once, leaving one fused operation per step in the
loop over t. Gradients equal SpikingJelly's up to float rounding (tested). Only fp32 tensors on a
CPU take this path; everything else stays with SpikingJelly (its fused CUDA kernels on a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ScanParams", "neuron_scan"]


@dataclass(frozen=True)
class ScanParams:
    threshold: float
    tau: float | None = None  # None: IF (no leak)
    decay_input: bool = False
    v_reset: float | None = None  # None: soft reset (by subtraction)
    detach_reset: bool = False
    alpha: float = 1.0  # PiecewiseQuadratic(α)


def _charge(x_t: torch.Tensor, v: torch.Tensor, p: ScanParams, out: torch.Tensor | None):
    """h_t, written into `out` when given."""
    o = {} if out is None else {"out": out}
    if p.tau is None:
        return torch.add(v, x_t, **o)
    r = 0.0 if p.v_reset is None else p.v_reset
    if p.decay_input:
        return torch.add(v, x_t - v if r == 0.0 else x_t - (v - r), alpha=1.0 / p.tau, **o)
    h = torch.add(x_t, v, alpha=1.0 - 1.0 / p.tau, **o)
    return h if r == 0.0 else h.add_(r / p.tau)


def _reset(h: torch.Tensor, s: torch.Tensor, p: ScanParams) -> torch.Tensor:
    if p.v_reset is None:
        return torch.sub(h, s, alpha=p.threshold)  # h − θ·s (θ·s is exact: s is 0 or 1)
    v = torch.addcmul(h, h, s, value=-1.0)  # (1 − s)·h: h, or exactly 0 where it fired
    return v if p.v_reset == 0.0 else v.add_(s, alpha=p.v_reset)


def _forward(x: torch.Tensor, v0: torch.Tensor, p: ScanParams, keep_h: bool):
    spikes = torch.empty_like(x)
    h_seq = torch.empty_like(x) if keep_h else None
    v = v0
    for t in range(x.shape[0]):
        h = _charge(x[t], v, p, None if h_seq is None else h_seq[t])
        s = torch.ge(h, p.threshold, out=spikes[t])  # straight into float: no boolean tensor
        v = _reset(h, s, p)
    return spikes, v, h_seq


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, v0: torch.Tensor, p: ScanParams):
        spikes, v, h_seq = _forward(x, v0, p, keep_h=True)
        ctx.save_for_backward(h_seq)
        ctx.p = p
        return spikes, v

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor | None, grad_v: torch.Tensor | None):
        (h_seq,) = ctx.saved_tensors
        p: ScanParams = ctx.p
        a, theta = p.alpha, p.threshold
        # surrogate g_t = max(0, α − α²·|h_t − θ|), every step at once (rsub: α − α²·d in one pass)
        g = torch.rsub((h_seq - theta).abs_(), a, alpha=a * a).clamp_min_(0.0)
        if p.v_reset is None:  # ρ_t = 1 − θ·g_t
            rho = None if p.detach_reset else torch.mul(g, -theta).add_(1.0)
        else:  # ρ_t = 1 − s_t (+ (r − h_t)·g_t)
            rho = torch.lt(h_seq, theta, out=torch.empty_like(h_seq))
            if not p.detach_reset and p.v_reset == 0.0:
                rho.addcmul_(g, h_seq, value=-1.0)
            elif not p.detach_reset:
                rho.addcmul_(g, p.v_reset - h_seq)
        keep = 1.0 if p.tau is None else 1.0 - 1.0 / p.tau  # ∂h_t/∂v_{t−1}
        grad_h = g.mul_(grad_spikes) if grad_spikes is not None else g.zero_()
        last = h_seq.shape[0] - 1
        if grad_v is not None:
            grad_h[last].add_(grad_v if rho is None else grad_v * rho[last])
        for t in range(last, 0, -1):  # ∂L/∂h_{t−1} += k·∂L/∂h_t·ρ_{t−1}
            if rho is None:
                grad_h[t - 1].add_(grad_h[t], alpha=keep)
            else:
                grad_h[t - 1].addcmul_(grad_h[t], rho[t - 1], value=keep)
        grad_v0 = grad_h[0] * keep if ctx.needs_input_grad[1] else None
        grad_x = grad_h / p.tau if (p.tau is not None and p.decay_input) else grad_h
        return grad_x, grad_v0, None


def neuron_scan(
    x: torch.Tensor, v0: float | torch.Tensor, p: ScanParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes ``[T, N, ...]`` and the last membrane potential of the neuron `p` over ``x``
    (fp32, CPU), starting from `v0` (a number or a tensor broadcastable to ``x[0]``)."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() < 2:
        raise ValueError(
            f"neuron_scan runs fp32 CPU tensors [T, N, ...]; got {x.dtype} on {x.device} with "
            f"shape {tuple(x.shape)}"
        )
    v0 = torch.as_tensor(v0, dtype=x.dtype).expand_as(x[0])  # autograd sums a broadcast v0's grad
    if torch.is_grad_enabled() and (x.requires_grad or v0.requires_grad):
        return _Scan.apply(x, v0, p)
    spikes, v, _ = _forward(x, v0, p, keep_h=False)
    return spikes, v
