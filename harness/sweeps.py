"""Sweeps as data: each sweep of the paper expands to a list of `Trial`s, one per training run.

A sweep is (datasets × T grid × seeds × variants); a variant is a method plus its options. The
variant labels are the shared results vocabulary (see the team contract) that `harness.aggregate`
turns into the paper's tables and figures:

- ``latency``      Figure 2 + Table 1: accuracy at t = T vs T; variant = method name.
- ``ablation``     Table 2: HSD with/without hybrid training (HT) and with no KD / vanilla KD / SKD.
- ``quantization`` Table 3: HSD with QCFS step L ∈ {4, 8, 16, 32}.
- ``ht``           Table 4: TET and SLTT fine-tuning with and without the HT split of the frames.
- ``kd``           Table 6: same-time-step training (STS) vs vanilla KD (response/feature/both).
- ``params``       Table 5: parameter counts only (no training; see `params_rows`).

Every expanded config is resolved with `hsd.method.resolve` before anything runs, so an unknown
method/dataset/option or a T the frames cannot give fails the whole sweep up front (`SweepError`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hsd.config import ConfigError, RunConfig

SWEEPS = ("latency", "ablation", "quantization", "ht", "kd", "params")
PROFILES = ("smoke", "paper")
# The simulated stand-ins run anywhere: n-digits for CIFAR10-DVS / N-Caltech101, sim-gestures for
# DVS-Gesture. Real sets are opt-in with --datasets and --root.
DEFAULT_DATASETS = ("n-digits", "sim-gestures")
DEFAULT_METHODS = ("hsd", "sts", "dts", "tet", "sltt", "tcja")

# The paper's inference T per dataset for the tables (HSD: T_p + T_f = 5 + 5 on the 10-frame sets,
# 6 + 10 on DVS-Gesture). Table 1 also reports DVS-Gesture at T = 5.
MAIN_T = {"cifar10-dvs": 5, "n-caltech101": 5, "n-digits": 5, "dvs-gesture": 10, "sim-gestures": 10}
TABLE1_T = {
    "cifar10-dvs": (5,),
    "n-caltech101": (5,),
    "n-digits": (5,),
    "dvs-gesture": (5, 10),
    "sim-gestures": (5, 10),
}
# Latency grids (Figure 2). HSD needs at least one pre-training frame, so T <= F_total - 1.
# smoke is the CPU default, three points of Figure 2's low-latency range per dataset (36 runs, about
# 7 minutes on 2 cores); paper walks the whole range.
T_GRID = {
    "smoke": {"n-digits": (1, 3, 5), "sim-gestures": (1, 3, 5)},
    "paper": {
        "cifar10-dvs": tuple(range(1, 10)),
        "n-caltech101": tuple(range(1, 10)),
        "n-digits": tuple(range(1, 10)),
        "dvs-gesture": (1, 2, 3, 4, 5, 6, 8, 10, 12, 15),
        "sim-gestures": (1, 2, 3, 4, 5, 6, 8, 10, 12, 15),
    },
}
DEFAULT_SEEDS = {"smoke": 1, "paper": 3}

# Table 2: (ht, distill) per ablation row.
ABLATION = {
    "none": {"ht": False, "distill": "none"},
    "HT": {"ht": True, "distill": "none"},
    "SKD": {"ht": False, "distill": "skd"},
    "HT+KD": {"ht": True, "distill": "kd"},
    "HT+SKD": {"ht": True, "distill": "skd"},
}
QUANT_L = (4, 8, 16, 32)
HT_VARIANTS = {
    "TET w/o HT": ("tet", False),
    "TET w/ HT": ("tet", True),
    "SLTT w/o HT": ("sltt", False),
    "SLTT w/ HT": ("sltt", True),
}
KD_VARIANTS = {
    "baseline": "sts",
    "response": "kd-response",
    "feature": "kd-feature",
    "both": "kd-both",
}
# Table 5 architectures: (variant = arch name, paper label).
ARCHS = {"vgg": "VGG-SNN", "snn5": "SNN-5"}


class SweepError(ValueError):
    """A sweep that cannot run (bad name, method, dataset, T, ...); the message lists every problem."""


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: the resolved config plus its place in the results tables."""

    sweep: str
    variant: str
    cfg: RunConfig

    @property
    def run_id(self) -> str:
        return self.cfg.run_id()

    def label(self) -> str:
        return f"{self.variant} {self.cfg.dataset} T={self.cfg.T} seed={self.cfg.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {"sweep": self.sweep, "variant": self.variant, "cfg": self.cfg.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        return cls(d["sweep"], d["variant"], RunConfig.from_dict(d["cfg"]))


