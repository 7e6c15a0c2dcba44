"""HSD end to end on the simulated n-digits set, its validation, the frozen teacher, the CLI."""

import json

import pytest
import torch

from hsd import hsd_method, hybrid
from hsd.batches import window_batches
from hsd.config import ConfigError, RunConfig
from hsd.data import ht_partition, load_frames
from hsd.engine import Stage, fit, make_optimizer
from hsd.execute import execute
from hsd.method import RunContext, resolve
from hsd.presets import SMOKE_ADAM_LR
from hsd.train import main as train_main

# Small enough to run in seconds on one CPU thread, large enough to learn.
TINY = dict(size=16, width=0.125, pre_epochs=3, epochs=2, batch_size=32)


@pytest.fixture(scope="module")
def dirs(data_env):
    """The suite's one generated n-digits set and frame cache (tests/conftest.py)."""
    return {"root": data_env["HSD_DATA_DIR"], "cache_dir": data_env["HSD_CACHE_DIR"]}


@pytest.mark.slow
def test_tiny_hsd_run_beats_chance_clearly(dirs):
    rows = execute(RunConfig(method="hsd", dataset="n-digits", T=2, **TINY), **dirs, device="cpu")
    assert [r["t"] for r in rows] == [1, 2]
    # 10 classes: chance is 0.10
    assert rows[-1]["acc"] >= 0.25, rows[-1]["acc"]
    # HSD infers on the last T of F frames: its decision needs the whole stream
    assert [r["stream_fraction"] for r in rows] == [0.9, 1.0]
    assert rows[-1]["pre_frames"] == 8 and rows[-1]["frames"] == 10
    assert rows[-1]["neuron"] == "if-converted" and rows[-1]["best_val_acc"] > 0.1
    assert rows[0]["macs"] < rows[1]["macs"] and rows[0]["energy_j"] < rows[1]["energy_j"]


@pytest.mark.slow
def test_teacher_is_frozen_and_untouched_by_fine_tuning(dirs):
    cfg = resolve(RunConfig(method="hsd", dataset="n-digits", T=2, **{**TINY, "pre_epochs": 1}))
    data = load_frames(
        cfg.dataset,
        frames=cfg.frames,
        size=cfg.size,
        root=dirs["root"],
        cache_dir=dirs["cache_dir"],
    )
    ctx = RunContext(data=data, device=torch.device("cpu"))
    teacher, snn = hsd_method.pretrain_and_convert(cfg, ctx)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    _, window = ht_partition(cfg.frames, cfg.pre_frames, cfg.T)
    train, val, _ = window_batches(cfg, ctx, window, stage="finetune", augment="flip_roll")
    loss = hsd_method.distill_loss("skd", teacher, cfg.kd_lambda, cfg.tau)
    fit(
        Stage(
            "finetune",
            snn,
            make_optimizer("adam", snn.parameters(), 1e-3, 0.0),
            1,
            train,
            val,
            loss_fn=loss,
        ),
        run_id="t",
        device=ctx.device,
    )
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    for k, v in teacher.state_dict().items():  # weights and batch-norm statistics alike
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    "cfg, message",
    [
        (dict(method="hsd", T=10), "no pre-training frame"),
        (dict(method="hsd", T=12), "T_p"),
        (dict(method="hsd", T=4, pre_frames=8), "exceeds the 10 frames"),
        (dict(method="hsd", T=2, L=0), "L"),
        (dict(method="hsd", T=2, kd_lambda=-1.0), "kd_lambda"),
        (dict(method="hsd", T=2, options={"distill": "mse"}), "distill"),
        (dict(method="hsd", T=2, options={"K": 2}), "takes no option"),
        (dict(method="nope", T=2), "unknown method 'nope'; valid:"),
        (dict(method="hsd", T=2, dataset="mnist"), "unknown dataset 'mnist'; valid:"),
    ],
)
def test_bad_configs_are_refused_before_training(cfg, message):
    cfg = {"dataset": "n-digits", **cfg}
    with pytest.raises(ConfigError, match=message):
        resolve(RunConfig(**cfg))


