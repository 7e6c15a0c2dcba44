"""Metrics: accuracy per t, firing rates, MAC/AC counts and energy against hand counts."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter

from hsd.convert import ann_to_snn
from hsd.metrics import (
    E_AC_45NM,
    E_MAC_45NM,
    SpikeStats,
    _event_acs,
    accuracy_per_t,
    count_parameters,
    energy_joules,
)
from hsd.models import vgg_snn
from hsd.neurons import make_neuron


def test_accuracy_per_t_uses_cumulative_mean():
    logits = torch.tensor(
        [
            [[1.0, 0.0], [0.0, 1.0]],  # t=1: both right
            [[0.0, 3.0], [0.0, 0.0]],  # cum: [1, 3] wrong, [0, 1] right
            [[5.0, 0.0], [3.0, 0.0]],  # cum: [6, 3] right, [3, 1] wrong
        ]
    )
    acc = accuracy_per_t(logits, torch.tensor([0, 1]))
    assert acc.dtype == np.float64 and acc.tolist() == [1.0, 0.5, 0.5]
    with pytest.raises(ValueError, match=r"\[T, N, K\]"):
        accuracy_per_t(logits[0], torch.tensor([0, 1]))


class TwoLayer(nn.Module):
    """conv1 (1→2, identity kernel) → IF (θ = 1) → conv2 (2→3, 3×3, pad 1); time-first."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.sn = make_neuron("if")
        self.conv2 = nn.Conv2d(2, 3, 3, padding=1)
        with torch.no_grad():
            self.conv1.weight.zero_()
            self.conv1.weight[:, 0, 1, 1] = 1.0

    def forward(self, x):
        T, N = x.shape[:2]
        s = self.sn(self.conv1(x.flatten(0, 1)).unflatten(0, (T, N)))
        self.spikes = s
        return self.conv2(s.flatten(0, 1)).unflatten(0, (T, N))


def two_layer_input():
    # sample 0: corner (0,0) = 1, edge (0,1) = 1, interior (1,2) = .6; sample 1: silent
    img = torch.zeros(2, 1, 4, 4)
    img[0, 0, 0, 0] = img[0, 0, 0, 1] = 1.0
    img[0, 0, 1, 2] = 0.6
    return img.expand(2, *img.shape)  # T = 2


def test_two_layer_ops_firing_and_energy_by_hand():
    net = TwoLayer()
    with SpikeStats(net) as stats:
        net(two_layer_input())
    # spikes: t=1 corner+edge in 2 channels (4); t=2 corner+edge+interior (6); 32 neurons/sample
    rates = stats.firing_rates(per_t=True)["sn"]
    assert rates.tolist() == [4 / 64, 6 / 64]  # 2 samples
    assert stats.firing_rates()["sn"] == 5 / 64
    ops = stats.synaptic_ops()
    # conv1 sees analog frames: dense 2·4·4 outputs × 1·3·3 = 288 MACs per step
    assert ops["macs"].tolist() == [288.0, 576.0]
    # conv2: fan-out of a 3×3 pad-1 conv on 4×4 is 4 (corner) / 6 (edge) / 9 (interior), × 3
    # t=1: 2 ch × (4 + 6) × 3 = 60, t=2: 2 × (4 + 6 + 9) × 3 = 114; per sample (2 samples)
    assert ops["acs"].tolist() == [30.0, 87.0]
    assert ops["per_layer"]["conv1"]["kind"] == "mac"
    assert ops["per_layer"]["conv2"]["per_step"].tolist() == [30.0, 57.0]
    assert ops["T"] == 2 and ops["samples"] == 2
    e = energy_joules(ops["macs"], ops["acs"])
    assert np.allclose(e, [288 * 4.6e-12 + 30 * 0.9e-12, 576 * 4.6e-12 + 87 * 0.9e-12])
    assert (E_MAC_45NM, E_AC_45NM) == (4.6e-12, 0.9e-12)


