"""The lean IF scan against SpikingJelly's IFNode (reset by subtraction, PiecewiseQuadratic(1)):
spikes and gradients in fp32 (exact) and bf16 (tolerance), converted-net v0 = θ/2, a trainable θ,
saved-tensor bytes, model integration, and the Triton kernels (interpreter on CPU, real on CUDA)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from spikingjelly.activation_based import functional, neuron, surrogate

from hsd.kernels import LeanIFNode, if_scan, triton_available
from hsd.lean import swap_to_lean
from hsd.models import vgg_snn
from hsd.neurons import ConvertedIFNode, triangle


def sj_if(**kw) -> neuron.IFNode:
    return neuron.IFNode(v_reset=None, surrogate_function=triangle(), step_mode="m", **kw)


def run(fn, x: torch.Tensor, grad: torch.Tensor):
    """Output and input gradient of fn at x for the upstream gradient `grad`."""
    x = x.detach().clone().requires_grad_()
    y = fn(x)
    (gx,) = torch.autograd.grad(y, x, grad.to(y.dtype))
    return y.detach(), gx


def sample(shape=(6, 3, 4, 5), seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    # mean 0.4 around θ = 1 so every step mixes spikes, near-threshold and silent neurons
    x = (torch.randn(shape) * 0.8 + 0.4).to(dtype)
    return x, torch.randn(shape)


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("threshold", [1.0, 0.7])
def test_fp32_matches_spikingjelly_exactly(detach_reset, threshold):
    x, g = sample()
    ref = sj_if(v_threshold=threshold, detach_reset=detach_reset)
    y_ref, gx_ref = run(ref, x, g)
    y, gx = run(lambda t: if_scan(t, threshold, detach_reset=detach_reset), x, g)
    assert 0 < y.mean() < 1  # the case exercises both spiking and silent neurons
    assert torch.equal(y, y_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-6, atol=1e-6)


def test_bf16_spikes_exact_and_gradients_within_bf16_tolerance():
    x, g = sample(shape=(8, 4, 16, 6), seed=1, dtype=torch.bfloat16)
    # reference: SpikingJelly in fp32 on the same bf16-valued input and upstream gradient
    y_ref, gx_ref = run(sj_if(), x.float(), g.bfloat16().float())
    y, gx = run(lambda t: if_scan(t, 1.0), x, g)  # save="auto" → int8 codes
    assert y.dtype == gx.dtype == torch.bfloat16
    assert torch.equal(y.float(), y_ref)  # fp32 accumulation: no spike flips
    scale = gx_ref.abs().max()
    torch.testing.assert_close(gx.float(), gx_ref, rtol=2e-2, atol=2e-2 * scale)


def test_code_save_close_to_exact_h_save_in_fp32():
    x, g = sample(seed=2)
    _, gx_h = run(lambda t: if_scan(t, 1.3, save="h"), x, g)
    _, gx_c = run(lambda t: if_scan(t, 1.3, save="code"), x, g)
    torch.testing.assert_close(gx_c, gx_h, rtol=0, atol=1e-2 * gx_h.abs().max())


@pytest.mark.parametrize("form,alpha", [("raw", 1.0), ("normalized", 1 / 2.5)])
def test_converted_node_matches_hsd_converted_ifnode(form, alpha):
    # the normalized surrogate (window ±θ) is the triangle with α = 1/θ
    x, g = sample(seed=3)
    ref = ConvertedIFNode(2.5, surrogate=form)
    y_ref, gx_ref = run(ref, x * 2, g)
    functional.reset_net(ref)
    y, gx = run(LeanIFNode.converted(2.5, alpha=alpha), x * 2, g)
    assert torch.equal(y, y_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-6, atol=1e-6)


def test_v0_half_threshold_hand_computed():
    # θ = 2, v0 = 1, constant input 0.5: h = 1.5, 2.0 (fire, v → 0), 0.5, 1.0, 1.5, 2.0 (fire)
    node = LeanIFNode.converted(2.0)
    out = node(torch.full((6, 1), 0.5))
    assert out.flatten().tolist() == [0.0, 2.0, 0.0, 0.0, 0.0, 2.0]
    plain = LeanIFNode(2.0)(torch.full((6, 1), 0.5))  # v0 = 0: first spike at t = 4
    assert plain.flatten().tolist() == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]


def reference_loop(x, theta, v0, amplitude_is_theta):
    """Plain autograd over SpikingJelly's single-step formulas, θ as a tensor (for ∂L/∂θ)."""
    sg = surrogate.PiecewiseQuadratic(alpha=1.0)
    v, outs = v0, []
    for t in range(x.shape[0]):
        h = v + x[t]
        s = sg(h - theta)
        v = h - s * theta
        outs.append(s * theta if amplitude_is_theta else s)
    return torch.stack(outs)


@pytest.mark.parametrize("converted", [False, True])
def test_trainable_threshold_gradient_matches_autograd(converted):
    x, g = sample(seed=4)
    th_ref = torch.tensor(1.2, requires_grad=True)
    xr = x.clone().requires_grad_()
    v0 = th_ref * 0.5 if converted else 0.0
    y_ref = reference_loop(xr, th_ref, v0, converted)
    gx_ref, gth_ref = torch.autograd.grad(y_ref, (xr, th_ref), g)

    node = LeanIFNode(1.2, v0="half" if converted else None, learn_threshold=True)
    node.spike_amplitude = "threshold" if converted else "one"
    xl = x.clone().requires_grad_()
    y = node(xl)
    gx, gth = torch.autograd.grad(y, (xl, node.threshold), g)
    assert torch.equal(y, y_ref.detach())
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gth, gth_ref, rtol=1e-4, atol=1e-4)


