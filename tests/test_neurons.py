"""QCFS forward/gradient by hand, neuron dynamics on hand sequences, surrogate shape, errors."""

import pytest
import torch
from spikingjelly.activation_based import functional

from hsd.kernels.qcfs import qcfs_reference
from hsd.neurons import (
    CPU_SCAN_ENV,
    NEURONS,
    QCFS,
    ConvertedIFNode,
    make_neuron,
    neuron_backend,
    triangle,
)
from hsd.registry import UnknownNameError


def test_qcfs_forward_by_hand():
    q = QCFS(L=4, lam=2.0)
    z = torch.tensor([-1.0, 0.1, 0.3, 0.76, 1.5, 2.5])
    # z/λ clipped = [0, .05, .15, .38, .75, 1]; floor(4x + ½)/4·2 = [0, 0, .5, 1, 1.5, 2]
    assert torch.equal(q(z), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.5, 2.0]))


def test_qcfs_gradient_straight_through_and_lambda_by_hand():
    q = QCFS(L=4, lam=2.0)
    z = torch.tensor([-1.0, 0.1, 0.3, 0.76, 1.5, 2.5], requires_grad=True)
    q(z).sum().backward()
    # ∂h/∂z = 1 inside the window (0 < z < λ), 0 outside
    assert torch.equal(z.grad, torch.tensor([0.0, 1, 1, 1, 1, 0]))
    # ∂h/∂λ = h/λ − (z/λ)·1[inside] = [0, −.05, .1, .12, 0, 1] → sum 1.17
    assert q.lam.grad.item() == pytest.approx(1.17, abs=1e-6)


