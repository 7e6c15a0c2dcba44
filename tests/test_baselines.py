"""Every registered method: trains and tests on a tiny in-memory dataset, every trainable
parameter gets a gradient, the loss is finite, the same seed gives the same result; each loss
equals a hand computation; bad names and options are refused; an end-to-end run per method."""

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import baselines.common
import baselines.kd
import hsd.hsd_method
import hsd.hybrid
from baselines.kd import feature_kd, kdsnn_loss
from baselines.tet import tet_loss
from hsd import params
from hsd.config import ConfigError, RunConfig
from hsd.losses import ce_of_mean
from hsd.method import METHODS, RunContext, preset_values, resolve, resolve_for

EXPECTED = {"tet", "sltt", "sltt-k", "tcja", "kd-response", "kd-feature", "kd-both", "sts", "dts"}
# (method, options): every registered method, plus the "with HT" variants.
OURS = sorted(
    n for n, ep in METHODS.providers().items() if ep.split(".")[0] in ("hsd", "baselines")
)
CASES = [(name, {}) for name in OURS] + [
    ("tet", {"ht": True}),
    ("sltt", {"ht": True}),
    ("ce", {"ht": True}),
]


# -- a tiny in-memory dataset with the FrameSet interface ---------------------------------


@dataclass
class Split:
    frames: np.ndarray  # [N, F, 2, S, S] float16
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)


def tiny_data(frames: int, size: int = 16, classes: int = 3, n: int = 6):
    spec = SimpleNamespace(
        name="tiny",
        arch="vgg",
        num_classes=classes,
        default_frames=4,
        default_size=size,
        classes=tuple(map(str, range(classes))),
    )
    rng = np.random.default_rng(0)

    def split(k):
        x = (rng.random((k, frames, 2, size, size)) < 0.2).astype(np.float16)
        return Split(x, np.arange(k) % classes)

    return SimpleNamespace(
        spec=spec, frames=frames, size=size, train=split(n), val=split(3), test=split(3)
    )


def tiny_cfg(name: str, options: dict, T: int = 2) -> RunConfig:
    """resolve() without the dataset registry: the method's presets for the tiny spec."""
    spec = tiny_data(4).spec
    cfg = RunConfig(
        method=name,
        dataset="tiny",
        T=T,
        size=16,
        width=1 / 16,
        epochs=1,
        pre_epochs=1,
        batch_size=4,
        options=options,
    )
    return resolve_for(cfg, spec)


class GradSpy:
    """Wraps the engine's `fit` where methods call it: at each stage's first optimiser step,
    record which trainable parameters have no (or a non-finite) gradient."""

    def __init__(self, monkeypatch):
        self.stages, self.missing, self.losses = [], {}, []
        for mod in (baselines.common, hsd.hsd_method, hsd.hybrid):
            real = mod.fit
            monkeypatch.setattr(mod, "fit", self.wrap(real))

    def wrap(self, real):
        def fit(stage, **kw):
            self.stages.append(stage.name)
            trainable = {id(p) for p in stage.model.parameters() if p.requires_grad}
            in_opt = {id(p) for g in stage.optimizer.param_groups for p in g["params"]}
            assert trainable <= in_opt, f"{stage.name}: trainable parameters not optimised"
            names = {id(p): n for n, p in stage.model.named_parameters()}
            first = [True]

            def check_grads(opt, args, kwargs):
                if first[0]:
                    first[0] = False
                    self.missing[stage.name] = [
                        names.get(id(p), "?")
                        for g in opt.param_groups
                        for p in g["params"]
                        if p.grad is None or not torch.isfinite(p.grad).all()
                    ]

            stage.optimizer.register_step_pre_hook(check_grads)
            out = real(stage, **kw)
            self.losses += [r["train_loss"] for r in out["history"]]
            return out

        return fit


def run_tiny(name, options, monkeypatch, seed=0):
    cfg = tiny_cfg(name, options).replace(seed=seed)
    data = tiny_data(cfg.frames)
    spy = GradSpy(monkeypatch)
    ctx = RunContext(data=data, device=torch.device("cpu"))
    torch.manual_seed(cfg.seed)
    ev = METHODS[cfg.method].run(cfg, ctx)
    monkeypatch.undo()
    return ev, ctx, spy