def _grid(
    sweep: str,
    datasets: Sequence[str],
    Ts: dict[str, Sequence[int]],
    seeds: int,
    profile: str,
    variants: dict[str, dict[str, Any]],
) -> list[Trial]:
    """Cartesian product; `variants` maps a label to RunConfig keyword arguments."""
    out = []
    for ds in datasets:
        for T in Ts[ds]:
            for label, kw in variants.items():
                for seed in range(seeds):
                    cfg = RunConfig(dataset=ds, T=int(T), seed=seed, profile=profile, **kw)
                    out.append(Trial(sweep, label, cfg))
    return out


def _t_grid(datasets: Sequence[str], profile: str, T: Sequence[int] | None, table: dict) -> dict:
    if T:
        return {ds: tuple(T) for ds in datasets}
    missing = [ds for ds in datasets if ds not in table]
    if missing:
        raise SweepError(f"no default T for dataset(s) {missing}; pass --T (e.g. --T 1,2,5)")
    return {ds: table[ds] if isinstance(table[ds], tuple) else (table[ds],) for ds in datasets}


def expand(
    sweep: str,
    *,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    T: Sequence[int] | None = None,
    seeds: int | None = None,
    profile: str = "smoke",
    best: dict[str, dict[str, Any]] | None = None,
) -> list[Trial]:
    """The unresolved trials of one sweep (``all`` is handled by the caller, sweep by sweep).

    `methods` only applies to ``latency``; `T` overrides the default grid (latency) or the paper
    T (table sweeps); `best` maps a dataset to tuned HSD fields (``kd_lambda``, ``L``) applied to
    every HSD trial of that dataset (except L in the quantization sweep, which is its variable).
    """
    if sweep not in SWEEPS or sweep == "params":
        valid = ", ".join(s for s in SWEEPS if s != "params")
        raise SweepError(f"unknown training sweep {sweep!r}; valid: {valid} (params: params_rows)")
    if profile not in PROFILES:
        raise SweepError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    datasets = tuple(datasets or DEFAULT_DATASETS)
    seeds = DEFAULT_SEEDS[profile] if seeds is None else seeds
    if seeds < 1:
        raise SweepError(f"--seeds must be >= 1, got {seeds}")
    if methods and sweep != "latency":
        raise SweepError(
            f"--methods applies to the latency sweep only; {sweep!r} fixes its methods"
        )
    if sweep == "latency":
        Ts = _t_grid(datasets, profile, T, T_GRID[profile])
        variants = {m: {"method": m} for m in (methods or DEFAULT_METHODS)}
    else:
        Ts = _t_grid(datasets, profile, T, MAIN_T)
        if sweep == "ablation":
            variants = {k: {"method": "hsd", "options": o} for k, o in ABLATION.items()}
        elif sweep == "quantization":
            variants = {f"L={L}": {"method": "hsd", "L": L} for L in QUANT_L}
        elif sweep == "ht":
            variants = {k: {"method": m, "options": {"ht": h}} for k, (m, h) in HT_VARIANTS.items()}
        else:  # kd
            variants = {k: {"method": m} for k, m in KD_VARIANTS.items()}
    trials = _grid(sweep, datasets, Ts, seeds, profile, variants)
    if best:
        trials = [apply_best(t, best) for t in trials]
    return trials