@pytest.mark.parametrize("L", [1, 4, 16])
def test_qcfs_node_equals_autograd_of_the_composed_expression(L):
    # the one-node kernel (hsd.kernels.qcfs) against autograd through the textbook expression,
    # with values exactly at the clip's ends (no gradient there, as clamp's backward)
    torch.manual_seed(L)
    q = QCFS(L=L, lam=2.0)
    z = (torch.randn(4, 8, 5, 5) * 3).requires_grad_()
    with torch.no_grad():
        z[0, 0, 0, :4] = torch.tensor([0.0, 2.0, -0.0, 1.0])
    g = torch.randn_like(z)
    h = q(z)
    h.backward(g)
    lam = q.lam.detach().clone().requires_grad_()
    z_ref = z.detach().clone().requires_grad_()
    h_ref = qcfs_reference(z_ref, lam, L)
    h_ref.backward(g)
    assert torch.equal(h, h_ref)  # same operations in the same order
    assert torch.equal(z.grad, z_ref.grad)
    assert z.grad[0, 0, 0, :2].tolist() == [0.0, 0.0]
    assert q.lam.grad.item() == pytest.approx(lam.grad.item(), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("L", [0, -3, 1.5, True, "4"])
def test_qcfs_rejects_bad_L(L):
    with pytest.raises(ValueError, match="L must be an integer"):
        QCFS(L=L)


@pytest.mark.parametrize("lam", [0.0, -1.0, float("nan"), float("inf")])
def test_qcfs_rejects_bad_lambda(lam):
    with pytest.raises(ValueError, match="lam must be"):
        QCFS(L=4, lam=lam)


def test_qcfs_lambda_is_a_trainable_parameter():
    q = QCFS(L=8)
    assert [n for n, _ in q.named_parameters()] == ["lam"]
    assert q.lam.item() == 8.0 and q.L == 8


def test_triangle_surrogate_is_max0_1_minus_abs():
    u = torch.linspace(-2.0, 4.0, 61, requires_grad=True)  # around θ = 1
    s = triangle()(u - 1.0)
    assert torch.equal(s.detach(), (u.detach() >= 1.0).float())
    s.sum().backward()
    assert torch.allclose(u.grad, (1.0 - (u.detach() - 1.0).abs()).clamp(min=0.0), atol=1e-6)


@pytest.mark.parametrize("kind", ["if", "lif"])
def test_neuron_surrogate_in_fused_path_is_triangle(kind):
    # one step from rest: v = x, so ∂s/∂x = max(0, 1 − |x − 1|)
    n = make_neuron(kind)
    x = torch.linspace(-1.0, 3.0, 41).reshape(1, 41).requires_grad_()
    n(x).sum().backward()
    assert torch.allclose(x.grad, (1.0 - (x.detach() - 1.0).abs()).clamp(min=0.0), atol=1e-6)


def test_if_resets_by_subtraction():
    n = make_neuron("if")
    x = torch.tensor([0.6, 0.6, 0.6, 1.5]).reshape(4, 1)
    # v: .6 | 1.2 → spike, .2 | .8 | 2.3 → spike, 1.3
    assert n(x).flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    assert n.v.item() == pytest.approx(1.3)
    assert n.step_mode == "m" and n.v_reset is None and n.v_threshold == 1.0


def test_lif_tet_style_decay_half_hard_reset():
    n = make_neuron("lif")
    x = torch.full((5, 1), 0.6)
    # v: .6 | .9 | 1.05 → spike, 0 | .6 | .9
    assert n(x).flatten().tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert n.v.item() == pytest.approx(0.9)
    assert n.tau == 2.0 and n.decay_input is False and n.v_reset == 0.0


def test_converted_if_starts_at_half_threshold_emits_theta_and_resets():
    n = make_neuron("if-converted", v_threshold=2.0)
    assert isinstance(n, ConvertedIFNode)
    x = torch.full((4, 1, 3), 0.9)
    # v: 1 + .9 = 1.9 | 2.8 → θ, .8 | 1.7 | 2.6 → θ, .6
    y1 = n(x)
    assert y1[:, 0, 0].tolist() == [0.0, 2.0, 0.0, 2.0]
    functional.reset_net(n)
    assert n.v == 1.0
    assert torch.equal(n(x), y1)  # reset ⇒ identical output


@pytest.mark.parametrize("L,theta", [(4, 1.0), (8, 2.0), (16, 0.5)])
def test_converted_if_matches_qcfs_exactly_for_T_equal_L(L, theta):
    torch.manual_seed(0)
    q = QCFS(L=L, lam=theta)
    n = make_neuron("if-converted", v_threshold=theta)
    # dyadic grid points (exact float arithmetic) + random points, all inside [0, θ]
    grid = torch.arange(4 * L + 1) / (4 * L) * theta
    z = torch.cat([grid, torch.rand(200) * theta])
    out = n(z.expand(L, -1)).mean(0)
    assert torch.allclose(out, q(z).detach(), atol=1e-6)
    assert torch.equal(out[: grid.numel()], q(grid).detach())


@pytest.mark.parametrize("form", ["normalized", "raw"])
def test_converted_if_surrogate_gradient_by_hand(form):
    # One step from v0 = θ/2 with θ = 2: v = 1 + x. Output θ·s; by hand
    #   normalized (Eq. 12): ∂(θ·s)/∂x = max(0, 1 − |v − θ|/θ)     (window ±θ)
    #   raw (QCFS code):     ∂(θ·s)/∂x = θ·max(0, 1 − |v − θ|)     (window ±1)
    theta = 2.0
    n = make_neuron("if-converted", v_threshold=theta, surrogate=form)
    x = torch.tensor([[-0.5, 0.0, 0.5, 0.75, 1.0, 1.25, 2.0, 2.5, 3.5]]).requires_grad_()
    n(x).sum().backward()
    v = 1.0 + x.detach()
    if form == "normalized":
        expected = (1.0 - (v - theta).abs() / theta).clamp(min=0.0)
        # v = 0.5 → 1 − 1.5/2 = 0.25; v = 1.5 → 0.75; v = 2 → 1; v = 3.5 → 0.25; v = 4.5 → 0
        assert expected[0].tolist() == [0.25, 0.5, 0.75, 0.875, 1.0, 0.875, 0.5, 0.25, 0.0]
    else:
        expected = theta * (1.0 - (v - theta).abs()).clamp(min=0.0)
        assert expected[0].tolist() == [0.0, 0.0, 1.0, 1.5, 2.0, 1.5, 0.0, 0.0, 0.0]
    assert torch.allclose(x.grad, expected, atol=1e-6)
    assert n.surrogate_form == form


def test_converted_if_normalized_window_follows_the_threshold():
    n = make_neuron("if-converted", v_threshold=1.0)
    n.set_threshold(4.0)  # as conversion does: the window must become ±4
    x = torch.tensor([[0.0, 2.0, 5.0]]).requires_grad_()  # v = 2, 4, 7
    n(x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([[0.5, 1.0, 0.25]]), atol=1e-6)
    with pytest.raises(ValueError, match="surrogate 'x' unknown; valid: normalized, raw"):
        make_neuron("if-converted", surrogate="x")


def test_lif_with_decay_input_scales_the_input():
    # v ← 0.5·v + 0.5·x, hard reset: x = 1.2: v = .6 | .9 | 1.05 → spike, 0 | .6
    n = make_neuron("lif", decay_input=True, detach_reset=True)
    x = torch.full((5, 1), 1.2)
    assert n(x).flatten().tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert n.v.item() == pytest.approx(0.9)
    assert n.decay_input is True and n.detach_reset is True and n.tau == 2.0


def test_make_neuron_errors():
    with pytest.raises(UnknownNameError, match="valid: if, if-converted, if-lean, lif"):
        make_neuron("relu")
    with pytest.raises(ValueError, match="v_threshold"):
        make_neuron("if", v_threshold=0.0)
    with pytest.raises(ValueError, match="decay"):
        make_neuron("lif", decay=1.0)
    with pytest.raises(ValueError, match="bad options"):
        make_neuron("if", tau=2.0)
    # Other packages may register more kinds (baselines adds "sltt"); these are hsd's own.
    assert {"if", "if-converted", "if-lean", "lif"} <= set(NEURONS.names())


@pytest.mark.parametrize(
    "kind,kw", [("if", {}), ("lif", {}), ("if-converted", {"v_threshold": 1.5})]
)
def test_every_kind_forward_backward_multistep(kind, kw):
    torch.manual_seed(0)
    n = make_neuron(kind, **kw)
    x = (torch.rand(5, 2, 3, 4, 4) * 2).requires_grad_()
    y = n(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_neuron_backend_names_the_cpu_scan_or_spikingjelly_and_implementation(monkeypatch):
    net = torch.nn.Sequential(make_neuron("lif"), make_neuron("if-converted", v_threshold=2.0))
    assert neuron_backend(net) == "hsd-cpu-scan/if,lif"
    # bf16 and the scan switched off both leave the neurons to SpikingJelly
    assert neuron_backend(make_neuron("if"), bf16=True) == "spikingjelly-2.0.0/if:torch-reference"
    monkeypatch.setenv(CPU_SCAN_ENV, "0")
    assert neuron_backend(make_neuron("lif")) == "spikingjelly-2.0.0/lif:torch-reference"
    assert neuron_backend(QCFS(4)) == "torch/qcfs"


@pytest.mark.gpu
def test_neuron_backend_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    n = make_neuron("if-converted", v_threshold=2.0)
    s = neuron_backend(n, device="cuda")
    assert s.startswith("spikingjelly-2.0.0/if:") and "unavailable" not in s
    x = torch.rand(8, 3, 5, device="cuda") * 2
    assert torch.equal(n(x).cpu(), make_neuron("if-converted", v_threshold=2.0)(x.cpu()))


@pytest.mark.gpu
@pytest.mark.parametrize("form", ["normalized", "raw"])
def test_converted_if_surrogate_forms_on_cuda_match_cpu(form):
    # the fused CUDA path must run the same triangle width (α = 1/θ for "normalized")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    torch.manual_seed(0)
    x = torch.rand(6, 4, 7) * 3
    grads = []
    for dev in ("cpu", "cuda"):
        n = make_neuron("if-converted", v_threshold=2.5, surrogate=form).to(dev)
        xd = x.to(dev).requires_grad_()
        n(xd).sum().backward()
        grads.append(xd.grad.cpu())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-5)