def test_registry_has_every_baseline_and_hsd():
    assert EXPECTED | {"hsd", "ce"} <= set(METHODS.names())
    # every one of them comes from an entry point, as another package's method would
    assert set(METHODS.providers()) >= EXPECTED | {"hsd", "ce"}


def test_sts_is_tet_one_run_id():
    sts = resolve(RunConfig(method="sts", dataset="n-digits", T=3))
    tet = resolve(RunConfig(method="tet", dataset="n-digits", T=3))
    assert sts == tet and sts.method == "tet" and sts.run_id() == tet.run_id()
    with pytest.raises(ConfigError, match="takes no option"):  # STS has no HT variant
        resolve(RunConfig(method="sts", dataset="n-digits", T=3, options={"ht": True}))


def test_dts_is_one_run_for_every_T():
    ids = {resolve(RunConfig(method="dts", dataset="n-digits", T=T)).run_id() for T in (1, 3, 5)}
    assert len(ids) == 1
    assert resolve(RunConfig(method="dts", dataset="n-digits", T=1)).T == 10


@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}{'+ht' if o else ''}" for n, o in CASES])
def test_method_trains_with_gradients_everywhere_and_is_deterministic(name, options, monkeypatch):
    ev, ctx, spy = run_tiny(name, options, monkeypatch)
    assert spy.stages, "the method never trained through the engine"
    for stage, missing in spy.missing.items():
        assert missing == [], f"{name} stage {stage}: no gradient for {missing}"
    assert all(math.isfinite(v) for v in spy.losses)
    assert ev.T == (4 if name == "dts" else 2) and np.isfinite(ev.acc).all()
    assert ctx.info["neuron"] == METHODS[cfg_method(name)].neuron or options.get("ht")
    if options.get("ht"):
        assert ctx.info["neuron"] == "if-converted"
    ev2, _, spy2 = run_tiny(name, options, monkeypatch)
    np.testing.assert_array_equal(ev.acc, ev2.acc)
    assert spy.losses == spy2.losses


def cfg_method(name: str) -> str:
    return METHODS[name].alias_of or name


@pytest.mark.parametrize("profile", ["smoke", "paper"])
@pytest.mark.parametrize("dataset", ["n-digits", "sim-gestures", "cifar10-dvs", "dvs-gesture"])
def test_kd_teachers_train_with_hsds_pre_training_recipe(profile, dataset):
    """Table 6 isolates the kind of distillation only if every teacher is trained alike: the KD
    baselines' teacher takes HSD's pre-training recipe, weight decay included (on the smoke VGG
    it had the shared 5e-4 where HSD's study gives 2.94e-4)."""
    hsd_cfg = resolve(RunConfig(method="hsd", dataset=dataset, T=3, profile=profile))
    for method in ("kd-response", "kd-feature", "kd-both"):
        kd = resolve(RunConfig(method=method, dataset=dataset, T=3, profile=profile))
        for field in ("pre_lr", "pre_epochs", "L", "weight_decay", "qcfs_threshold", "size"):
            assert getattr(kd, field) == getattr(hsd_cfg, field), (method, field)


def test_kd_teacher_is_frozen(monkeypatch):
    held = []
    real = baselines.kd.frozen_teacher
    monkeypatch.setattr(
        baselines.kd, "frozen_teacher", lambda ann: held.append(real(ann)) or held[-1]
    )
    cfg = tiny_cfg("kd-both", {})
    ctx = RunContext(data=tiny_data(cfg.frames), device=torch.device("cpu"))
    teacher_stats = None

    def snapshot():
        return {k: v.clone() for k, v in held[0].state_dict().items()}

    orig_fit = baselines.common.fit

    def fit(stage, **kw):
        nonlocal teacher_stats
        teacher_stats = snapshot()
        return orig_fit(stage, **kw)

    monkeypatch.setattr(baselines.common, "fit", fit)
    METHODS["kd-both"].run(cfg, ctx)
    teacher = held[0]
    assert not teacher.training
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    after = snapshot()
    assert all(torch.equal(teacher_stats[k], after[k]) for k in after)  # BN stats untouched


# -- losses by hand --------------------------------------------------------------------------


