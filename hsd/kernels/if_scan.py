"""A memory-lean multi-step IF neuron: one autograd node over the whole sequence ``[T, N, ...]``.

Dynamics (HSD Eq. 1–3; reset by subtraction, Rueckauer et al. 2017), for t = 1..T:

    h_t = v_{t-1} + x_t            (charge; v_0 = v0, 0 for a trained net, θ/2 after conversion)
    s_t = H(h_t − θ)               (fire; H(0) = 1 as in SpikingJelly's heaviside)
    v_t = h_t − θ·s_t              (reset by subtraction)
    out_t = a·s_t                  (a = 1, or a = θ for a converted net, see hsd.neurons)

Backward uses the triangle surrogate (HSD Eq. 12, γ = 1 ⇔ SpikingJelly
``PiecewiseQuadratic(alpha)``): ∂s/∂h ≈ g(h) = α·max(0, 1 − α·|h − θ|). With u_t = a·∂L/∂out_t
− θ·∂L/∂v_t (the second term dropped when ``detach_reset``), back-propagation through time is

    ∂L/∂h_t = u_t·g_t + ∂L/∂v_t,   ∂L/∂x_t = ∂L/∂h_t,   ∂L/∂v_{t-1} = ∂L/∂h_t,

and, only when θ requires grad, ∂L/∂θ = Σ_t [−u_t·g_t − s_t·∂L/∂v_t (+ s_t·∂L/∂out_t if a = θ)].

Why it is lean. SpikingJelly's torch implementation keeps h_t − θ for every step in the input
dtype (2 bytes per activation in bf16, 4 in fp32) plus the autograd graph of T small steps. Here
one node keeps exactly what backward needs, chosen by ``save``:

- ``"h"``: h_t in the input dtype (fp32 inputs: the gradient equals SpikingJelly's bit for bit);
- ``"code"``: one int8 per activation (1 byte) encoding the spike and the clipped distance to
  threshold d = clip(α(h − θ), −1, 1): q = ±(1 + round(126·|d|)), sign = spike. The surrogate
  outside |d| < 1 is 0, so nothing is lost there; inside, the step 1/126 is as fine as bf16's
  spacing of h near θ = 1 (2⁻⁷) and finer for larger θ (converted thresholds).
- ``"auto"`` (default): ``"code"`` for bf16/fp16 inputs, ``"h"`` for fp32.

The membrane potential is accumulated in fp32 whatever the input dtype, so spikes of a bf16 input
equal SpikingJelly's fp32 spikes of the same (bf16-valued) input exactly. Outputs and input
gradients come back in the input dtype (bf16 under autocast).

On CUDA, when Triton imports, the ``"code"`` path runs two fused kernels (one forward pass reading
x once and writing spikes + codes; one backward pass reading codes + output grads and writing input
grads: ≈ 2+2+1 bytes forward and 1+2+2 backward per activation in bf16). Everything else — CPU, a
trainable θ, ``save="h"`` — uses the plain torch loop over T below, which is the reference.
"""

from __future__ import annotations

import math
import numbers
import os

import torch
from spikingjelly.activation_based import base
from torch import nn

__all__ = ["LeanIFNode", "if_scan", "triton_available"]

_CODE_STEPS = 126  # int8 code: ±(1 + round(126·|d|)) ∈ [-127, -1] ∪ [1, 127]
_SAVE_MODES = ("auto", "h", "code")

try:  # optional fused path; CPU never needs it
    from hsd.kernels import _if_triton
except Exception:  # noqa: BLE001 — any import failure (no triton, no driver) means "not available"
    _if_triton = None


def triton_available() -> bool:
    """True when the fused Triton kernels imported (they still run only on CUDA tensors)."""
    return _if_triton is not None


# -- code <-> (spike, surrogate) ----------------------------------------------------------------


def _encode(
    h: torch.Tensor, spike: torch.Tensor, theta: torch.Tensor, alpha: float
) -> torch.Tensor:
    d = ((h - theta) * alpha).abs().clamp_(max=1.0)
    q = torch.floor(d * _CODE_STEPS + 0.5) + 1.0
    return torch.where(spike, q, -q).to(torch.int8)


