"""Typed option declarations (`hsd.params`): every spelling of a value is one value and one run
id, anything else is refused naming the valid values, wherever the value enters; and the run ids
of the configs already in the committed stores do not move."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness_helpers import call_main

from harness.common import sweeps as S
from hsd import params
from hsd.config import ConfigError, RunConfig
from hsd.method import METHODS, resolve
from hsd.params import Bool, Choice, Float, Int, Text

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "text, value",
    [("true", True), ("True", True), ("1", True), ("yes", True), (" ON ", True), (1, True),
     ("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False), (0, False),
     (True, True), (False, False)],
)  # fmt: skip
def test_bool_spellings(text, value):
    assert Bool(False).parse(text) is value


@pytest.mark.parametrize("bad", ["maybe", "2", 2, -1, "", 0.5, None, "tru"])
def test_bool_refuses_anything_else_naming_the_valid_values(bad):
    with pytest.raises(ConfigError, match=r"is not true or false \(or yes/no, on/off, 1/0\)"):
        Bool(True).parse(bad)


def test_int_float_choice_parse_and_normalise():
    k = Int(lo=1, hi=8, default=None)
    assert k.parse("3") == 3 and type(k.parse("3")) is int
    assert k.parse(None) is None and k.parse("none") is None  # optional: back to the default
    for bad in ("0", "9", "2.5", 2.5, True, "x"):
        with pytest.raises(ConfigError, match=r"is not an integer in \[1, 8\], or none"):
            k.parse(bad)
    with pytest.raises(ConfigError, match="is not an integer >= 1$"):
        Int(lo=1, default=4).parse("none")  # not optional: none is no value

    lr = Float(1e-3, 10.0, log=True, default=1.0)
    assert lr.parse("0.5") == 0.5 and lr.parse(2) == 2.0 and type(lr.parse(2)) is float
    for bad in ("nan", "inf", "20", "1e-4", True, "x"):
        with pytest.raises(ConfigError, match=r"in \[0.001, 10\], log scale"):
            lr.parse(bad)
    with pytest.raises(ValueError, match="log-scale"):
        Float(0.0, 1.0, log=True, default=0.5)

    L = Choice((4, 8, 16, 32), default=16)
    assert L.parse("16") == 16 and type(L.parse("16")) is int and L.parse(16.0) == 16
    with pytest.raises(ConfigError, match="is not one of 4, 8, 16, 32"):
        L.parse("12")
    d = Choice(("skd", "kd", "none"))
    assert d.default == "skd" and d.parse("SKD") == "skd" and d.parse(" kd ") == "kd"
    with pytest.raises(ConfigError, match="is not one of skd, kd, none"):
        d.parse("banana")
    flag = Choice((True, False))
    assert flag.parse(True) is True
    with pytest.raises(ConfigError):
        flag.parse(1)  # a bool choice does not take the integer 1 for True


def test_defaults_are_stored_normalised_and_a_bad_default_is_refused():
    assert Float(0, 1, default=1).default == 1.0 and type(Float(0, 1, default=1).default) is float
    with pytest.raises(ConfigError):
        Choice(("a", "b"), default="c")
    with pytest.raises(ConfigError):
        Int(lo=2, default=1)


def test_holds_is_value_and_type():
    assert Bool(True).holds(False) and not Bool(True).holds(0) and not Bool(True).holds("true")
    assert Int(lo=1, default=None).holds(None) and not Int(lo=1, default=None).holds(2.0)
    assert Float(default=1.0).holds(1.0) and not Float(default=1.0).holds(1)
    assert Choice(("a", "b")).holds("a") and not Choice(("a", "b")).holds("A")


def test_plain_defaults_declare_a_type():
    assert params.declared(True) == Bool(True)
    assert params.declared(3) == Int(default=3)
    assert params.declared(0.5) == Float(default=0.5)
    assert params.declared("ok") == Text("ok")
    with pytest.raises(TypeError, match="declare it with hsd.params"):
        params.declared(None)
    assert params.normalise("plugin", {"mode": "ok", "n": 2}, {"n": "5"}) == {"mode": "ok", "n": 5}
    with pytest.raises(ConfigError, match="n=x: 'x' is not an integer"):
        params.normalise("plugin", {"n": 2}, {"n": "x"})


def test_descriptions_of_the_types():
    assert (
        Float(1e-3, 10.0, log=True, default=1.0).describe() == "a number in [0.001, 10], log scale"
    )
    assert Int(lo=1, default=None).describe() == "an integer >= 1, or none"
    assert Int(hi=5, default=0).describe() == "an integer <= 5"
    assert Choice(("mse", "ce")).describe() == "one of mse, ce"
    assert Text("x").describe() == "any text"
    assert params.describe_all({"ht": Bool(True), "K": Int(lo=1, default=None)}) == (
        "K: an integer >= 1, or none, default none; ht: true or false (or yes/no, on/off, 1/0), "
        "default true"
    )


def test_every_builtin_method_declares_its_options_with_a_type():
    builtin = ("hsd", "tet", "sts", "dts", "ce", "sltt", "sltt-k", "tcja", "kd-response",
               "kd-feature", "kd-both")  # fmt: skip
    for name in builtin:
        for opt, decl in METHODS[name].options.items():
            assert isinstance(decl, params.Param) and not isinstance(decl, Text), (name, opt)


def test_one_run_id_for_every_spelling_and_a_refusal_naming_the_valid_values():
    def rid(**opts):
        return resolve(RunConfig("hsd", "n-digits", 3, options=opts)).run_id()

    assert rid(ht="true") == rid(ht="True") == rid(ht="1") == rid(ht=True) == rid(ht=1) == rid()
    assert rid(ht="false", distill="SKD") == rid(ht=False, distill="skd") != rid()
    for bad in ("maybe", "2", 2):
        with pytest.raises(ConfigError, match="option ht=.*true or false"):
            rid(ht=bad)
    with pytest.raises(ConfigError, match="takes no option bogus; its options: ann_loss: one of"):
        rid(bogus="1")
    k = resolve(RunConfig("sltt-k", "n-digits", 5, options={"K": "2"}))
    assert k.option("K") == 2 and k == resolve(RunConfig("sltt-k", "n-digits", 5, options={"K": 2}))


def test_sweep_variants_enter_through_the_same_declarations():
    """A variant's options are normalised like any other: a sweep written with "1" for True
    plans the same run as the registry's."""
    reg = S.resolve_all(S.expand(["ablation"], datasets=["n-digits"], T=[3], seeds=1))
    spelled = [
        S.Trial(t.cfg.replace(options={k: str(v).lower() for k, v in t.cfg.options}), t.cells)
        for t in reg
    ]
    assert [t.run_id for t in S.resolve_all(spelled)] == [t.run_id for t in reg]
    bad = S.Trial(RunConfig("hsd", "n-digits", 3, options={"ht": "maybe"}), (("ablation", "x"),))
    with pytest.raises(S.SweepError, match="option ht=maybe: 'maybe' is not true or false"):
        S.resolve_all([bad])


