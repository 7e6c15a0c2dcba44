"""The one training engine: state reset, divergence, checkpoints with exact resume, selection."""

import math

import pytest
import torch
from spikingjelly.activation_based import functional
from torch import nn

from hsd.engine import EPOCH_FIELDS, DivergedError, Stage, evaluate, fit, train_one_epoch
from hsd.models import vgg_snn


def tiny_snn(seed=0):
    torch.manual_seed(seed)
    return vgg_snn(num_classes=3, in_channels=2, size=16, width=1 / 16, neuron="if")


def batches_for(seed, n_batches=3, T=2, N=6):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(T, N, 2, 16, 16, generator=g) * 2, torch.randint(0, 3, (N,), generator=g))
        for _ in range(n_batches)
    ]


def membrane_states(model):
    return [m.v for m in model.modules() if hasattr(m, "v_threshold")]


def test_neuron_state_is_reset_even_when_the_loss_raises():
    model = tiny_snn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def exploding_loss(m, x, y):
        m(x)  # leaves membrane tensors behind
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        train_one_epoch(model, batches_for(0), opt, loss_fn=exploding_loss)
    # reset_net ran in the finally: every membrane is back to its scalar reset value
    assert all(not isinstance(v, torch.Tensor) for v in membrane_states(model))


def test_nan_loss_raises_diverged():
    model = tiny_snn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def nan_loss(m, x, y):
        return m(x).sum() * math.nan

    with pytest.raises(DivergedError, match="nan"):
        train_one_epoch(model, batches_for(0), opt, loss_fn=nan_loss)


def test_exactly_one_of_loss_or_step():
    model = tiny_snn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        train_one_epoch(model, [], opt)


def test_evaluate_is_repeatable_and_reports_every_t():
    model = tiny_snn()
    batches = batches_for(1, T=4)
    a, b = evaluate(model, batches), evaluate(model, batches)
    assert a.T == 4 and a.samples == 18
    assert (a.acc == b.acc).all() and (a.acs == b.acs).all()
    assert (a.macs[1:] >= a.macs[:-1]).all()  # cumulative over t


def ce_loss(m, x, y):
    return nn.functional.cross_entropy(m(x).mean(0), y)


def make_stage(model, epochs):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return Stage(
        "train",
        model,
        opt,
        epochs,
        lambda e: batches_for(100 + e),
        lambda: batches_for(7),
        loss_fn=ce_loss,
    )


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path):
    straight = tiny_snn()
    fit(make_stage(straight, 3), run_id="r", device=torch.device("cpu"))

    class Killed(Exception):
        pass

    before = []

    def kill_after_epoch_2(stage, epoch, epochs, record):
        before.append(dict(record))
        if epoch == 2:  # the checkpoint of epoch 2 is already on disk
            raise Killed

    with pytest.raises(Killed):
        fit(
            make_stage(tiny_snn(), 3),
            run_id="r",
            device=torch.device("cpu"),
            checkpoint_dir=tmp_path,
            on_epoch=kill_after_epoch_2,
        )
    seen, trained = [], []
    resumed = tiny_snn(seed=123)  # a fresh process would build a fresh model
    stage = make_stage(resumed, 3)
    batches = stage.train_batches
    stage.train_batches = lambda e: trained.append(e) or batches(e)
    fit(
        stage,
        run_id="r",
        device=torch.device("cpu"),
        checkpoint_dir=tmp_path,
        on_epoch=lambda s, e, n, rec: seen.append(rec),
    )
    assert trained == [3]  # only the epoch that was lost is trained again
    # ... but the callback sees the whole curve: epochs 1-2 replayed from the checkpoint as they
    # were first reported, then epoch 3
    assert seen[:2] == before and [r["epoch"] for r in seen] == [1, 2, 3]
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_checkpoint_of_another_run_or_architecture_is_refused(tmp_path):
    fit(make_stage(tiny_snn(), 1), run_id="r", device=torch.device("cpu"), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="belongs to run"):
        fit(
            make_stage(tiny_snn(), 2),
            run_id="other",
            device=torch.device("cpu"),
            checkpoint_dir=tmp_path,
        )
    torch.manual_seed(0)
    wider = vgg_snn(num_classes=3, in_channels=2, size=16, width=1 / 8, neuron="if")
    with pytest.raises(ValueError, match="another architecture"):
        fit(make_stage(wider, 2), run_id="r", device=torch.device("cpu"), checkpoint_dir=tmp_path)


def test_the_best_validation_epoch_is_kept():
    model = tiny_snn()
    history = fit(make_stage(model, 3), run_id="r", device=torch.device("cpu"))["history"]
    best = max(h["val_acc"] for h in history)
    assert evaluate(model, batches_for(7)).acc[-1] == pytest.approx(best)
    functional.reset_net(model)


def test_a_checkpoint_from_before_learning_curves_resumes_with_its_epochs(tmp_path):
    class Killed(Exception):
        pass

    def kill_after_epoch_2(stage, epoch, epochs, record):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(
            make_stage(tiny_snn(), 3),
            run_id="r",
            device=torch.device("cpu"),
            checkpoint_dir=tmp_path,
            on_epoch=kill_after_epoch_2,
        )
    path = tmp_path / "train.pt"
    ck = torch.load(path, weights_only=True)
    # the history as checkpoints kept it before: loss, validation accuracy, seconds
    ck["history"] = [
        {"epoch": 1, "loss": 1.5, "val_acc": 0.5, "epoch_s": 2.0},
        {"epoch": 2, "loss": 1.25, "val_acc": 0.25, "epoch_s": 3.0},
    ]
    torch.save(ck, path)
    seen = []
    fit(
        make_stage(tiny_snn(), 3),
        run_id="r",
        device=torch.device("cpu"),
        checkpoint_dir=tmp_path,
        on_epoch=lambda s, e, n, rec: seen.append(rec),
    )
    old = [(r["train_loss"], r["seconds"], r["best_epoch"], r["train_acc"]) for r in seen[:2]]
    assert old == [(1.5, 2.0, 1, None), (1.25, 3.0, 1, None)]
    assert set(seen[0]) == set(EPOCH_FIELDS) and seen[2]["epoch"] == 3


def test_a_divergence_leaves_fit_with_its_stage_and_epoch():
    stage = make_stage(tiny_snn(), 2)
    stage.loss_fn = lambda m, x, y: ce_loss(m, x, y) * math.inf
    with pytest.raises(DivergedError) as err:
        fit(stage, run_id="r", device=torch.device("cpu"))
    assert (err.value.stage, err.value.epoch, err.value.loss) == ("train", 1, math.inf)