def test_tet_loss_by_hand():
    logits = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]])  # T=2, N=1, K=2
    y = torch.tensor([0])
    ce = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    mse = (0 + 1 + 1 + 1) / 4  # (o - φ)² with φ = 1
    assert tet_loss(logits, y, mse_weight=0.5, phi=1.0).item() == pytest.approx(
        0.5 * ce + 0.5 * mse
    )
    assert tet_loss(logits, y, mse_weight=0.0).item() == pytest.approx(ce)
    assert tet_loss(logits, y).item() == pytest.approx((1 - 1e-3) * ce + 1e-3 * mse)
    with pytest.raises(ValueError, match=r"\[T, N, K\]"):
        tet_loss(logits[0], y)


def test_mean_ce_by_hand():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])  # mean [1, 0]
    assert ce_of_mean(logits, torch.tensor([1])).item() == pytest.approx(math.log(1 + math.e))


def test_kdsnn_losses_by_hand():
    student = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])  # mean [1, 0]
    teacher = torch.tensor([[0.0, 0.0]])  # uniform
    y = torch.tensor([0])
    ce = math.log(1 + math.exp(-1))
    tau = 2.0
    ps = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    kl = sum(0.5 * math.log(0.5 / p) for p in ps)
    resp = kdsnn_loss(student, teacher, y, lam=0.5, tau=tau, response=True).item()
    assert resp == pytest.approx(ce + 0.5 * tau**2 * kl / 2)  # classmean: KL / K, K = 2
    kw = dict(lam=0.5, tau=tau, response=True, reduction="batchmean")
    assert kdsnn_loss(student, teacher, y, **kw).item() == pytest.approx(ce + 0.5 * tau**2 * kl)
    fs, ft = torch.ones(1, 2, 1, 1), torch.zeros(1, 2, 1, 1)
    assert feature_kd(fs, ft).item() == 1.0
    both = kdsnn_loss(
        student, teacher, y, lam=0.5, tau=tau, response=True, student_feat=fs, teacher_feat=ft
    ).item()
    assert both == pytest.approx(ce + 0.5 * tau**2 * kl / 2 + 0.5 * 1.0)
    feat_only = kdsnn_loss(
        student, teacher, y, lam=0.5, tau=tau, response=False, student_feat=fs, teacher_feat=ft
    ).item()
    assert feat_only == pytest.approx(ce + 0.5)