def test_tuning_points_are_parsed_by_the_search_space_declarations():
    from harness import tune

    t = tune.make_trial("n-digits", {"kd_lambda": "0.5", "tau": 2, "L": "8"}, "smoke", 3)
    assert (t.cfg.kd_lambda, t.cfg.tau, t.cfg.L) == (0.5, 2.0, 8) and type(t.cfg.tau) is float
    with pytest.raises(ConfigError, match="is not one of 4, 8, 16, 32"):
        tune.make_trial("n-digits", {"kd_lambda": 1.0, "L": 12}, "smoke", 3)
    assert tune.default_point("hsd") == {"kd_lambda": 1.0, "tau": 10.0, "L": 16}


def test_train_cli_refuses_a_bad_option_value_with_exit_2(data_env, tmp_path):
    from hsd.train import main

    for opt, message in (
        ("ht=maybe", "'maybe' is not true or false (or yes/no, on/off, 1/0)"),
        ("ht=2", "'2' is not true or false"),
        ("distill=banana", "'banana' is not one of skd, kd, none"),
    ):
        cp = call_main(main, ["--method", "hsd", "--dataset", "n-digits", "--T", "2",
                              "--option", opt, "--out", tmp_path / "r.json"])  # fmt: skip
        assert cp.returncode == 2 and message in cp.stderr, cp.stderr
        assert not (tmp_path / "r.json").exists()


