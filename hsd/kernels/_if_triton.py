"""Fused Triton kernels for ``if_scan``'s ``save="code"`` path (see if_scan.py for the equations).

One program owns BLOCK neurons and walks the T steps in registers: forward reads x_t once and
writes the spike (input dtype) and the int8 code; backward walks t = T..1 reading the code and
the output gradient and writing the input gradient, carrying ∂L/∂v in fp32. The time dimension
must be outermost and each step a dense block of M = numel / T elements; any dense layout of a
step (contiguous or channels_last) works because the kernels only index elementwise.

Importing this module fails without triton; ``if_scan`` then uses the torch loop. Testable on
CPU with ``TRITON_INTERPRET=1`` set before import (tests/test_if_scan.py does so in a subprocess).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 1024


@triton.jit
def _fwd_kernel(
    x_ptr, out_ptr, code_ptr, theta_ptr, v0_ptr, alpha, M, T,
    HAS_V0: tl.constexpr, AMP_IS_THETA: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    theta = tl.load(theta_ptr)
    if HAS_V0:
        v = tl.zeros((BLOCK,), dtype=tl.float32) + tl.load(v0_ptr)
    else:
        v = tl.zeros((BLOCK,), dtype=tl.float32)
    for t in range(T):
        idx = t * M + offs
        h = v + tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        spike = h >= theta
        sf = spike.to(tl.float32)
        if AMP_IS_THETA:
            o = sf * theta
        else:
            o = sf
        tl.store(out_ptr + idx, o.to(out_ptr.dtype.element_ty), mask=mask)
        d = tl.minimum(tl.abs((h - theta) * alpha), 1.0)
        q = tl.floor(d * 126.0 + 0.5) + 1.0
        q = tl.where(spike, q, -q)
        tl.store(code_ptr + idx, q.to(tl.int8), mask=mask)
        v = h - sf * theta


@triton.jit
def _bwd_kernel(
    gout_ptr, code_ptr, gx_ptr, gv0_ptr, theta_ptr, alpha, M, T,
    AMP_IS_THETA: tl.constexpr, DETACH_RESET: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    theta = tl.load(theta_ptr)
    gv = tl.zeros((BLOCK,), dtype=tl.float32)
    for i in range(T):
        idx = (T - 1 - i) * M + offs
        q = tl.load(code_ptr + idx, mask=mask, other=0).to(tl.float32)
        g = tl.maximum(1.0 - (tl.abs(q) - 1.0) / 126.0, 0.0) * alpha
        go = tl.load(gout_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        if AMP_IS_THETA:
            go = go * theta
        if DETACH_RESET:
            u = go
        else:
            u = go - theta * gv
        gv = u * g + gv
        tl.store(gx_ptr + idx, gv.to(gx_ptr.dtype.element_ty), mask=mask)
    tl.store(gv0_ptr + offs, gv, mask=mask)


def _dense_time_major(x: torch.Tensor) -> torch.Tensor:
    """x itself when each step is a dense block laid out back to back, else a contiguous copy."""
    step = x[0]
    dense = step.is_contiguous() or (
        step.dim() == 4 and step.is_contiguous(memory_format=torch.channels_last)
    )
    return x if dense and x.stride(0) == step.numel() else x.contiguous()


def forward(x, theta32, v0, alpha: float, amp_is_theta: bool):
    x = _dense_time_major(x)
    T, M = x.shape[0], x[0].numel()
    out = torch.empty_like(x)  # preserve_format keeps a dense layout's strides
    code = torch.empty_like(x, dtype=torch.int8)
    v0_t = theta32 if v0 is None else v0.detach().float().reshape(())
    grid = (triton.cdiv(M, _BLOCK),)
    _fwd_kernel[grid](
        x, out, code, theta32.reshape(()), v0_t, float(alpha), M, T,
        HAS_V0=v0 is not None, AMP_IS_THETA=amp_is_theta, BLOCK=_BLOCK,
    )  # fmt: skip
    return out, code


def backward(grad_out, code, theta32, alpha: float, amp_is_theta: bool, detach_reset: bool):
    if grad_out.stride() != code.stride():
        grad_out = torch.empty_like(code, dtype=grad_out.dtype).copy_(grad_out)
    T, M = code.shape[0], code[0].numel()
    grad_x = torch.empty_like(code, dtype=grad_out.dtype)
    gv = torch.empty_like(code[0], dtype=torch.float32)
    grid = (triton.cdiv(M, _BLOCK),)
    _bwd_kernel[grid](
        grad_out, code, grad_x, gv, theta32.reshape(()), float(alpha), M, T,
        AMP_IS_THETA=amp_is_theta, DETACH_RESET=detach_reset, BLOCK=_BLOCK,
    )  # fmt: skip
    return grad_x, gv