def test_ablation_switches_resolve_to_the_paper_rows():
    kw = dict(method="hsd", dataset="n-digits", T=2, profile="paper")
    none = resolve(RunConfig(**kw, options={"ht": False, "distill": "none"}))
    full = resolve(RunConfig(**kw))
    assert dict(full.options) == {
        "ann_loss": "per-frame",
        "distill": "skd",
        "ht": True,
        "kl_reduction": "classmean",
        "surrogate": "normalized",
    }
    # the authors' running code where the paper is silent: τ = 10, weight 1 on the classmean KL
    assert full.tau == 10.0 and full.kd_lambda == 1.0
    # Without HT the same test window is used and the SNN is the direct-training baseline: TET
    # LIF, Adam 1e-3 with weight decay 5e-4, not HSD's fine-tuning lr (1e-5).
    assert none.pre_frames == full.pre_frames == 8
    assert (none.lr, none.weight_decay, none.neuron) == (1e-3, 5e-4, "lif")
    assert full.lr == 1e-5 and full.neuron == "if-converted"  # recorded like every neuron
    assert none.run_id() != full.run_id()
    # smoke: the hand-set 3e-3 of the untuned Adam-1e-3 recipes (hsd.presets.SMOKE_ADAM_LR)
    smoke = resolve(RunConfig(**{**kw, "profile": "smoke"}, options={"ht": False}))
    assert smoke.lr == SMOKE_ADAM_LR
    # from scratch it trains as many epochs as HT pre-trains, in either profile and architecture
    for profile, dataset in [
        ("paper", "n-digits"),
        ("smoke", "n-digits"),
        ("smoke", "sim-gestures"),
    ]:
        at = {**kw, "profile": profile, "dataset": dataset}
        scratch = resolve(RunConfig(**at, options={"ht": False, "distill": "none"}))
        assert scratch.epochs == resolve(RunConfig(**at)).pre_epochs
    assert scratch.epochs == 56  # sim-gestures (SNN-5) on smoke


def test_bad_recipe_options_are_refused():
    kw = dict(method="hsd", dataset="n-digits", T=2)
    for opt, valid in (
        ("kl_reduction", "classmean, batchmean"),
        ("surrogate", "normalized, raw"),
        ("ann_loss", "per-frame, mean-logits"),
    ):
        with pytest.raises(ConfigError, match=f"option {opt}=x: 'x' is not one of {valid}"):
            resolve(RunConfig(**kw, options={opt: "x"}))
    with pytest.raises(ConfigError, match=r"drop --neuron lif \(or use --option ht=false\)"):
        resolve(RunConfig(**kw, neuron="lif"))


def test_ann_loss_both_forms_by_hand():
    import math

    # two frames, one sample, K = 2: o_1 = [2, 0], o_2 = [0, 0]; y = 0
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])
    y = torch.tensor([0])
    per_frame = (math.log(1 + math.exp(-2.0)) + math.log(2.0)) / 2  # mean of CE(o_t)
    mean_logits = math.log(1 + math.exp(-1.0))  # CE([1, 0])
    assert hybrid.ann_loss("per-frame", logits, y).item() == pytest.approx(per_frame)
    assert hybrid.ann_loss("mean-logits", logits, y).item() == pytest.approx(mean_logits)
    with pytest.raises(ValueError, match="valid: per-frame, mean-logits"):
        hybrid.ann_loss("sum", logits, y)


@pytest.mark.slow
def test_no_ht_student_is_the_lif_baseline_with_weight_decay(dirs, monkeypatch):
    """Without HT, the student is built with the TET LIF neuron and trained by Adam with the
    config's weight decay, decoupled; the HT student by Adam without it."""
    seen = {}
    real_opt = hsd_method.make_optimizer

    def spy_opt(name, params, lr, wd, adam_decay):
        seen.setdefault("opt", []).append((name, lr, wd, adam_decay))
        return real_opt(name, params, lr, wd, adam_decay)

    monkeypatch.setattr(hsd_method, "make_optimizer", spy_opt)
    opts = {"ht": False, "distill": "none"}
    cfg = RunConfig(method="hsd", dataset="n-digits", T=1, options=opts, **{**TINY, "epochs": 1})
    rows = execute(cfg, **dirs, device="cpu")
    preset = resolve(cfg)  # the weight decay and τ of HSD's smoke preset
    assert rows[0]["neuron"] == "lif" and rows[0]["opt_ht"] is False
    assert seen["opt"] == [("adam", SMOKE_ADAM_LR, preset.weight_decay, "decoupled")]
    assert rows[0]["opt_kl_reduction"] == "classmean" and rows[0]["tau"] == preset.tau


@pytest.mark.slow
def test_cli_writes_json_and_exits_2_on_bad_input(dirs, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = [
        "--method",
        "hsd",
        "--dataset",
        "n-digits",
        "--T",
        "1",
        "--size",
        "16",
        "--pre-epochs",
        "1",
        "--epochs",
        "1",
        "--root",
        dirs["root"],
        "--cache-dir",
        dirs["cache_dir"],
        "--out",
        str(out),
    ]
    assert train_main(args) == 0
    result = json.loads(out.read_text())
    assert result["config"]["method"] == "hsd" and len(result["rows"]) == 1
    typed = "python -m hsd.train " + " ".join(args)  # as typed: no interpreter path
    assert result["command"] == result["rows"][0]["command"] == typed
    assert {"cpu", "cpu_isa", "ver_spikingjelly", "ver_tonic"} <= set(result["rows"][0])
    assert train_main(["--method", "hsd", "--dataset", "n-digits", "--T", "10"]) == 2
    assert "no pre-training frame" in capsys.readouterr().err
    assert (
        train_main(["--method", "hsd", "--dataset", "n-digits", "--T", "2", "--option", "bogus=1"])
        == 2
    )
