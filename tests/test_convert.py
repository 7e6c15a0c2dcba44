"""ANN → SNN conversion: thresholds, weights, errors, and convergence of SNN logits to the ANN's."""

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional

from hsd.convert import ann_to_snn, load_ann_state, qcfs_thresholds
from hsd.models import snn5, vgg_snn
from hsd.neurons import QCFS, ConvertedIFNode


def tiny_ann(arch="vgg", L=8):
    if arch == "vgg":
        return vgg_snn(num_classes=5, size=16, width=0.125, L=L)
    return snn5(num_classes=3, size=32, width=0.0625, L=L)


@pytest.mark.parametrize("arch", ["vgg", "snn5"])
def test_thresholds_weights_and_ann_untouched(arch):
    torch.manual_seed(0)
    ann = tiny_ann(arch)
    for i, q in enumerate(m for m in ann.modules() if isinstance(m, QCFS)):
        q.lam.data.fill_(0.5 + i)
    before = {k: v.clone() for k, v in ann.state_dict().items()}
    snn = ann_to_snn(ann)
    assert snn.spiking and snn.spec["neuron"] == "if-converted"
    mods = dict(snn.named_modules())
    for name, lam in qcfs_thresholds(ann).items():
        node = mods[name]
        assert isinstance(node, ConvertedIFNode)
        assert node.v_threshold == lam and node.v == lam / 2 and node.v_reset is None
    for k, v in snn.state_dict().items():
        assert torch.equal(v, before[k]) and v.data_ptr() != ann.state_dict()[k].data_ptr()
    # the ANN is untouched, also after the SNN trains a step
    snn(torch.rand(2, 1, 2, *(2 * [ann.spec["size"]]))).sum().backward()
    next(snn.parameters()).data.add_(1.0)
    assert all(torch.equal(v, before[k]) for k, v in ann.state_dict().items())
    assert snn.training == ann.training


def calibrate(ann, x):
    """Set each λ to the 99th percentile of its positive pre-activations (layer by layer), a
    stand-in for training so the quantization window covers the activations."""
    for q in [m for m in ann.modules() if isinstance(m, QCFS)]:
        seen = []
        h = q.register_forward_pre_hook(lambda mod, inp, seen=seen: seen.append(inp[0].detach()))
        with torch.no_grad():
            ann(x)
        h.remove()
        z = seen[0][seen[0] > 0]
        q.lam.data.fill_(float(z.quantile(0.99)))


def conversion_error(ann, snn, x, Ts):
    """The ANN's output on `x`, and per T the mean |SNN mean output over T steps − ANN output|."""
    with torch.no_grad():
        target = ann(x)
        err = {}
        for T in Ts:
            functional.reset_net(snn)
            err[T] = (snn(x.expand(T, *x.shape)).mean(0) - target).abs().mean().item()
    return target, err


def test_snn_logits_approach_ann_as_T_grows():
    torch.manual_seed(0)
    ann = tiny_ann("vgg", L=8).eval()
    x = torch.rand(16, 2, 16, 16)
    calibrate(ann, x)
    snn = ann_to_snn(ann)
    target, err = conversion_error(ann, snn, x, (4, 64))
    scale = target.abs().mean().item()
    assert err[64] < 0.5 * err[4], err
    assert err[64] < 0.1 * scale, (err, scale)


def test_one_qcfs_layer_exact_for_T_equal_L_through_conversion():
    # a one-activation "network": BN (eval, identity) + QCFS; inputs inside the window
    torch.manual_seed(0)
    ann = tiny_ann("vgg", L=8).eval()
    q = ann.features[2]
    q.lam.data.fill_(2.0)
    snn = ann_to_snn(ann)
    node = snn.features[2]
    z = torch.rand(3, 8, 4, 4) * 2.0
    assert torch.allclose(node(z.expand(8, *z.shape)).mean(0), q(z).detach(), atol=1e-6)


def test_rejects_non_qcfs_models_and_foreign_state_dicts():
    with pytest.raises(ValueError, match="needs a QCFS ANN"):
        ann_to_snn(vgg_snn(size=16, width=0.125, neuron="if"))
    with pytest.raises(ValueError, match="no QCFS activation to convert"):
        ann_to_snn(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="surrogate 'tanh' unknown; valid: normalized, raw"):
        ann_to_snn(tiny_ann(), surrogate="tanh")
    snn = vgg_snn(num_classes=5, size=16, width=0.125, neuron="if")
    with pytest.raises(ValueError, match=r"shape mismatch.*classifier\.1\.weight"):
        load_ann_state(snn, vgg_snn(num_classes=7, size=16, width=0.125).state_dict())
    with pytest.raises(
        ValueError,
        match=r"(?s)missing in the state dict: classifier.*not in the SNN: classifier\.2",
    ):
        load_ann_state(snn, snn5(num_classes=5, size=32, width=0.125).state_dict())
    load_ann_state(snn, vgg_snn(num_classes=5, size=16, width=0.125).state_dict())


class ResBlock(nn.Module):
    """conv-BN-QCFS-conv-BN + identity, then QCFS: a torchvision-style basic block."""

    def __init__(self, c, L):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.act1 = QCFS(L, lam=2.0)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.act2 = QCFS(L, lam=2.0)

    def forward(self, x):
        return self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))) + x)


class TinyResNet(nn.Module):
    def __init__(self, L=8, c=4, k=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, c, 3, padding=1), nn.BatchNorm2d(c), QCFS(L, 2.0))
        self.blocks = nn.Sequential(ResBlock(c, L), ResBlock(c, L))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, k))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def test_any_qcfs_model_converts_first_layer_exact_for_T_equal_L():
    torch.manual_seed(0)
    L = 8
    ann = TinyResNet(L).eval()
    snn = ann_to_snn(ann)
    assert not any(isinstance(m, QCFS) for m in snn.modules())
    nodes = [m for m in snn.modules() if isinstance(m, ConvertedIFNode)]
    assert len(nodes) == 5 and all(n.v_threshold == 2.0 and n.step_mode == "s" for n in nodes)
    seen_ann, seen_snn = [], []
    ann.stem[2].register_forward_hook(lambda m, i, o: seen_ann.append(o))
    snn.net.stem[2].register_forward_hook(lambda m, i, o: seen_snn.append(o))
    x = torch.rand(3, 2, 6, 6)
    with torch.no_grad():
        ann(x)
        out = snn(x.expand(L, *x.shape))
    assert out.shape == (L, 3, 3)
    # the stem's IF sees a constant input for L steps: its mean output is the QCFS output
    assert len(seen_snn) == L
    assert torch.allclose(torch.stack(seen_snn).mean(0), seen_ann[0], atol=1e-6)
    # the ANN is untouched: its activations are still QCFS
    assert isinstance(ann.stem[2], QCFS) and isinstance(ann.blocks[0].act1, QCFS)


def test_any_qcfs_model_matches_the_ann_for_large_T():
    torch.manual_seed(1)
    ann = TinyResNet(L=8).eval()
    x = torch.rand(8, 2, 6, 6)
    calibrate(ann, x)  # else the SNN converges to the unquantized net, far from a coarse ANN
    snn = ann_to_snn(ann)
    target, err = conversion_error(ann, snn, x, (4, 64))
    assert err[64] < 0.5 * err[4], err
    assert err[64] < 0.02 * target.abs().mean().item(), err
    # trains: gradients reach the first conv through every step and the residual paths
    snn.train()
    functional.reset_net(snn)
    snn(x.expand(4, *x.shape)).sum().backward()
    assert snn.net.stem[0].weight.grad.abs().sum() > 0