def apply_best(trial: Trial, best: dict[str, dict[str, Any]]) -> Trial:
    """Use tuned HSD hyper-parameters (from `harness.tune`, best_params.json) for this trial."""
    params = best.get(trial.cfg.dataset)
    if trial.cfg.method != "hsd" or not params:
        return trial
    changes = {}
    if params.get("kd_lambda") is not None:
        changes["kd_lambda"] = float(params["kd_lambda"])
    if params.get("tau") is not None:
        changes["tau"] = float(params["tau"])
    if params.get("L") is not None and trial.sweep != "quantization":
        changes["L"] = int(params["L"])
    return Trial(trial.sweep, trial.variant, trial.cfg.replace(**changes))


def resolve_all(trials: Iterable[Trial]) -> list[Trial]:
    """Resolve every config (method defaults, validation) before anything runs.

    Collects all problems into one SweepError so the user fixes them in one go; identical
    resolved configs within a sweep (same run id) are kept once.
    """
    load_methods()
    from hsd.method import resolve

    out, problems, seen = [], [], set()
    for t in trials:
        try:
            cfg = resolve(t.cfg)
        except (ConfigError, KeyError) as err:
            msg = f"{t.label()} ({t.cfg.method}): {err}"
            if msg not in problems:
                problems.append(msg)
            continue
        r = Trial(t.sweep, t.variant, cfg)
        if r.run_id not in seen:
            seen.add(r.run_id)
            out.append(r)
    if problems:
        head = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise SweepError(f"{len(problems)} invalid trial config(s):\n  {head}{more}")
    return out


def load_methods() -> None:
    """Register the methods: `import baselines` (which registers HSD and every baseline), plus
    the modules named in $HSD_EXTRA_METHODS (comma-separated; a test hook for fake methods that
    must also be importable by Ray workers)."""
    import importlib

    try:
        import baselines  # noqa: F401
    except ImportError as err:  # pragma: no cover - baselines is part of this package
        raise SweepError(f"cannot import the method registry (baselines): {err}") from err
    for mod in filter(
        None, (m.strip() for m in os.environ.get("HSD_EXTRA_METHODS", "").split(","))
    ):
        importlib.import_module(mod)


def check_datasets(datasets: Sequence[str]) -> None:
    """Unknown dataset names -> SweepError listing the valid ones (for the params sweep)."""
    from hsd.data import DATASETS

    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise SweepError(f"unknown dataset(s) {bad}; valid: {', '.join(DATASETS.names())}")


def trial_cost(cfg: RunConfig) -> int:
    """Training work of one resolved run in epoch-frames: pre_epochs × T_p + epochs × (frames − T_p).

    Multiplied by the training-set size this is the number of single-frame forward/backward passes;
    it ignores the per-frame cost difference between ANN pre-training and SNN training.
    """
    pre = cfg.pre_frames or 0
    return (cfg.pre_epochs or 0) * pre + (cfg.epochs or 0) * (cfg.frames - pre)


def params_rows(datasets: Sequence[str]) -> list[dict[str, Any]]:
    """Table 5: parameter count of each dataset's architecture (VGG-SNN or SNN-5) at its input size
    and number of classes, one row per (dataset, architecture); variant = arch.

    Built at full width with IF neurons (the converted SNN), i.e. the paper's architecture, so a
    VGG-SNN with 10 classes at 48×48 has 9,271,498 parameters whatever the profile. (SNN-5 only
    fits inputs divisible by 32, so each dataset gets the architecture the paper uses for it.)
    """
    from hsd.data import DATASETS
    from hsd.metrics import count_parameters
    from hsd.models import build_model

    check_datasets(datasets)
    rows = []
    for ds in datasets:
        spec = DATASETS[ds]
        arch = spec.arch
        model = build_model(arch, spec.num_classes, 2, spec.default_size, 1.0, "if", 16)
        key = json.dumps([ds, arch, spec.num_classes, spec.default_size], sort_keys=True)
        rows.append(
            {
                "run_id": hashlib.sha256(key.encode()).hexdigest()[:16],
                "sweep": "params",
                "variant": arch,
                "arch_label": ARCHS.get(arch, arch),
                "dataset": ds,
                "arch": arch,
                "num_classes": spec.num_classes,
                "size": spec.default_size,
                "width": 1.0,
                "neuron": "if",
                "params": int(count_parameters(model)),
                "status": "ok",
            }
        )
    return rows
