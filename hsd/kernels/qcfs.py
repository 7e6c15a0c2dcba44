"""QCFS as one autograd node: the forward of Bu et al.'s activation, a hand-written backward.

    h = λ · floor(clip(z/λ, 0, 1)·L + ½) / L

Backward (straight-through through the floor):

    ∂L/∂z = g · m,                  m = 1[0 < z/λ < 1]
    ∂L/∂λ = Σ g · (h − z·m) / λ     (= Σ g·(h/λ − (z/λ)·m))

Autograd of the same expression builds seven nodes and runs about a dozen full-size elementwise
passes in backward (the clip's ``where``, the chain of ``·λ /L ·L /λ``, two broadcast reductions
for λ); on a CPU the QCFS ANN's training step spent half its time there. Here the forward works in
place on one buffer and keeps a 0/1 mask; backward is one multiplication and two dot products.
The forward values are bit for bit those of the composed expression (same operations, same
order); the gradients equal autograd's up to float rounding (``g·λ/L·L/λ`` is ``g`` here).
The window is open at both ends, as autograd's ``clamp`` backward is (z/λ exactly 0 or 1 passes
no gradient).
"""

from __future__ import annotations

import torch

__all__ = ["qcfs", "qcfs_reference"]


class _QCFS(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, lam: torch.Tensor, L: int) -> torch.Tensor:
        scaled = z / lam
        h = scaled.clamp(0.0, 1.0)
        # m as a 0/1 tensor of the activation's dtype (multiplying by it is the fastest masking on
        # a CPU): sign(frac(h)) is 1 exactly for 0 < h < 1, and 0 at the clip's ends 0 and 1.
        in_window = torch.frac(h).sign_()
        h.mul_(L).add_(0.5).floor_().div_(L).mul_(lam)
        ctx.save_for_backward(z, lam, h, in_window)
        return h

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        z, lam, h, in_window = ctx.saved_tensors
        grad_z = grad * in_window
        grad_lam = None
        if ctx.needs_input_grad[1]:  # sums in fp32 whatever the activation dtype (bf16 on GPU)
            gh = torch.dot(grad.reshape(-1).float(), h.reshape(-1).float())
            gz = torch.dot(grad_z.reshape(-1).float(), z.reshape(-1).float())
            grad_lam = ((gh - gz) / lam.float()).to(lam.dtype).reshape(lam.shape)
        return grad_z, grad_lam, None


def qcfs(z: torch.Tensor, lam: torch.Tensor, L: int) -> torch.Tensor:
    """The QCFS activation of `z` with threshold `lam` (a scalar tensor) and quantization step `L`."""
    return _QCFS.apply(z, lam, L)


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def qcfs_reference(z: torch.Tensor, lam: torch.Tensor, L: int) -> torch.Tensor:
    """The same activation written as the textbook expression, differentiated by autograd (with
    a straight-through floor): what `qcfs` is tested and benchmarked against."""
    return _FloorSTE.apply(torch.clamp(z / lam, 0.0, 1.0) * L + 0.5) / L * lam
