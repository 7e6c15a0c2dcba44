"""Learning curves: the file format (round trip, refusal of other files), what the trial writes
(every epoch, a resume, a divergence), the status table's flags on synthetic curves and on an old
store without curves, the curve plot, and one real training that leaves a complete curve."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_aggregate import write_fixed_store
from test_engine import batches_for, make_stage, tiny_snn

from harness.common import curves
from harness.common.store import ResultStore
from harness.common.sweeps import Trial
from harness.executors import ExecOptions
from harness.report import aggregate, plots
from harness.report.build import main as report_main
from harness.report.tables import build_tables
from harness.trial import run_trial
from hsd.config import RunConfig
from hsd.engine import EPOCH_FIELDS, DivergedError, fit, validate
from hsd.neurons import is_spiking_neuron

CPU = torch.device("cpu")


def record(epoch, loss, val, rates=None, best=None, acc=0.5):
    return {
        "epoch": epoch,
        "train_loss": loss,
        "train_acc": acc,
        "val_acc": val,
        "lr": 1e-3,
        "firing_rates": rates if rates is not None else {"features.2": 0.1, "features.6": 0.05},
        "firing_rate": 0.07 if rates is None else None,
        "seconds": 0.25,
        "best_epoch": best if best is not None else epoch,
    }


def synthetic(run_id, dataset="n-digits", seed=0, losses=(2.0, 1.5, 1.2), rates=None, best=None):
    """A two-stage curve: an ANN 'pretrain' stage (no spikes), then 'finetune' with `losses`;
    `rates` are the finetune firing rates per epoch (default: healthy everywhere)."""
    c = curves.new_curve(
        run_id, {"method": "hsd", "dataset": dataset, "T": 2, "seed": seed}, [["latency", "hsd"]]
    )
    for e in (1, 2):
        curves.add_epoch(c, "pretrain", e, 2, record(e, 3.0 - e, 0.3 * e, rates={}))
    for e, loss in enumerate(losses, start=1):
        r = record(e, loss, 0.5 + 0.1 * e, None if rates is None else rates[e - 1], best)
        curves.add_epoch(c, "finetune", e, len(losses), r)
    return c


def test_curve_file_round_trip_and_replayed_epochs(tmp_path):
    path = curves.curve_path(tmp_path, "r1")
    writer = curves.CurveWriter(path, "r1", {"method": "hsd", "seed": 0}, [("latency", "hsd")])
    writer("pretrain", 1, 2, record(1, 2.0, 0.4, rates={}))
    writer("pretrain", 2, 2, record(2, 1.0, 0.3, rates={}, best=1))
    writer("finetune", 1, 3, record(1, 0.9, 0.6))
    writer("finetune", 1, 3, record(1, 0.9, 0.6))  # the same epoch replayed after a restart
    writer.diverged("finetune", 2, math.nan)
    loaded = curves.load(path)
    # NaN survives the round trip (compare the JSON text: NaN != NaN in a dict comparison)
    assert json.dumps(loaded) == json.dumps(writer.curve)
    assert math.isnan(loaded["diverged"]["loss"]) and loaded["diverged"]["epoch"] == 2
    pre, fine = loaded["stages"]
    assert (pre["name"], pre["epochs"], pre["chosen_epoch"]) == ("pretrain", 2, 1)
    assert [r["epoch"] for r in fine["records"]] == [1] and fine["epochs"] == 3
    assert loaded["chosen"] == {"stage": "finetune", "epoch": 1}  # the tested model's stage
    assert set(fine["records"][0]) == set(curves.RECORD_FIELDS)
    assert loaded["cells"] == [["latency", "hsd"]] and loaded["firing_rates_on"] == "validation"
    assert not list(path.parent.glob(".*.tmp"))  # atomic: no temporary file left behind
    assert json.dumps(curves.load_all(tmp_path)) == json.dumps({"r1": loaded})
    assert (
        list(curves.load_all(tmp_path, ["other"])) == [] and curves.load_all(tmp_path / "x") == {}
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a readable learning-curve file"),
        ('{"format": "other"}', "format is not 'hsd-learning-curve'"),
        ('{"format": "hsd-learning-curve", "version": 9}', "version 9"),
        (
            json.dumps(
                {
                    "format": "hsd-learning-curve",
                    "version": 1,
                    "run_id": "r",
                    "config": {},
                    "stages": [{"name": "s", "records": [{"epoch": 1}]}],
                }
            ),
            "has a record without",
        ),
    ],
)
def test_other_files_are_refused_with_the_path(tmp_path, content, message):
    path = tmp_path / "curves" / "r.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(curves.CurveError, match=message) as err:
        curves.load_all(tmp_path)
    assert str(path) in str(err.value) and "delete it" in str(err.value)


def test_flags_on_synthetic_curves():
    ok = curves.flags(synthetic("a"))
    assert (ok.diverged, ok.silent, ok.detail) == (False, False, "")
    rising = curves.flags(synthetic("b", losses=(1.0, 0.8, 1.1)))
    assert rising.diverged and not rising.silent
    assert rising.detail == "diverged: finetune loss 1 at epoch 1 < 1.1 at epoch 3"
    nan = curves.flags(synthetic("c", losses=(1.0, math.nan)))
    assert nan.diverged and nan.detail == "diverged: non-finite loss in finetune epoch 2"
    stopped = synthetic("d")
    curves.mark_diverged(stopped, "finetune", 4, math.inf)
    assert curves.flags(stopped).detail == "diverged: loss inf in finetune epoch 4"
    # silent: only the chosen epoch counts; 0.1 % is the threshold (strictly below is silent)
    quiet = [{"l1": 0.2, "l2": 0.0005}, {"l1": 0.2, "l2": 0.001}, {"l1": 0.2, "l2": 0.0009}]
    at_two = curves.flags(synthetic("e", rates=quiet, best=2))
    assert not at_two.silent  # epoch 2: l2 at exactly 0.1 %
    at_one = curves.flags(synthetic("f", rates=quiet, best=1))
    assert at_one.silent and at_one.detail == "silent layer: l2 0.05 % at finetune epoch 1"
    # one epoch cannot rise (nor can the pretrain stage, whose loss falls); no rates, no silence
    assert curves.flags(synthetic("g", losses=(5.0,))) == curves.Flags(False, False, "")
    no_rates = synthetic("h", rates=[{}] * 3)
    assert curves.flags(no_rates) == curves.Flags(False, False, "")


def _fixed_rows(tmp_path):
    return ResultStore.existing(write_fixed_store(tmp_path / "sweep")).rows()


def test_status_table_flags_and_an_old_store_without_curves(tmp_path):
    rows = _fixed_rows(tmp_path)
    old = build_tables(rows)["status"].set_index(["sweep", "dataset", "variant"])
    assert (old["flag: diverged"] == curves.NO_CURVE).all()
    assert (old["flag: silent layer"] == curves.NO_CURVE).all()
    assert (old["no curve"] == old["total"]).all()
    assert build_tables(rows)["curve_flags"].empty
    # hsd (n-digits, T=5): seed 0 rises, seed 1 is clean, hsd T=2 has no curve; sts seed 0 has a
    # silent layer at its chosen epoch, seed 1 (failed) no curve; tet has none at all.
    silent = [{"l1": 0.3, "l2": 0.0}] * 3
    found = {
        "h5s0": synthetic("h5s0", losses=(1.0, 1.2, 1.3)),
        "h5s1": synthetic("h5s1"),
        "s5s0": synthetic("s5s0", rates=silent),
    }
    tables = build_tables(aggregate.with_curve_flags(rows, found))
    st = tables["status"].set_index(["sweep", "dataset", "variant"])
    cols = ["total", "no curve", "flag: diverged", "flag: silent layer"]
    assert st.loc[("latency", "n-digits", "hsd"), cols].tolist() == [3, 1, 1, 0]
    assert st.loc[("latency", "n-digits", "sts"), cols].tolist() == [2, 1, 0, 1]
    assert st.loc[("latency", "n-digits", "tet"), cols].tolist() == [2, 2, "no curve", "no curve"]
    flagged = tables["curve_flags"]
    assert flagged["run_id"].tolist() == ["h5s0", "s5s0"]
    assert flagged["flags"].tolist() == [
        "diverged: finetune loss 1 at epoch 1 < 1.3 at epoch 3",
        "silent layer: l2 0 % at finetune epoch 3",
    ]
    assert tables["status"].attrs["notes"] == aggregate.STATUS_NOTE


def test_report_plots_curves_only_when_present(tmp_path, capsys):
    out = write_fixed_store(tmp_path / "sweep")
    for run_id, seed in (("h5s0", 0), ("h5s1", 1)):
        curves.save(curves.curve_path(out, run_id), synthetic(run_id, seed=seed))
    curves.save(curves.curve_path(out, "k1"), synthetic("k1", dataset="sim-gestures"))
    assert report_main([str(out)]) == 0
    names = sorted(p.name for p in (out / "plots").glob("curves-*"))
    assert names == sorted(
        f"curves-{d}.{e}" for d in ("n-digits", "sim-gestures") for e in plots.FORMATS
    )
    status = (out / "tables" / "status.md").read_text()
    assert "flag: silent layer" in status and "no curve" in status
    # without curve files: no curve plot, the report still succeeds
    assert plots.plot_curves({}, tmp_path / "none") == []
    bare = write_fixed_store(tmp_path / "bare")
    assert report_main([str(bare), "--no-plots"]) == 0
    assert (
        "| latency | n-digits | hsd | 3 | 0 | 0 | 0 | 3 | 3 | no curve | no curve |"
        in (bare / "tables" / "status.md").read_text()
    )


def test_a_resumed_run_keeps_the_epochs_before_the_restart(tmp_path):
    ckpt, path = tmp_path / "ckpt", curves.curve_path(tmp_path, "r")

    class Killed(Exception):
        pass

    first = curves.CurveWriter(path, "r", {"seed": 0})

    def kill_after_epoch_2(stage, epoch, epochs, rec):
        first(stage, epoch, epochs, rec)
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(make_stage(tiny_snn(), 3), run_id="r", device=CPU, checkpoint_dir=ckpt,
            on_epoch=kill_after_epoch_2)  # fmt: skip
    before = curves.load(path)["stages"][0]["records"]
    # a restarted trial starts a fresh writer: the engine replays epochs 1-2 from the checkpoint
    summary = fit(make_stage(tiny_snn(), 3), run_id="r", device=CPU, checkpoint_dir=ckpt,
                  on_epoch=curves.CurveWriter(path, "r", {"seed": 0}))  # fmt: skip
    stage = curves.load(path)["stages"][0]
    assert [r["epoch"] for r in stage["records"]] == [1, 2, 3]
    assert stage["records"][:2] == before
    assert stage["chosen_epoch"] == summary["best_epoch"]
    vals = [r["val_acc"] for r in stage["records"]]
    assert summary["best_epoch"] == vals.index(max(vals)) + 1


def test_fit_records_every_field_exactly():
    model = tiny_snn()
    seen = []
    summary = fit(make_stage(model, 2), run_id="r", device=CPU, on_epoch=lambda *a: seen.append(a))
    assert [(s, e, n) for s, e, n, _ in seen] == [("train", 1, 2), ("train", 2, 2)]
    recs = [r for *_, r in seen]
    assert all(set(r) == set(EPOCH_FIELDS) for r in recs)
    # Adam at 1e-2, cosine over 2 epochs: epoch 2 trains at 1e-2 · (1 + cos(π/2)) / 2
    assert [r["lr"] for r in recs] == pytest.approx([1e-2, 5e-3])
    layers = [n for n, m in model.named_modules() if is_spiking_neuron(m)]
    assert all(sorted(r["firing_rates"]) == sorted(layers) for r in recs)
    assert all(0.0 <= r["train_acc"] <= 1.0 and r["seconds"] > 0 for r in recs)
    # the selected (loaded) model's validation pass gives the chosen epoch's rates again
    best = recs[summary["best_epoch"] - 1]
    again = validate(model, batches_for(7), ann=False, bf16=False, device=CPU)
    assert again.firing_rates == best["firing_rates"] and again.acc == best["val_acc"]
    assert best["firing_rate"] == pytest.approx(again.firing_rate)


def test_train_accuracy_folds_every_output_shape():
    from hsd.metrics import TrainAccuracy

    y = torch.tensor([0, 1, 1])
    # step logits [T=2, N=3, K=2]: summed over steps, predictions 0, 1, 0 -> 2 of 3 right
    steps = torch.tensor(
        [[[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0], [1.0, 0.5]]]
    )
    net = torch.nn.Identity()
    with TrainAccuracy(net) as acc:
        net(steps)  # an SNN: [T, N, K]
        acc.end_batch(y)
        for t in range(2):  # single-step training: [1, N, K] per step
            net(steps[t : t + 1])
        acc.end_batch(y)
        net(steps.flatten(0, 1))  # a 2-D ANN over frames: [T·N, K], time-major
        acc.end_batch(y)
        acc.end_batch(y)  # a batch without a forward is not counted
    assert (acc.correct, acc.seen, acc.value) == (6, 9, pytest.approx(2 / 3))
    with TrainAccuracy(net) as empty:
        pass
    assert math.isnan(empty.value)


def _trial(**fields):
    return Trial(
        RunConfig("fake", "n-digits", 3, frames=10, epochs=2, **fields), (("latency", "fake"),)
    )


def test_the_trial_writes_the_curve_and_marks_a_divergence(tmp_path):
    def execute(cfg, on_epoch=None, **kw):
        on_epoch("train", 1, 2, record(1, 1.0, 0.5))
        err = DivergedError("training loss became nan", loss=math.nan)
        err.stage, err.epoch = "train", 2  # as `fit` leaves it
        raise err

    (row,) = run_trial(_trial(), ExecOptions(out_dir=tmp_path), execute=execute)
    assert row["status"] == "diverged"
    c = curves.load(curves.curve_path(tmp_path, _trial().run_id))
    assert c["config"] == _trial().cfg.to_dict() and c["cells"] == [["latency", "fake"]]
    assert [r["epoch"] for r in c["stages"][0]["records"]] == [1]
    assert c["diverged"]["stage"] == "train" and c["diverged"]["epoch"] == 2
    assert curves.flags(c).diverged


def test_a_full_disk_costs_the_curve_not_the_run(tmp_path):
    (tmp_path / "curves").write_text("a file where the folder should be")

    def execute(cfg, on_epoch=None, **kw):
        on_epoch("train", 1, 2, record(1, 1.0, 0.5))
        on_epoch("train", 2, 2, record(2, 0.9, 0.6))
        return [{"run_id": cfg.run_id(), "t": 1, "acc": 0.5, "status": "ok"}]

    with pytest.warns(UserWarning, match="learning curve of run .* not saved") as caught:
        rows = run_trial(_trial(), ExecOptions(out_dir=tmp_path), execute=execute)
    assert rows[0]["status"] == "ok" and len(caught) == 1  # warned once, the run went on


@pytest.mark.slow
def test_a_real_training_leaves_a_complete_curve(data_env, tmp_path):
    """HSD (a QCFS ANN stage, then an SNN stage) at the suite's smallest training budget."""
    from hsd.method import resolve

    cfg = RunConfig(
        method="hsd",
        dataset="n-digits",
        T=2,
        profile="smoke",
        epochs=2,
        pre_epochs=1,
        size=16,
        width=1 / 16,
        batch_size=64,
    )
    trial = Trial(resolve(cfg), (("latency", "hsd"),))
    opts = ExecOptions(
        out_dir=tmp_path,
        root=data_env["HSD_DATA_DIR"],
        cache_dir=data_env["HSD_CACHE_DIR"],
        device="cpu",
        progress=False,
    )
    rows = run_trial(trial, opts)
    assert rows[0]["status"] == "ok"
    c = curves.load(Path(tmp_path) / "curves" / f"{trial.run_id}.json")
    assert [(s["name"], s["epochs"], len(s["records"])) for s in c["stages"]] == [
        ("pretrain", 1, 1),
        ("finetune", 2, 2),
    ]
    for stage in c["stages"]:
        for r in stage["records"]:
            assert set(r) == set(curves.RECORD_FIELDS)
            assert all(r[k] is not None for k in ("train_loss", "train_acc", "val_acc", "lr"))
            assert math.isfinite(r["train_loss"]) and r["seconds"] > 0
    pre, fine = c["stages"]
    assert pre["records"][0]["firing_rates"] == {} and pre["records"][0]["firing_rate"] is None
    rates = fine["records"][0]["firing_rates"]
    assert rates and all(0.0 <= v <= 1.0 for v in rates.values())
    assert fine["records"][0]["lr"] == pytest.approx(trial.cfg.lr)
    # the chosen epoch is the engine's: the validation accuracy the run reports as its best
    chosen = c["chosen"]
    assert chosen["stage"] == "finetune" and chosen["epoch"] == fine["chosen_epoch"]
    best = fine["records"][chosen["epoch"] - 1]["val_acc"]
    assert best == rows[0]["best_val_acc"] == max(r["val_acc"] for r in fine["records"])


def test_a_broken_curve_file_stops_the_report_before_it_writes(tmp_path, capsys):
    out = write_fixed_store(tmp_path / "sweep")
    (out / "curves").mkdir()
    (out / "curves" / "h5s0.json").write_text("{torn")
    assert report_main([str(out)]) == 2
    assert "h5s0.json: not a readable learning-curve file" in capsys.readouterr().err
    assert not (out / "tables").exists() and not (out / "plots").exists()