def test_run_ids_of_the_committed_stores_do_not_move():
    """Every training run of a committed store is planned, with the same run id, by the sweep that
    made it (`results/latency-smoke` and its rerun on another CPU, `results/latency-smoke-xeon`:
    the latency sweep; `results/latency-smoke-5seeds`: the same with `--seeds 5`;
    `results/all-smoke`, when committed: all of them): stored rows stay keyed on their configs."""
    stores = {
        "latency-smoke": (["latency"], 3),
        "latency-smoke-xeon": (["latency"], 3),
        "latency-smoke-5seeds": (["latency"], 5),
        "all-smoke": ([n for n in S.SWEEPS if S.SWEEPS[n].trains], 3),
    }
    checked = 0
    for folder, (sweeps, seeds) in stores.items():
        path = REPO / "results" / folder / "results.jsonl"
        if not path.exists():
            continue
        rows = [json.loads(x) for x in path.read_text().split("\n") if x]
        stored = {r["run_id"] for r in rows if r.get("sweep") != "params"}
        planned = {t.run_id for t in S.resolve_all(S.expand(sweeps, seeds=seeds))}
        assert stored and stored == planned, folder
        checked += 1
    assert checked, "no committed store under results/"


def test_use_best_values_are_read_with_their_field_types():
    """A hand-written best_params.json saying 1 where --tune writes 1.0 plans the same runs."""

    def ids(best):
        trials = S.expand(
            ["ablation"], datasets=["n-digits"], T=[3], seeds=1, best=S.Tuned("hsd", best)
        )
        return [t.run_id for t in S.resolve_all(trials)]

    assert ids({"n-digits": {"kd_lambda": 1, "tau": 4, "L": 8}}) == ids(
        {"n-digits": {"kd_lambda": 1.0, "tau": 4.0, "L": 8}}
    )


def test_dropout_is_snn5_only_with_the_profiles_values():
    """SNN-5 gets the PLIF paper's 0.5 in the paper profile and none in the smoke profile; VGG-SNN
    has no dropout, so asking for one on a VGG dataset is refused before anything runs."""
    from hsd.config import ConfigError, RunConfig
    from hsd.method import resolve

    def dropout(dataset, profile, **kw):
        return resolve(RunConfig("tet", dataset, 5, profile=profile, **kw)).dropout

    assert dropout("sim-gestures", "paper") == 0.5
    assert dropout("sim-gestures", "smoke") == 0.0
    assert dropout("sim-gestures", "smoke", dropout=0.2) == 0.2
    assert dropout("n-digits", "smoke") is None
    with pytest.raises(ConfigError, match="has no dropout"):
        dropout("n-digits", "smoke", dropout=0.2)


def test_the_resolved_dropout_reaches_the_snn5_model():
    """The smoke SNN-5 (ANN and SNN alike) is built without dropout, the paper's with p = 0.5."""
    from hsd.config import RunConfig
    from hsd.data import DATASETS
    from hsd.method import resolve
    from hsd.models import model_for_run

    spec = DATASETS["sim-gestures"]
    for profile, p in (("smoke", 0.0), ("paper", 0.5)):
        cfg = resolve(RunConfig("tet", "sim-gestures", 5, profile=profile, size=32, width=0.125))
        for neuron in ("lif", "qcfs"):
            model = model_for_run(cfg, spec, neuron)
            drops = [m.p for m in model.modules() if type(m).__name__ == "Dropout"]
            assert drops == [p, p], (profile, neuron, drops)


def test_a_preset_sets_an_option_the_user_left_unset(monkeypatch):
    """A method's preset may hold one of its declared options: it replaces the declared default,
    is parsed by the declaration, leaves a user's value alone, and reaches the alias (sts) too."""
    from baselines.tet import TET, TET_MSE_WEIGHT
    from hsd.config import ConfigError, RunConfig
    from hsd.method import resolve
    from hsd.presets import Per

    presets = {**TET.presets, "smoke": {**TET.presets["smoke"], "mse_weight": Per(vgg=0.02)}}
    monkeypatch.setattr(TET, "presets", presets)

    def mse(method="tet", profile="smoke", **options):
        return resolve(RunConfig(method, "n-digits", 5, profile=profile, options=options)).option(
            "mse_weight"
        )

    assert mse() == 0.02 and mse("sts") == 0.02
    assert mse(mse_weight="0.1") == 0.1
    assert mse(profile="paper") == TET_MSE_WEIGHT
    monkeypatch.setattr(TET, "presets", {**presets, "smoke": {"mse_weight": "much"}})
    with pytest.raises(ConfigError, match="mse_weight"):
        mse()