def test_ac_count_agrees_with_spikingjelly_synop_counter():
    net = TwoLayer()
    with SpikeStats(net) as stats:
        net(two_layer_input())
    counter = SynOpCounter()
    with DispatchCounterMode([counter]):
        net.conv2(net.spikes.flatten(0, 1))  # binary spikes: SynOpCounter applies
    total = stats.synaptic_ops()["per_layer"]["conv2"]["per_step"].sum() * 2  # × samples
    assert counter.get_total() == total == 174


def converted_vgg():
    """A tiny converted VGG-SNN whose thresholds (λ = 0.5) let spikes through its random layers."""
    ann = vgg_snn(num_classes=4, size=16, width=0.125).eval()
    for m in ann.modules():
        if hasattr(m, "lam"):
            m.lam.data.fill_(0.5)
    return ann_to_snn(ann).eval()


def test_stats_accumulate_over_batches_as_per_sample_means():
    torch.manual_seed(0)
    snn = converted_vgg()
    x = torch.rand(3, 4, 2, 16, 16)
    with torch.no_grad(), SpikeStats(snn) as whole:
        snn(x)
    functional.reset_net(snn)
    with torch.no_grad(), SpikeStats(snn) as parts:
        for chunk in x.split(2, dim=1):
            snn(chunk)
            functional.reset_net(snn)
        with pytest.raises(ValueError, match="same T"):
            snn(x[:2])
    a, b = whole.synaptic_ops(), parts.synaptic_ops()
    assert b["samples"] == 4  # the refused batch left the counts alone
    assert np.allclose(a["acs"], b["acs"]) and np.allclose(a["macs"], b["macs"])
    assert a["acs"][-1] > 0 and np.all(np.diff(a["acs"]) >= 0)
    assert np.allclose(np.diff(a["macs"]), a["macs"][0])  # the analog layer costs the same each t
    rates = whole.firing_rates()
    assert len(rates) == 8 and all(0 <= r <= 1 for r in rates.values())
    assert whole.firing_rates() == pytest.approx(parts.firing_rates())
    assert 0 < whole.mean_firing_rate() <= 1


def test_ann_counts_dense_macs_only():
    ann = vgg_snn(num_classes=4, size=16, width=0.125)
    with torch.no_grad(), SpikeStats(ann) as stats:
        ann(torch.rand(3, 2, 16, 16))
    ops = stats.synaptic_ops()
    # Σ C_out·H·W·C_in·9 over the convs + FC 64·4, per image
    chans = [2, 8, 16, 32, 32, 64, 64, 64, 64]
    sides = [16, 16, 8, 8, 4, 4, 2, 2]
    expected = sum(chans[i + 1] * sides[i] ** 2 * chans[i] * 9 for i in range(8)) + 64 * 4
    assert ops["T"] == 1 and ops["macs"].tolist() == [expected] and ops["acs"].tolist() == [0]
    assert stats.firing_rates() == {}
    assert count_parameters(ann) == count_parameters(vgg_snn(4, size=16, width=0.125, neuron="if"))


