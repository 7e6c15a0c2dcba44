"""SLTT: the neuron's update against the authors' equations, the per-step loss by hand, and the
claim that matters: training memory does not grow with T (BPTT's does)."""

import math

import pytest
import torch
from spikingjelly.activation_based import functional

from baselines.sltt import make_sltt_step, sltt_step_loss
from baselines.sltt_neuron import SLTTNode
from baselines.tet import tet_loss
from hsd.models import vgg_snn


def test_sltt_node_dynamics_by_hand():
    # v_t = (1 - 1/1.1)·v_{t-1} + x_t, spike at v >= 1, soft reset (subtract 1).
    node = SLTTNode(tau=1.1)
    x = torch.tensor([[0.6], [0.95], [1.5], [0.0]])
    out = node(x).flatten().tolist()
    leak = 1 - 1 / 1.1
    v, expect = 0.0, []
    for xt in (0.6, 0.95, 1.5, 0.0):
        v = leak * v + xt
        s = 1.0 if v >= 1.0 else 0.0
        v -= s
        expect.append(s)
    assert out == expect == [0.0, 1.0, 1.0, 0.0]
    functional.reset_net(node)
    assert node.v == 0.0


def test_sltt_node_cuts_gradient_through_time():
    node = SLTTNode()
    x = torch.tensor([[0.9], [0.5]], requires_grad=True)
    out = node(x)
    out[1].sum().backward()
    # Step 2's spike depends on x_1 only through v_1, which is detached.
    assert x.grad[0].item() == 0.0
    assert x.grad[1].item() != 0.0


def test_sltt_step_loss_by_hand():
    o = torch.tensor([[1.0, 0.0]])
    y = torch.tensor([0])
    ce = math.log(1 + math.exp(-1.0))
    one_hot = sltt_step_loss(o, y, T=2, mse_weight=0.5, mse_target="onehot").item()
    const = sltt_step_loss(o, y, T=2, mse_weight=0.5, mse_target="const").item()
    assert one_hot == pytest.approx((0.5 * ce + 0.5 * 0.0) / 2, rel=1e-6)
    assert const == pytest.approx((0.5 * ce + 0.5 * 0.5) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="onehot"):
        sltt_step_loss(o, y, T=2, mse_weight=0.5, mse_target="zeros")


class SavedBytes:
    """Live bytes of tensors autograd saved for backward, and their peak (pack/unpack hooks;
    a saved tensor is released when its graph is freed)."""

    def __init__(self):
        self.live = self.peak = 0

    def hooks(self):
        meter = self

        class Held:
            def __init__(self, t):
                self.t, self.n = t, t.numel() * t.element_size()
                meter.live += self.n
                meter.peak = max(meter.peak, meter.live)

            def __del__(self):
                meter.live -= self.n

        return torch.autograd.graph.saved_tensors_hooks(Held, lambda h: h.t)


def _peak_saved_bytes(neuron, T: int, sltt: bool) -> int:
    torch.manual_seed(0)
    model = vgg_snn(num_classes=4, size=16, width=1 / 16, neuron=neuron)
    x = torch.rand(T, 4, 2, 16, 16)
    y = torch.tensor([0, 1, 2, 3])
    meter = SavedBytes()
    with meter.hooks():
        if sltt:
            make_sltt_step()(model, x, y)
        else:
            tet_loss(model(x), y).backward()
    functional.reset_net(model)
    return meter.peak


def test_sltt_training_memory_is_flat_in_T_and_bptt_grows():
    sltt_2 = _peak_saved_bytes(SLTTNode, 2, sltt=True)
    sltt_8 = _peak_saved_bytes(SLTTNode, 8, sltt=True)
    bptt_2 = _peak_saved_bytes("lif", 2, sltt=False)
    bptt_8 = _peak_saved_bytes("lif", 8, sltt=False)
    assert sltt_8 <= sltt_2
    assert bptt_8 > 3 * bptt_2
    assert sltt_8 < bptt_8


def test_sltt_k_backpropagates_only_k_steps():
    torch.manual_seed(0)
    model = vgg_snn(num_classes=4, size=16, width=1 / 16, neuron=SLTTNode)
    x, y = torch.rand(5, 4, 2, 16, 16), torch.tensor([0, 1, 2, 3])
    losses = []
    orig = torch.Tensor.backward

    def counting(self, *a, **k):
        losses.append(float(self.detach()))
        return orig(self, *a, **k)

    torch.Tensor.backward = counting
    try:
        make_sltt_step(k=2)(model, x, y)
    finally:
        torch.Tensor.backward = orig
    assert len(losses) == 2


def test_sltt_step_skips_a_one_sample_batch_instead_of_crashing():
    # Per-step batch norm needs >= 2 samples; a trailing batch of one is skipped.
    torch.manual_seed(0)
    model = vgg_snn(num_classes=4, size=16, width=1 / 16, neuron=SLTTNode).train()
    assert make_sltt_step()(model, torch.rand(3, 1, 2, 16, 16), torch.tensor([1])) == 0.0
    assert all(p.grad is None for p in model.parameters())