def _decode(q: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    qf = q.float()
    d = (qf.abs() - 1.0) / _CODE_STEPS
    return qf > 0, (1.0 - d).clamp_(min=0.0) * alpha


def _surrogate(h: torch.Tensor, theta: torch.Tensor, alpha: float) -> torch.Tensor:
    # SpikingJelly piecewise_quadratic_backward: (α − α²|x|), zeroed where |x| > 1/α.
    return (1.0 - alpha * (h.float() - theta).abs()).clamp_(min=0.0) * alpha


# -- the autograd function ----------------------------------------------------------------------


class _IFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, theta, v0, alpha, amp_is_theta, detach_reset, save, use_triton):
        theta32 = theta.detach().float()
        if use_triton:
            out, saved = _if_triton.forward(x, theta32, v0, alpha, amp_is_theta)
        else:
            out = torch.empty_like(x)
            saved = torch.empty_like(x, dtype=torch.int8 if save == "code" else x.dtype)
            v = torch.zeros_like(x[0], dtype=torch.float32)
            if v0 is not None:
                v += v0.detach().float()
            amp = theta32 if amp_is_theta else 1.0
            for t in range(x.shape[0]):
                h = v + x[t]  # fp32 accumulation
                spike = h >= theta32
                sf = spike.float()
                out[t] = sf * amp
                saved[t] = _encode(h, spike, theta32, alpha) if save == "code" else h
                v = h - sf * theta32
        ctx.save_for_backward(saved, theta)
        ctx.cfg = (alpha, amp_is_theta, detach_reset, save, use_triton, v0 is not None)
        ctx.v0_shape = None if v0 is None else v0.shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        saved, theta = ctx.saved_tensors
        alpha, amp_is_theta, detach_reset, save, use_triton, has_v0 = ctx.cfg
        want_x, want_theta, want_v0 = ctx.needs_input_grad[:3]
        theta32 = theta.detach().float()
        if use_triton and not want_theta:
            grad_x, gv = _if_triton.backward(
                grad_out, saved, theta32, alpha, amp_is_theta, detach_reset
            )
            g_theta = None
        else:
            grad_x = torch.empty_like(grad_out)
            gv = torch.zeros_like(grad_out[0], dtype=torch.float32)
            g_theta = torch.zeros((), dtype=torch.float32, device=grad_out.device)
            amp = theta32 if amp_is_theta else 1.0
            for t in range(grad_out.shape[0] - 1, -1, -1):
                if save == "code":
                    spike, g = _decode(saved[t], alpha)
                else:
                    spike, g = saved[t] >= theta32, _surrogate(saved[t], theta32, alpha)
                g_out = grad_out[t].float()
                u = g_out * amp if detach_reset else g_out * amp - theta32 * gv
                if want_theta:
                    sf = spike.float()
                    term = -(u * g) - sf * gv + (g_out * sf if amp_is_theta else 0.0)
                    g_theta += term.sum()
                gv = u * g + gv
                grad_x[t] = gv
        g_v0 = None
        if has_v0 and want_v0:
            g_v0 = gv.sum_to_size(ctx.v0_shape) if ctx.v0_shape != gv.shape else gv
        if want_theta:
            g_theta = g_theta.to(theta.dtype).reshape(theta.shape)
        return (
            grad_x if want_x else None,
            g_theta if want_theta else None,
            g_v0,
            None,
            None,
            None,
            None,
            None,
        )


