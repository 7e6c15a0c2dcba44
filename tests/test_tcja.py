"""TCJA block: parameter count, shape, the joint attention by hand, and the authors' placement."""

import pytest
import torch
from spikingjelly.activation_based.neuron import LIFNode
from spikingjelly.activation_based.surrogate import PiecewiseQuadratic
from torch import nn

import baselines  # noqa: F401  (registers every method)
from baselines.tcja import TCJA, tcja_blocks, tcja_loss, tcja_neuron
from hsd.config import ConfigError, RunConfig
from hsd.method import resolve
from hsd.metrics import SpikeStats
from hsd.models import count_parameters, snn5, vgg_snn
from hsd.neurons import make_neuron


@pytest.mark.parametrize("T,C,kt,kc", [(5, 8, 4, 4), (10, 512, 4, 4), (3, 6, 2, 3)])
def test_tcja_parameter_count(T, C, kt, kc):
    block = TCJA(T, C, kt, kc)
    assert sum(p.numel() for p in block.parameters()) == T * T * kt + C * C * kc


def test_tcja_preserves_shape_and_refuses_other_T():
    torch.manual_seed(0)
    block = TCJA(4, 6)
    x = torch.rand(4, 3, 6, 5, 5)
    assert block(x).shape == x.shape
    with pytest.raises(ValueError, match="T=4"):
        block(torch.rand(5, 3, 6, 5, 5))


def test_tcja_by_hand_with_unit_kernels():
    # k_t = k_c = 1: A[n,t,c] = Σ_t' Wt[t,t']·Z[n,t',c];  B[n,t,c] = Σ_c' Wc[c,c']·Z[n,t,c'].
    torch.manual_seed(0)
    T, N, C = 3, 2, 4
    block = TCJA(T, C, 1, 1)
    x = torch.rand(T, N, C, 2, 2)
    wt = block.conv_t.weight[:, :, 0]
    wc = block.conv_c.weight[:, :, 0]
    z = x.mean(dim=(3, 4))  # [T, N, C]
    expect = torch.empty_like(x)
    for t in range(T):
        for n in range(N):
            for c in range(C):
                a = sum(wt[t, u] * z[u, n, c] for u in range(T))
                b = sum(wc[c, d] * z[t, n, d] for d in range(C))
                expect[t, n, c] = x[t, n, c] * torch.sigmoid(a * b)
    torch.testing.assert_close(block(x), expect)


def test_tcja_placement_vgg_after_blocks_6_and_8_before_pool():
    model = vgg_snn(
        num_classes=10, size=16, width=1 / 16, neuron="lif", block_extra=tcja_blocks("vgg", 5)
    )
    layers = list(model.features)
    idx = [i for i, m in enumerate(layers) if isinstance(m, TCJA)]
    assert len(idx) == 2
    convs_before = [sum(isinstance(m, nn.Conv2d) for m in layers[:i]) for i in idx]
    assert convs_before == [6, 8]
    assert all(isinstance(layers[i + 1], nn.AvgPool2d) for i in idx)
    base = vgg_snn(num_classes=10, size=16, width=1 / 16, neuron="lif")
    c6, c8 = (layers[i].channels for i in idx)
    assert count_parameters(model) - count_parameters(base) == 2 * 25 * 4 + (c6**2 + c8**2) * 4
    assert model(torch.rand(5, 2, 2, 16, 16)).shape == (5, 2, 10)


def test_tcja_placement_snn5_after_blocks_4_and_5():
    model = snn5(
        num_classes=11, size=32, width=1 / 16, neuron="lif", block_extra=tcja_blocks("snn5", 4)
    )
    layers = list(model.features)
    idx = [i for i, m in enumerate(layers) if isinstance(m, TCJA)]
    assert [sum(isinstance(m, nn.Conv2d) for m in layers[:i]) for i in idx] == [4, 5]


def test_tcja_loss_by_hand():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])  # mean = [1, 0]
    y = torch.tensor([1])
    assert tcja_loss(logits, y, "mse").item() == pytest.approx((1.0 + 1.0) / 2)
    with pytest.raises(ValueError, match="mse"):
        tcja_loss(logits, y, "hinge")


class TinyTCJANet(nn.Module):
    """conv 1×1 (analog) → LIF → TCJA(T=2, C=3, k_t = k_c = 2) → conv 1×1; time-first."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(1, 3, 1)
        self.sn = make_neuron("lif")
        self.tcja = TCJA(2, 3, 2, 2)
        self.conv1 = nn.Conv2d(3, 1, 1)

    def forward(self, x):
        T, N = x.shape[:2]
        s = self.tcja(self.sn(self.conv0(x.flatten(0, 1)).unflatten(0, (T, N))))
        return self.conv1(s.flatten(0, 1))


def test_tcja_counted_as_macs_by_hand():
    net = TinyTCJANet()
    x = torch.rand(2, 4, 1, 2, 2)  # T = 2, N = 4, 2×2
    with torch.no_grad(), SpikeStats(net) as stats:
        net(x)
    ops = stats.synaptic_ops()
    # per sample per step: conv_t C·T·k_t = 3·2·2 = 12, conv_c C²·k_c = 9·2 = 18,
    # A ⊙ B C = 3, X ⊙ M C·H·W = 12 → 45 MACs; conv0 dense: 3·2·2 outputs × 1 = 12 MACs
    assert ops["per_layer"]["tcja"] == {"kind": "mac", "per_step": pytest.approx([45.0, 45.0])}
    assert ops["macs"].tolist() == [57.0, 114.0]
    # the Conv1d layers inside the block are not counted a second time
    assert not any(name.startswith("tcja.") for name in ops["per_layer"])


def test_tcja_neuron_is_the_authors_lif():
    cfg = resolve(RunConfig("tcja", "n-digits", 2))
    assert cfg.option("decay_input") is True and cfg.option("detach_reset") is True
    n = tcja_neuron(cfg)()
    assert isinstance(n, LIFNode) and n.decay_input and n.detach_reset
    assert n.tau == 2.0 and n.v_reset == 0.0 and n.v_threshold == 1.0
    assert isinstance(n.surrogate_function, PiecewiseQuadratic) and n.surrogate_function.alpha == 1
    tet_style = tcja_neuron(cfg.replace(options={"decay_input": False, "detach_reset": False}))()
    assert not tet_style.decay_input and not tet_style.detach_reset
    with pytest.raises(ConfigError, match="decay_input=false"):
        resolve(RunConfig("tcja", "n-digits", 2, neuron="if"))
    with pytest.raises(ConfigError, match="detach_reset=maybe: 'maybe' is not true or false"):
        resolve(RunConfig("tcja", "n-digits", 2, options={"detach_reset": "maybe"}))
    # every spelling of a boolean is one value, hence one run id
    no = resolve(RunConfig("tcja", "n-digits", 2, options={"detach_reset": False}))
    assert resolve(RunConfig("tcja", "n-digits", 2, options={"detach_reset": "no"})) == no