@pytest.mark.parametrize("align", ["conv1x1", "affine"])
def test_feature_alignment_can_reach_zero_feature_loss(align):
    # Student spike rates in [0, 1], teacher QCFS activations in [0, λ]: a per-channel scale
    # and shift of the student's features. Optimising the alignment alone reaches zero loss.
    torch.manual_seed(0)
    fs = torch.rand(8, 3, 2, 2)
    ft = (
        fs * torch.tensor([4.0, 2.0, 0.5])[:, None, None]
        + torch.tensor([0.0, 0.1, 0.3])[:, None, None]
    )
    a = baselines.kd.feature_alignment(align, 3, 3)
    assert feature_kd(a(fs), ft).item() > 0.1  # starts at the identity: far off
    opt = torch.optim.LBFGS(a.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = feature_kd(a(fs), ft)
        loss.backward()
        return loss

    opt.step(closure)
    assert feature_kd(a(fs), ft).item() < 1e-8
    # and the KD student always carries a trainable alignment, also with equal channels
    student = baselines.kd.KDStudent(torch.nn.Identity(), 3, 3, align)
    assert sum(p.numel() for p in student.align.parameters()) > 0


def test_feature_alignment_errors():
    with pytest.raises(ValueError, match="needs equal channel counts"):
        baselines.kd.feature_alignment("affine", 3, 4)
    with pytest.raises(ValueError, match="valid: conv1x1, affine"):
        baselines.kd.feature_alignment("mlp", 3, 3)
    assert baselines.kd.feature_alignment("conv1x1", 3, 4).weight.shape == (4, 3, 1, 1)


# -- presets and bad input ---------------------------------------------------------------------


def test_frames_per_method():
    assert tiny_cfg("sts", {}).frames == 2  # the stream integrated into T frames
    dts = tiny_cfg("dts", {})
    assert (dts.frames, dts.T) == (4, 4)  # trained on F_total, tested on the first t, every t
    ht = tiny_cfg("tet", {"ht": True})
    assert (ht.frames, ht.pre_frames, ht.neuron) == (4, 2, "if-converted")


def test_paper_presets_carry_the_authors_recipes():
    spec = tiny_data(4).spec

    def presets(name, **kw):
        cfg = RunConfig(method=name, dataset="tiny", T=5, profile="paper", **kw)
        return preset_values(
            cfg.replace(options=params.defaults(METHODS[name].options)), METHODS[name], spec
        )

    d = presets("sltt")
    assert (d["lr"], d["epochs"], d["batch_size"], d["neuron"]) == (0.05, 300, 128, "sltt")
    d = presets("tet")
    assert (d["lr"], d["weight_decay"], d["batch_size"], d["neuron"]) == (1e-3, 0.0, 128, "lif")
    d = presets("tcja")
    assert (d["lr"], d["epochs"], d["batch_size"]) == (1e-3, 1024, 16)


def test_smoke_presets_are_explicit_data_not_value_swaps():
    """A recipe's smoke learning rate is what its smoke preset table says (tuned or hand-set), its
    paper one the authors' (Adam 1e-3): no rule rewrites one into the other."""
    from hsd.presets import merge

    spec = tiny_data(4).spec
    for name in ("tet", "tcja", "dts"):
        method = METHODS[name]
        cfg = RunConfig(method=name, dataset="tiny", T=2).replace(
            options=params.defaults(method.options)
        )
        table = merge([method.presets["any"], method.presets["smoke"]], spec)
        assert preset_values(cfg, method, spec)["lr"] == table["lr"]
        assert preset_values(cfg.replace(profile="paper"), method, spec)["lr"] == 1e-3


def test_unknown_method_and_option_are_refused():
    with pytest.raises(ConfigError, match="valid:.*tet"):
        resolve(RunConfig(method="tett", dataset="n-digits", T=2))
    with pytest.raises(ConfigError, match="takes no option"):
        resolve(RunConfig(method="tcja", dataset="n-digits", T=2, options={"ht": True}))


def test_bad_option_values_are_refused():
    with pytest.raises(ConfigError, match="loss"):
        tiny_cfg("tcja", {"loss": "hinge"})
    with pytest.raises(ConfigError, match="K"):
        tiny_cfg("sltt-k", {"K": 3})
    with pytest.raises(ConfigError, match="option align=mlp: 'mlp' is not one of conv1x1, affine"):
        tiny_cfg("kd-feature", {"align": "mlp"})
    with pytest.raises(ConfigError, match="option kl_reduction=sum: 'sum' is not one of"):
        tiny_cfg("kd-response", {"kl_reduction": "sum"})
    with pytest.raises(ConfigError, match="if-converted"):
        baselines.common.check_neuron(tiny_cfg("tet", {"ht": True}).replace(neuron="lif"))


# -- end to end through execute() on the simulated n-digits set -------------------------------


@pytest.fixture(scope="module")
def data_dirs(data_env):
    """The suite's one generated n-digits set and frame cache (tests/conftest.py)."""
    return data_env["HSD_DATA_DIR"], data_env["HSD_CACHE_DIR"]


@pytest.mark.slow
@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}{'+ht' if o else ''}" for n, o in CASES])
def test_execute_end_to_end_on_n_digits(name, options, data_dirs):
    from hsd.execute import execute

    root, cache = data_dirs
    cfg = RunConfig(
        method=name,
        dataset="n-digits",
        T=2,
        profile="smoke",
        epochs=1,
        pre_epochs=1,
        size=16,
        width=1 / 16,
        batch_size=64,
        options=options,
    )
    rows = execute(cfg, root=root, cache_dir=cache, device="cpu")
    assert [r["t"] for r in rows] == list(range(1, resolve(cfg).T + 1))  # dts: every t
    assert all(r["status"] == "ok" and 0.0 <= r["acc"] <= 1.0 for r in rows)
    expected = "if-converted" if options.get("ht") else METHODS[cfg_method(name)].neuron
    assert rows[0]["neuron"] == expected
    assert all(r[f"opt_{k}"] == v for r in rows for k, v in options.items())
