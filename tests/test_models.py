"""Model specs: parameter counts, shapes, names shared by ANN and SNN, reset, every grad."""

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import base, functional

from hsd.models import MODELS, build_model, count_parameters, snn5, vgg_snn
from hsd.neurons import NEURONS, QCFS, make_neuron
from hsd.registry import UnknownNameError

# Every registered neuron kind (plugins included: SLTT's comes through an entry point) and the ANN.
SPIKING = NEURONS.names()
KINDS = ["qcfs", *SPIKING]
TINY = {"vgg": dict(size=16, width=0.125), "snn5": dict(size=32, width=0.0625)}


def tiny(arch, neuron, **kw):
    return build_model(arch, 5, 2, TINY[arch]["size"], TINY[arch]["width"], neuron, 4, **kw)


def test_vgg_snn_parameter_count_is_exactly_9271498():
    assert count_parameters(vgg_snn(num_classes=10, in_channels=2, size=48)) == 9_271_498
    assert count_parameters(vgg_snn(neuron="if")) == 9_271_498
    # the 8 QCFS thresholds are excluded unless asked for
    assert count_parameters(vgg_snn(), include_thresholds=True) == 9_271_498 + 8


def test_snn5_parameter_count():
    # 5 convs (2→128, 4×128→128, 3×3, bias) + 5 BN + FC 2048→512 + FC 512→110, all with bias
    expected = (2 * 128 * 9 + 128) + 4 * (128 * 128 * 9 + 128) + 5 * 256
    expected += 2048 * 512 + 512 + 512 * 110 + 110
    assert count_parameters(snn5()) == expected == 1_699_566


@pytest.mark.parametrize("arch", ["vgg", "snn5"])
def test_ann_and_snn_share_module_names(arch):
    ann, snn = tiny(arch, "qcfs"), tiny(arch, "if")
    ann_keys = {k for k in ann.state_dict() if not k.endswith(".lam")}
    assert ann_keys == set(snn.state_dict())
    lam_keys = [k for k in ann.state_dict() if k.endswith(".lam")]
    assert len(lam_keys) == (8 if arch == "vgg" else 6)
    snn.load_state_dict({k: v for k, v in ann.state_dict().items() if k in ann_keys})


@pytest.mark.parametrize("arch", ["vgg", "snn5"])
@pytest.mark.parametrize("neuron", KINDS)
def test_forward_backward_every_parameter_gets_a_gradient(arch, neuron):
    torch.manual_seed(0)
    m = tiny(arch, neuron)
    size = TINY[arch]["size"]
    if neuron == "qcfs":
        for q in m.modules():
            if isinstance(q, QCFS):
                q.lam.data.fill_(1.0)  # λ near the activation scale so the window is used
        x = torch.rand(6, 2, size, size) * 4
        out, want = m(x), (6, 5)
    else:
        x = torch.rand(3, 2, 2, size, size) * 4
        out, want = m(x), (3, 2, 5)
    assert out.shape == want and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    first = m.features[0].weight.grad
    assert first.abs().sum() > 0, "gradient did not reach the first conv"


@pytest.mark.parametrize("arch", ["vgg", "snn5"])
@pytest.mark.parametrize("neuron", SPIKING)
def test_same_batch_twice_identical_after_reset(arch, neuron):
    torch.manual_seed(0)
    m = tiny(arch, neuron).eval()
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.weight.data.fill_(3.0)  # keep spikes alive through the tiny random net
    size = TINY[arch]["size"]
    x = torch.rand(4, 2, 2, size, size) * 3
    memories = [mod for mod in m.modules() if isinstance(mod, base.MemoryModule)]
    with torch.no_grad():
        y1 = m(x)
        # a kind with memory (all but if-lean, which starts every sequence afresh) now holds state
        held = [v for mod in memories for _, v in mod.named_memories() if torch.is_tensor(v)]
        assert not held or any(v.abs().sum() > 0 for v in held)
        functional.reset_net(m)
        y2 = m(x)
    assert torch.equal(y1, y2)


def test_snn_dropout_mask_shared_across_time_steps():
    torch.manual_seed(0)
    m = tiny("snn5", "if").train()
    drop = m.classifier[1]
    x = torch.ones(4, 3, 20)
    y = drop(x)
    assert torch.equal(y[0], y[3]) and (y == 0).any()
    functional.reset_net(m)
    assert not torch.equal(drop(x)[0], y[0])