class PoolNet(nn.Module):
    """conv 1×1 (identity, the analog layer) → IF (θ = 1) → AvgPool 2 → conv 1×1 (1→2), and
    → flatten → linear (4→3)."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv0.weight)
        self.sn = make_neuron("if")
        self.pool = nn.AvgPool2d(2)
        self.conv = nn.Conv2d(1, 2, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        T, N = x.shape[:2]
        v = self.conv0(x.flatten(0, 1)).unflatten(0, (T, N))
        p = self.pool(self.sn(v).flatten(0, 1))  # [T·N, 1, 2, 2]
        return self.conv(p).sum() + self.fc(p.flatten(1)).sum()


def test_pooled_spikes_cost_one_ac_per_spike_by_hand():
    # one sample, one step, a 4×4 spike map: pooled cells hold 4, 1, 0, 2 spikes
    x = torch.zeros(1, 1, 1, 4, 4)
    x[..., 0:2, 0:2] = 1.0  # 4 spikes in cell (0, 0)
    x[..., 0, 2] = 1.0  # 1 spike in cell (0, 1)
    x[..., 3, 2:4] = 1.0  # 2 spikes in cell (1, 1)
    counts = {}
    for ops in ("per-spike", "per-input"):
        net = PoolNet()
        with torch.no_grad(), SpikeStats(net, ops=ops) as stats:
            net(x)
        layers = stats.synaptic_ops()["per_layer"]
        counts[ops] = (layers["conv"]["per_step"][0], layers["fc"]["per_step"][0])
        assert stats.synaptic_ops()["convention"] == ops
    # per spike: 7 spikes × fan-out (conv 1×1: 2 outputs; fc: 3) = 14 and 21;
    # per input: 3 non-zero pooled values × 2 = 6, × 3 = 9 (the lower bound)
    assert counts["per-spike"] == (14.0, 21.0)
    assert counts["per-input"] == (6.0, 9.0)
    with pytest.raises(ValueError, match="valid: per-spike, per-input"):
        SpikeStats(PoolNet(), ops="per-cell")


def test_binary_spikes_without_pooling_count_the_same_in_both_conventions():
    net = TwoLayer()
    with SpikeStats(net, ops="per-input") as stats:
        net(two_layer_input())
    assert stats.synaptic_ops()["acs"].tolist() == [30.0, 87.0]


def test_vgg_layers_after_pools_count_more_per_spike_the_rest_the_same():
    torch.manual_seed(0)
    snn = converted_vgg()
    x = torch.rand(2, 3, 2, 16, 16)
    layers = {}
    for ops in ("per-spike", "per-input"):
        functional.reset_net(snn)
        with torch.no_grad(), SpikeStats(snn, ops=ops) as stats:
            snn(x)
        layers[ops] = {k: v["per_step"] for k, v in stats.synaptic_ops()["per_layer"].items()}
    # features: conv at 0, 3, 7, 10, 14, 17, 21, 24; pools at 6, 13, 20, 27; then the classifier
    after_pool = {"features.7", "features.14", "features.21", "classifier.1"}
    for name, per_spike in layers["per-spike"].items():
        per_input = layers["per-input"][name]
        if name in after_pool:
            assert np.all(per_spike >= per_input), name
        else:
            assert np.array_equal(per_spike, per_input), name
    # the first pool's cells hold several spikes (the deeper layers of this random net are quiet)
    assert layers["per-spike"]["features.7"].sum() > layers["per-input"]["features.7"].sum()


def test_no_forward_is_an_error():
    with pytest.raises(RuntimeError, match="no forward pass"):
        SpikeStats(TwoLayer()).synaptic_ops()


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(4, 6, 3, padding=1),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.Conv2d(4, 6, (3, 5), padding=(0, 2), dilation=(2, 1)),
        nn.Conv2d(4, 6, 3, padding=1, groups=2),
    ],
)
def test_event_acs_equal_an_all_ones_convolution_of_the_events(conv):
    # the counter sums events over channels and weights each position by its fan-out; the
    # definition is the all-ones convolution of the event map (pooled counts, not only 0/1)
    torch.manual_seed(0)
    events = torch.randint(0, 5, (3, 4, 9, 11)).float() * (torch.rand(3, 4, 9, 11) < 0.4)
    g = conv.groups
    ones = torch.ones(g, conv.in_channels // g, *conv.kernel_size)
    occupancy = torch.nn.functional.conv2d(
        events, ones, None, conv.stride, conv.padding, conv.dilation, g
    )
    expected = occupancy.flatten(1).sum(1).double() * (conv.out_channels // g)
    assert torch.equal(_event_acs(conv, events, events), expected)
    assert torch.equal(
        _event_acs(conv, events),
        expected.new_tensor(
            torch.nn.functional.conv2d(
                (events != 0).float(), ones, None, conv.stride, conv.padding, conv.dilation, g
            )
            .flatten(1)
            .sum(1)
            .double()
            * (conv.out_channels // g)
        ),
    )
