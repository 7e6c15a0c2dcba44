"""The CPU scan (hsd.kernels.cpu_scan) against SpikingJelly's own path for every neuron the
package builds: spikes and membrane potentials bit for bit (τ = 2 and IF; other τ to one
rounding), gradients to float rounding."""

import pytest
import torch
from spikingjelly.activation_based import functional

from hsd.kernels.cpu_scan import ScanParams, neuron_scan
from hsd.neurons import CPU_SCAN_ENV, make_neuron

NEURON_CASES = [
    ("lif", {}),  # TET: decay 0.5, hard reset to 0
    ("lif", {"decay_input": True, "detach_reset": True}),  # TCJA's
    ("lif", {"decay_input": True}),
    ("lif", {"v_reset": None, "decay": 0.75}),  # soft reset
    ("lif", {"v_reset": 0.3, "v_threshold": 0.8, "decay": 0.75}),
    ("if", {}),
    ("if", {"detach_reset": True}),
    ("if-converted", {"v_threshold": 0.7}),
    ("if-converted", {"v_threshold": 1.7, "surrogate": "raw"}),
]


def _run(kind, kw, x, g, monkeypatch, scan: bool):
    monkeypatch.setenv(CPU_SCAN_ENV, "1" if scan else "0")
    n = make_neuron(kind, **kw)
    xx = x.clone().requires_grad_()
    out = n(xx)
    v = n.v.detach().clone()
    (out * g).sum().backward()
    functional.reset_net(n)
    return out.detach(), v, xx.grad


@pytest.mark.parametrize("kind,kw", NEURON_CASES)
def test_scan_matches_spikingjelly(kind, kw, monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(6, 4, 3, 5) * 1.5
    g = torch.randn_like(x)
    spikes, v, grad = _run(kind, kw, x, g, monkeypatch, scan=True)
    sj_spikes, sj_v, sj_grad = _run(kind, kw, x, g, monkeypatch, scan=False)
    assert spikes.abs().sum() > 0 and (spikes == 0).any()  # the case exercises both branches
    assert torch.equal(spikes, sj_spikes)
    if kw.get("decay", 0.5) == 0.5:  # τ = 2: k·v + x and v − v/τ + x are the same floats
        assert torch.equal(v, sj_v)
    else:
        assert torch.allclose(v, sj_v, rtol=1e-6, atol=1e-6)
    assert torch.allclose(grad, sj_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind,kw", NEURON_CASES[:2] + NEURON_CASES[-2:])
def test_scan_inference_and_chunked_sequence_equal_one_pass(kind, kw):
    # without gradients nothing is kept; the state carries over between calls like SpikingJelly's
    torch.manual_seed(1)
    x = torch.randn(8, 3, 7) * 2
    n = make_neuron(kind, **kw)
    whole = n(x.clone().requires_grad_()).detach()
    functional.reset_net(n)
    with torch.no_grad():
        chunks = torch.cat([n(x[:3]), n(x[3:])])
    assert torch.equal(whole, chunks)


def test_scan_hand_sequence_hard_reset_lif():
    # decay 0.5, θ = 1, reset to 0: v = .6 | .3+.6=.9 | .45+.6=1.05 → spike, 0 | .6
    p = ScanParams(threshold=1.0, tau=2.0, v_reset=0.0)
    x = torch.full((4, 1), 0.6)
    spikes, v = neuron_scan(x, 0.0, p)
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]
    assert v.item() == pytest.approx(0.6)


def test_scan_gradient_reaches_a_tensor_initial_potential():
    p = ScanParams(threshold=1.0, tau=2.0, v_reset=None)
    v0 = torch.tensor(0.5, requires_grad=True)
    x = torch.full((3, 2), 0.4, requires_grad=True)
    spikes, v = neuron_scan(x, v0, p)
    (spikes.sum() + v.sum()).backward()
    assert v0.grad is not None and torch.isfinite(v0.grad) and x.grad.abs().sum() > 0


def test_scan_rejects_what_it_does_not_run():
    p = ScanParams(threshold=1.0)
    with pytest.raises(ValueError, match="fp32 CPU"):
        neuron_scan(torch.zeros(2, 3, dtype=torch.float64), 0.0, p)
    with pytest.raises(ValueError, match="fp32 CPU"):
        neuron_scan(torch.zeros(3), 0.0, p)