def test_forward_features_shapes():
    x = torch.rand(3, 2, 2, 16, 16)
    assert tiny("vgg", "if").forward_features(x).shape == (3, 2, 64, 1, 1)
    assert tiny("vgg", "qcfs").forward_features(x[0]).shape == (2, 64, 1, 1)
    x5 = torch.rand(3, 2, 2, 32, 32)
    assert tiny("snn5", "lif").forward_features(x5).shape == (3, 2, 8, 1, 1)


class Recorder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c, self.shapes = c, []
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return x * self.scale


def test_block_extra_after_activation_before_pool_gets_time_first_input():
    made = {}

    def factory(i):
        def f(c):
            made[i] = Recorder(c)
            return made[i]

        return f

    m = vgg_snn(
        num_classes=5,
        size=48,
        width=0.125,
        neuron="lif",
        block_extra={6: factory(6), 8: factory(8)},
    )
    i6 = list(m.features).index(made[6])
    assert isinstance(m.features[i6 - 1], type(m.features[2]))  # right after the neuron
    assert isinstance(m.features[i6 + 1], nn.AvgPool2d)  # right before the pool
    m(torch.rand(2, 3, 2, 48, 48)).sum().backward()
    # block 6: 512·0.125 = 64 channels at 12×12 (pools after blocks 2, 4), T=2, N=3
    assert made[6].shapes == [(2, 3, 64, 12, 12)] and made[8].shapes == [(2, 3, 64, 6, 6)]
    assert made[6].scale.grad is not None
    assert count_parameters(m) == count_parameters(vgg_snn(num_classes=5, size=48, width=0.125)) + 2


def test_bad_specs_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by 16"):
        vgg_snn(size=40)
    with pytest.raises(ValueError, match="divisible by 32"):
        snn5(size=48)
    with pytest.raises(ValueError, match="width"):
        vgg_snn(width=0)
    with pytest.raises(ValueError, match="unknown neuron 'relu'"):
        vgg_snn(neuron="relu")
    with pytest.raises(ValueError, match="block_extra keys"):
        snn5(block_extra={6: nn.Identity})
    with pytest.raises(UnknownNameError, match="valid: snn5, vgg"):
        build_model("resnet", 10, 2, 48, 1.0, "if", 16)
    assert MODELS.names() == ["snn5", "vgg"]


def test_wrong_input_rank_is_explained():
    with pytest.raises(ValueError, match=r"5-D input \[T, N, C, H, W\]"):
        tiny("vgg", "if")(torch.rand(2, 2, 16, 16))
    with pytest.raises(ValueError, match="4-D input"):
        tiny("vgg", "qcfs")(torch.rand(1, 2, 2, 16, 16))
    with pytest.raises(ValueError, match="2 channels of 16×16"):
        tiny("vgg", "qcfs")(torch.rand(1, 2, 32, 32))


def test_neuron_options_and_custom_neuron_callable():
    m = vgg_snn(size=16, width=0.125, neuron="lif", neuron_kw={"decay": 0.25, "v_reset": None})
    assert m.features[2].tau == pytest.approx(1 / 0.75) and m.features[2].v_reset is None
    calls = []

    def custom():
        calls.append(1)
        return make_neuron("if", v_threshold=0.5)

    m = snn5(num_classes=3, size=32, width=0.0625, neuron=custom)
    assert m.spiking and len(calls) == 6
    assert m(torch.rand(2, 1, 2, 32, 32)).shape == (2, 1, 3)


def test_avgpool2x2_equals_the_pooling_kernel_forward_and_backward():
    from hsd.models import AvgPool2x2

    torch.manual_seed(0)
    for shape in [(3, 4, 8, 6), (2, 5, 3, 4, 4), (2, 3, 5, 7)]:  # the last one odd: the kernel
        x = torch.randn(*shape, requires_grad=True)
        ref = x.detach().clone().requires_grad_()
        out = AvgPool2x2()(x)
        n = ref.shape[0] if ref.dim() == 4 else ref.shape[0] * ref.shape[1]
        expected = torch.nn.functional.avg_pool2d(ref.reshape(n, *ref.shape[-3:]), 2)
        expected = expected.reshape(*shape[:-2], *expected.shape[-2:])
        assert torch.allclose(out, expected, atol=1e-6)
        g = torch.randn_like(out)
        out.backward(g)
        expected.backward(g)
        assert torch.allclose(x.grad, ref.grad, atol=1e-6)
