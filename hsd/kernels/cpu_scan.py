"""SpikingJelly's multi-step IF and LIF neurons on a CPU, as one autograd node over the sequence.

Dynamics, for t = 1..T, written with SpikingJelly's own expressions (so fp32 spikes and membrane
potentials are equal to its CPU path bit for bit):

    charge  h_t = v_{t-1} + x_t                          (IF)
            h_t = v_{t-1} − (v_{t-1} − r)/τ + x_t        (LIF, decay_input=False)
            h_t = v_{t-1} + (x_t − (v_{t-1} − r))/τ      (LIF, decay_input=True)
    fire    s_t = H(h_t − θ)                             (H(0) = 1)
    reset   v_t = h_t − θ·s_t                            (soft: r = None)
            v_t = s_t·r + (1 − s_t)·h_t                  (hard, to r)

(r in the charge is 0 under a soft reset.) Backward uses the triangle surrogate of
``PiecewiseQuadratic(α)``: g_t = max(0, α − α²·|h_t − θ|), and

    ∂L/∂h_t = ∂L/∂s_t·g_t + ∂L/∂v_t·ρ_t,   ρ_t = ∂v_t/∂h_t (1 − θ·g_t soft, 1 − s_t + (r − h_t)·g_t
    hard; the g terms dropped with ``detach_reset``); ∂L/∂v_{t−1} = ∂L/∂h_t·(1 − 1/τ) (1 for IF);
    ∂L/∂x_t = ∂L/∂h_t (LIF with decay_input: ∂L/∂h_t / τ).

Why a separate path. On a CPU, SpikingJelly runs each step as a dozen small tensor operations
and stacks three sequences (spikes, v, h) at the end, and its backward recomputes the surrogate
step by step. Here the forward writes spikes (and, only when a gradient is needed, h) into
preallocated sequences, and the backward computes g_t and ρ_t for all steps at once, leaving only
the two-operation recurrence in the loop over t. Gradients equal SpikingJelly's up to float
rounding (tested). Only fp32 tensors on a CPU take this path; everything else stays with
SpikingJelly (its fused CUDA kernels on a GPU).
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


def _step(x_t: torch.Tensor, v: torch.Tensor, p: ScanParams, h_out: torch.Tensor | None):
    """One charge step, written into `h_out` when given."""
    out = {} if h_out is None else {"out": h_out}
    if p.tau is None:
        return torch.add(v, x_t, **out)
    r = 0.0 if p.v_reset is None else p.v_reset
    leak = v if r == 0.0 else v - r  # v − 0 is v exactly: one operation fewer per step
    if p.decay_input:
        return torch.add(v, (x_t - leak) / p.tau, **out)
    return torch.add(v - leak / p.tau, x_t, **out)


def _reset(h: torch.Tensor, s: torch.Tensor, p: ScanParams) -> torch.Tensor:
    if p.v_reset is None:
        return h - s * p.threshold
    if p.v_reset == 0.0:  # s·0 + (1 − s)·h, without adding the exact zero
        return (1.0 - s) * h
    return s * p.v_reset + (1.0 - s) * h


def _forward(x: torch.Tensor, v0: torch.Tensor, p: ScanParams, keep_h: bool):
    spikes = torch.empty_like(x)
    h_seq = torch.empty_like(x) if keep_h else None
    v = v0
    for t in range(x.shape[0]):
        h = _step(x[t], v, p, None if h_seq is None else h_seq[t])
        s = spikes[t]
        s.copy_(h >= p.threshold)
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
        a = p.alpha
        # surrogate g_t = max(0, α − α²·|h_t − θ|), every step at once (rsub: α − α²·d in one pass)
        g = torch.rsub((h_seq - p.threshold).abs_(), a, alpha=a * a).clamp_min_(0.0)
        if p.v_reset is None:
            rho = None if p.detach_reset else (g * -p.threshold).add_(1.0)
        else:
            rho = (h_seq < p.threshold).to(h_seq.dtype)  # 1 − s_t
            if not p.detach_reset and p.v_reset == 0.0:
                rho.addcmul_(g, h_seq, value=-1.0)
            elif not p.detach_reset:
                rho.addcmul_(g, p.v_reset - h_seq)
        gs = torch.zeros_like(h_seq) if grad_spikes is None else grad_spikes * g
        carry = torch.zeros_like(h_seq[0]) if grad_v is None else grad_v.expand_as(h_seq[0])
        grad_h = gs  # overwritten in place, step by step from the last
        keep = 1.0 if p.tau is None else 1.0 - 1.0 / p.tau
        for t in range(h_seq.shape[0] - 1, -1, -1):
            if rho is None:
                grad_h[t].add_(carry)
            else:
                grad_h[t].addcmul_(carry, rho[t])
            carry = grad_h[t] * keep if p.tau is not None else grad_h[t]
        grad_x = grad_h / p.tau if (p.tau is not None and p.decay_input) else grad_h
        return grad_x, (carry if ctx.needs_input_grad[1] else None), None


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
