"""Per-sample outcomes of an evaluation: each sample's cumulative operations (SpikeStats) and the
prediction / confidence / margin of the cumulative mean logits at every t (hsd.engine)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_metrics import TwoLayer, two_layer_input

from hsd.engine import evaluate, sample_record
from hsd.metrics import SpikeStats


def test_per_sample_ops_by_hand_and_mean_is_synaptic_ops():
    net = TwoLayer()
    with SpikeStats(net, per_sample=True) as stats:
        net(two_layer_input())
    per = stats.per_sample_ops()
    # sample 0 (see test_metrics): conv2 ACs 60 at t=1 and 114 at t=2; sample 1 is silent
    assert per["acs"].tolist() == [[60.0, 174.0], [0.0, 0.0]]
    assert per["macs"].tolist() == [[288.0, 576.0], [288.0, 576.0]]
    ops = stats.synaptic_ops()
    assert np.allclose(per["acs"].mean(0), ops["acs"]) and np.allclose(
        per["macs"].mean(0), ops["macs"]
    )


def test_per_sample_ops_keep_sample_order_over_batches():
    net = TwoLayer()
    x = two_layer_input()
    with SpikeStats(net, per_sample=True) as stats:
        net(x[:, 1:])  # the silent sample first
        net(x[:, :1])
    assert stats.per_sample_ops()["acs"].tolist() == [[0.0, 0.0], [60.0, 174.0]]


def test_per_sample_ops_need_the_flag():
    net = TwoLayer()
    with SpikeStats(net) as stats:
        net(two_layer_input())
    with pytest.raises(RuntimeError, match="per_sample=True"):
        stats.per_sample_ops()


def test_sample_record_uses_softmax_of_cumulative_mean():
    logits = torch.tensor(
        [
            [[2.0, 0.0, 0.0]],  # t=1: mean [2, 0, 0]
            [[0.0, 4.0, 0.0]],  # t=2: mean [1, 2, 0]
        ]
    )
    ops = {"macs": np.zeros((1, 2)), "acs": np.zeros((1, 2))}
    r = sample_record(logits, torch.tensor([1]), ops)
    p1 = np.exp([2, 0, 0]) / np.exp([2, 0, 0]).sum()
    p2 = np.exp([1, 2, 0]) / np.exp([1, 2, 0]).sum()
    assert r.pred.tolist() == [[0, 1]] and r.label.tolist() == [1]
    assert r.confidence[0].tolist() == pytest.approx([p1.max(), p2.max()], abs=1e-6)
    assert r.margin[0].tolist() == pytest.approx([p1[0] - p1[1], p2[1] - p2[0]], abs=1e-6)
    assert r.pred.shape == r.confidence.shape == r.margin.shape == (1, 2)


def test_evaluate_keeps_test_and_validation_outcomes():
    torch.manual_seed(0)
    net = TwoLayer()
    x = torch.rand(3, 4, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 0])
    head = TwoLayerHead(net)
    ev = evaluate(head, [(x, y)], val_batches=[(x[:, :2], y[:2])])
    test, val = ev.per_sample["test"], ev.per_sample["val"]
    assert test.pred.shape == (4, 3) and val.pred.shape == (2, 3)
    # the per-sample view agrees with the aggregate counts and accuracies of the same pass
    assert np.allclose(test.acs.mean(0), ev.acs) and np.allclose(test.macs.mean(0), ev.macs)
    acc = (test.pred == test.label[:, None]).mean(0)
    assert np.allclose(acc, ev.acc)
    # validation is the same model on the first two samples: same outcomes
    np.testing.assert_array_equal(val.pred, test.pred[:2])
    assert np.allclose(val.acs, test.acs[:2]) and math.isclose(ev.samples, 4)
    assert "val" not in evaluate(head, [(x, y)]).per_sample


class TwoLayerHead(torch.nn.Module):
    """TwoLayer with its output averaged to 3 logits per step: [T, N, 3]."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x).mean((-1, -2))