def _as_threshold(theta, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(theta, torch.Tensor):
        if isinstance(theta, bool) or not isinstance(theta, numbers.Real):
            raise ValueError(f"threshold must be a real number or a scalar tensor, got {theta!r}")
        theta = torch.tensor(float(theta), device=like.device)
    if theta.numel() != 1:
        raise ValueError(f"threshold must be a scalar, got a tensor of shape {tuple(theta.shape)}")
    return theta.reshape(())


def if_scan(
    x: torch.Tensor,
    threshold: float | torch.Tensor = 1.0,
    v0: float | torch.Tensor | None = None,
    *,
    alpha: float = 1.0,
    amplitude_is_threshold: bool = False,
    detach_reset: bool = False,
    save: str = "auto",
    backend: str = "auto",
) -> torch.Tensor:
    """Run the IF neuron of the module docstring over ``x [T, N, ...]``; returns ``out [T, N, ...]``
    in ``x``'s dtype. ``threshold`` θ: float or scalar tensor (gets a gradient only if it requires
    one). ``v0``: initial potential (None = 0; a scalar or a tensor broadcastable to ``x[0]``).
    ``backend``: "auto" (Triton on CUDA when available and θ is fixed; the environment variable
    ``HSD_IF_SCAN_BACKEND=torch|triton`` overrides "auto"), "torch" or "triton"."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError(
            "if_scan expects a floating-point tensor [T, N, ...] (time first), got "
            f"{type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))}"
        )
    if save not in _SAVE_MODES:
        raise ValueError(f"save must be one of {_SAVE_MODES}, got {save!r}")
    if backend == "auto":  # lets a benchmark compare the two paths without code changes
        backend = os.environ.get("HSD_IF_SCAN_BACKEND", "auto")
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(
            f"backend must be 'auto', 'torch' or 'triton' (also via $HSD_IF_SCAN_BACKEND), "
            f"got {backend!r}"
        )
    alpha = float(alpha)
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"surrogate alpha must be a finite number > 0, got {alpha!r}")
    theta = _as_threshold(threshold, x)
    if v0 is not None and not isinstance(v0, torch.Tensor):
        v0 = torch.tensor(float(v0), device=x.device)
    if save == "auto":
        save = "h" if x.dtype == torch.float32 or x.dtype == torch.float64 else "code"
    scalar_v0 = v0 is None or v0.numel() == 1
    can_triton = (
        _if_triton is not None
        and x.is_cuda
        and save == "code"
        and scalar_v0
        and not (isinstance(threshold, torch.Tensor) and threshold.requires_grad)
    )
    if backend == "triton" and not can_triton:
        raise ValueError(
            "backend='triton' needs triton, a CUDA tensor, save='code' (bf16/fp16 input), a scalar "
            "v0 and a threshold without grad; use backend='auto' to fall back to the torch loop"
        )
    use_triton = can_triton and backend != "torch"
    if v0 is not None and v0.numel() == 1:
        v0 = v0.reshape(())
    return _IFScan.apply(
        x, theta, v0, alpha, bool(amplitude_is_threshold), bool(detach_reset), save, use_triton
    )


# -- module ---------------------------------------------------------------------------------------


class LeanIFNode(base.MemoryModule):
    """Drop-in multi-step IF neuron (``step_mode='m'``, input ``[T, N, ...]``) backed by ``if_scan``.

    Stateless per sequence: every forward starts from v0 (0, or θ/2 with ``v0="half"``), which is
    what SpikingJelly's IFNode does when ``functional.reset_net`` runs after every batch (the
    engine does so in a ``finally``). ``reset()`` exists (inherited, no registered memories) so
    ``reset_net`` works. Feeding one sequence in chunks is therefore NOT supported — use the
    SpikingJelly neuron for streaming.

    ``v_threshold`` θ is a buffer ``threshold`` (fixed, like SpikingJelly's float) unless
    ``learn_threshold=True`` makes it a parameter. ``spike_amplitude="threshold"`` outputs θ·s
    (the converted-net convention of ``hsd.neurons.ConvertedIFNode``); ``LeanIFNode.converted(θ)``
    sets that and v0 = θ/2. Surrogate: triangle, ``PiecewiseQuadratic(alpha)`` (default α = 1).
    """

    def __init__(
        self,
        v_threshold: float = 1.0,
        v0: float | str | None = None,
        *,
        spike_amplitude: str = "one",
        alpha: float = 1.0,
        detach_reset: bool = False,
        learn_threshold: bool = False,
        save: str = "auto",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        th = float(v_threshold.detach()) if isinstance(v_threshold, torch.Tensor) else v_threshold
        if isinstance(th, bool) or not isinstance(th, numbers.Real) or not th > 0:
            raise ValueError(f"v_threshold must be a finite number > 0, got {v_threshold!r}")
        if not math.isfinite(th):
            raise ValueError(f"v_threshold must be a finite number > 0, got {v_threshold!r}")
        if spike_amplitude not in ("one", "threshold"):
            raise ValueError(
                f"spike_amplitude must be 'one' or 'threshold', got {spike_amplitude!r}"
            )
        if not (v0 is None or v0 == "half" or isinstance(v0, numbers.Real)):
            raise ValueError(f"v0 must be None, 'half' (θ/2) or a number, got {v0!r}")
        if save not in _SAVE_MODES:
            raise ValueError(f"save must be one of {_SAVE_MODES}, got {save!r}")
        t = torch.tensor(float(th))
        if learn_threshold:
            self.threshold = nn.Parameter(t)
        else:
            self.register_buffer("threshold", t)
        self.v0 = v0
        self.spike_amplitude = spike_amplitude
        self.alpha = float(alpha)
        self.detach_reset = bool(detach_reset)
        self.save = save
        self.backend = backend
        self.step_mode = "m"

    @classmethod
    def converted(cls, v_threshold: float, **kw) -> LeanIFNode:
        """The neuron of a converted SNN: θ = λ, v0 = θ/2, output θ·s."""
        return cls(v_threshold, v0="half", spike_amplitude="threshold", **kw)

    @property
    def v_threshold(self) -> float:
        return float(self.threshold.detach())

    def set_threshold(self, v_threshold: float) -> None:
        """Set θ in place (``hsd.convert`` calls this on converted nets)."""
        th = float(v_threshold)
        if not (math.isfinite(th) and th > 0):
            raise ValueError(f"v_threshold must be a finite number > 0, got {v_threshold!r}")
        with torch.no_grad():
            self.threshold.fill_(th)

    def _v0(self) -> torch.Tensor | float | None:
        if self.v0 == "half":
            return self.threshold * 0.5  # follows θ (and its gradient, if learned)
        return self.v0

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if x_seq.dim() < 2:
            raise ValueError(f"LeanIFNode expects [T, N, ...], got shape {tuple(x_seq.shape)}")
        return if_scan(
            x_seq,
            self.threshold,
            self._v0(),
            alpha=self.alpha,
            amplitude_is_threshold=self.spike_amplitude == "threshold",
            detach_reset=self.detach_reset,
            save=self.save,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"v_threshold={self.v_threshold:.4g}, v0={self.v0!r}, "
            f"spike_amplitude={self.spike_amplitude!r}, alpha={self.alpha}, save={self.save!r}, "
            f"triton={'yes' if triton_available() else 'no'}"
        )