def test_fixed_threshold_gets_no_gradient():
    node = LeanIFNode(1.0)
    assert not node.threshold.requires_grad and list(node.parameters()) == []
    node.set_threshold(3.0)
    assert node.v_threshold == 3.0
    with pytest.raises(ValueError, match="> 0"):
        node.set_threshold(-1.0)


def saved_bytes(fn, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for backward of fn(x), x excluded."""
    storages = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() != x.untyped_storage().data_ptr():
            storages[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(storages.values())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_saves_fewer_bytes_than_spikingjelly_ifnode(dtype):
    assert functional.neuron_implementation("if", torch.device("cpu"))["implementation"] == (
        "torch-reference"
    )
    x = torch.randn(5, 2, 3, 4, dtype=dtype, requires_grad=True)
    sj = saved_bytes(sj_if(), x)
    lean = saved_bytes(lambda t: if_scan(t, 1.0, save="code"), x)
    assert lean == x.numel() + 4  # one int8 per activation + the fp32 threshold
    assert lean < sj
    if dtype == torch.bfloat16:  # the default under autocast is the code path
        assert saved_bytes(lambda t: if_scan(t, 1.0), x) == lean


def test_swap_to_lean_keeps_model_outputs_and_gradients():
    torch.manual_seed(5)
    model = vgg_snn(num_classes=3, size=16, width=1 / 32, neuron="if")
    x = torch.rand(3, 2, 2, 16, 16) * 2
    out_ref = model(x)
    out_ref.sum().backward()
    grads_ref = [p.grad.clone() for p in model.parameters()]
    functional.reset_net(model)
    model.zero_grad()
    swap_to_lean(model)
    assert not any(isinstance(m, neuron.IFNode) for m in model.modules())
    assert sum(isinstance(m, LeanIFNode) for m in model.modules()) == 8
    out = model(x)
    out.sum().backward()
    functional.reset_net(model)  # stateless neurons: reset_net is a no-op but must work
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    for p, g in zip(model.parameters(), grads_ref, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)


def test_runs_under_cpu_bf16_autocast_and_is_stateless():
    torch.manual_seed(6)
    model = vgg_snn(num_classes=3, size=16, width=1 / 32, neuron=LeanIFNode)
    x = torch.rand(2, 2, 2, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = model(x)
        b = model(x)  # no reset in between: a stateless neuron gives the same answer
    assert torch.equal(a, b)
    a.float().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match=r"\[T, N"):
        if_scan(torch.ones(3), 1.0)
    with pytest.raises(ValueError, match="scalar"):
        if_scan(torch.ones(2, 2), torch.ones(2))
    with pytest.raises(ValueError, match="save"):
        if_scan(torch.ones(2, 2), 1.0, save="fp8")
    with pytest.raises(ValueError, match="triton"):
        if_scan(torch.ones(2, 2), 1.0, backend="triton")  # CPU tensor
    with pytest.raises(ValueError, match="v_threshold"):
        LeanIFNode(0.0)


_TRITON_CHECK = textwrap.dedent(
    """
    import sys, torch
    import hsd.kernels  # noqa
    mod = sys.modules["hsd.kernels.if_scan"]
    import hsd.kernels._if_triton as tk
    torch.manual_seed(0)
    x = (torch.randn(5, 3, 4, 6, 6) * 0.8 + 0.3).bfloat16()
    x_cl = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (5, 3))
    th = torch.tensor(1.3)
    for xx in (x, x_cl):
        for amp in (False, True):
            for v0 in (None, torch.tensor(0.65)):
                for detach in (False, True):
                    xr = xx.clone().requires_grad_()
                    y = mod._IFScan.apply(xr, th, v0, 1.0, amp, detach, "code", False)
                    go = torch.randn_like(y)
                    (gx_ref,) = torch.autograd.grad(y, xr, go)
                    out, code = tk.forward(xx, th, v0, 1.0, amp)
                    gx, gv = tk.backward(go, code, th, 1.0, amp, detach)
                    assert torch.equal(out, y), "spikes differ"
                    assert out.stride() == xx.stride(), "layout not kept"
                    torch.testing.assert_close(gx.float(), gx_ref.float(), rtol=1e-2, atol=1e-2)
    print("ok")
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not triton_available(), reason="triton not importable")
def test_triton_kernels_match_torch_loop_in_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    res = subprocess.run(
        [sys.executable, "-c", _TRITON_CHECK], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_cuda_bf16_matches_spikingjelly(layout):
    torch.manual_seed(7)
    x = (torch.randn(10, 8, 32, 12, 12, device="cuda") * 0.8 + 0.4).bfloat16()
    if layout == "channels_last":
        x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (10, 8))
    g = torch.randn(x.shape, device="cuda")
    y_ref, gx_ref = run(sj_if().cuda(), x.float(), g.bfloat16().float())
    for backend in ["torch", "triton"] if triton_available() else ["torch"]:
        y, gx = run(lambda t, b=backend: if_scan(t, 1.0, backend=b), x, g)
        assert torch.equal(y.float(), y_ref), backend
        scale = gx_ref.abs().max()
        torch.testing.assert_close(gx.float(), gx_ref, rtol=2e-2, atol=2e-2 * scale)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_converted_vgg_trains_under_autocast():
    torch.manual_seed(8)
    model = swap_to_lean(vgg_snn(num_classes=10, size=48, width=0.25, neuron="if")).cuda()
    x = torch.rand(4, 8, 2, 48, 48, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(x).float().mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
