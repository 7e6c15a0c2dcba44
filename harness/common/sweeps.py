"""Sweeps as data: one registry (`SWEEPS`) that the run CLI, the aggregation and the report read.

A sweep is a list of variants (a label, a method, its options and fields, and which T list it runs
at) × datasets × seeds. Each (sweep, variant) pair is a *cell* of a table or figure of the paper:

- ``latency``      Figure 2 + Table 1: accuracy at t = T versus T; variant = method name.
- ``ablation``     Table 2: HSD with/without hybrid training (HT) and with no KD / vanilla KD / SKD.
- ``quantization`` Table 3: HSD with QCFS step L ∈ {4, 8, 16, 32}.
- ``ht``           Table 4: TET and SLTT fine-tuning with and without the HT split of the frames.
- ``kd``           Table 6: same-time-step training (STS) vs vanilla KD (response/feature/both).
- ``params``       Table 5: parameter counts only (no training; see `params_rows`).

Every expanded config is resolved (`hsd.method.resolve`) before anything runs, so an unknown
method/dataset/option or a T the frames cannot give fails the whole request up front
(`SweepError`). Cells whose resolved configs are identical are **one run**: `sts` and `tet` at the
same T, DTS at every T (one model serves every t), and the same HSD run serving Figure 2, Table 2's
HT+SKD and Table 3's cell at the preset L when they run together (`--sweep all`). Such a `Trial` carries every
cell it serves, and its rows are reported under each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hsd.config import ConfigError, RunConfig
from hsd.presets import PROFILES

# The simulated stand-ins run anywhere: n-digits for CIFAR10-DVS / N-Caltech101, sim-gestures for
# DVS-Gesture. Real sets are opt-in with --datasets and --root.
DEFAULT_DATASETS = ("n-digits", "sim-gestures")
DEFAULT_SEEDS = {"smoke": 3, "paper": 3}

# T lists a variant runs at, per dataset. "grid": Figure 2's latency grid (HSD needs at least one
# pre-training frame, so T <= F_total - 1); "table": the paper's T for the tables (HSD: T_p + T_f =
# 5 + 5 on the 10-frame sets, 6 + 10 on DVS-Gesture); "table1": Table 1's T (gestures: 5 and 10).
T_LISTS: dict[str, dict[str, dict[str, tuple[int, ...]]]] = {
    "grid": {
        "smoke": {"n-digits": (1, 3, 5), "sim-gestures": (1, 3, 5)},
        "paper": {
            "cifar10-dvs": tuple(range(1, 10)),
            "n-caltech101": tuple(range(1, 10)),
            "n-digits": tuple(range(1, 10)),
            "dvs-gesture": (1, 2, 3, 4, 5, 6, 8, 10, 12, 15),
            "sim-gestures": (1, 2, 3, 4, 5, 6, 8, 10, 12, 15),
        },
    },
    "table": {
        p: {
            "cifar10-dvs": (5,),
            "n-caltech101": (5,),
            "n-digits": (5,),
            "dvs-gesture": (10,),
            "sim-gestures": (10,),
        }
        for p in PROFILES
    },
    # Table 1 reports DVS-Gesture at T = 5 and 10. The smoke profile keeps T = 5 only: on 2 CPU
    # cores the three T = 10 runs per seed (TET, SLTT, TCJA on 10-frame SNN-5 inputs) cost a
    # quarter of the default sweep's time for a column no smoke figure needs.
    "table1": {
        "smoke": {"n-digits": (5,), "sim-gestures": (5,)},
        "paper": {
            "cifar10-dvs": (5,),
            "n-caltech101": (5,),
            "n-digits": (5,),
            "dvs-gesture": (5, 10),
            "sim-gestures": (5, 10),
        },
    },
}


class SweepError(ValueError):
    """A sweep that cannot run (bad name, method, dataset, T, ...); the message lists every problem."""


@dataclass(frozen=True)
class Variant:
    """One cell label of a sweep: the method with its options and fields, and its T list."""

    label: str
    method: str
    options: Mapping[str, Any] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)
    T: str = "table"


@dataclass(frozen=True)
class Sweep:
    name: str
    title: str  # what of the paper it reproduces
    variants: tuple[Variant, ...]
    trains: bool = True

    @property
    def order(self) -> tuple[str, ...]:
        """Variant labels in the order tables and plots list them."""
        return tuple(v.label for v in self.variants)

    def variant(self, label: str) -> Variant:
        for v in self.variants:
            if v.label == label:
                return v
        raise SweepError(f"sweep {self.name!r} has no variant {label!r}; valid: {self.order}")


# Figure 2's methods walk the latency grid; methods that only Table 1 lists run at its T, so the
# grid holds no cell that no table or figure shows.
LATENCY = Sweep(
    "latency",
    "Figure 2 (accuracy vs T) and Table 1",
    (
        Variant("hsd", "hsd", T="grid"),
        Variant("sts", "sts", T="grid"),
        Variant("dts", "dts", T="grid"),
        Variant("tet", "tet", T="table1"),
        Variant("sltt", "sltt", T="table1"),
        Variant("sltt-k", "sltt-k", T="table1"),
        Variant("tcja", "tcja", T="table1"),
    ),
)
DEFAULT_METHODS = ("hsd", "sts", "dts", "tet", "sltt", "tcja")

SWEEPS: dict[str, Sweep] = {
    s.name: s
    for s in (
        LATENCY,
        Sweep(
            "ablation",
            "Table 2: hybrid training (HT) and step-wise distillation (SKD)",
            (
                Variant("none", "hsd", {"ht": False, "distill": "none"}),
                Variant("HT", "hsd", {"ht": True, "distill": "none"}),
                Variant("SKD", "hsd", {"ht": False, "distill": "skd"}),
                Variant("HT+KD", "hsd", {"ht": True, "distill": "kd"}),
                Variant("HT+SKD", "hsd", {"ht": True, "distill": "skd"}),
            ),
        ),
        Sweep(
            "quantization",
            "Table 3: QCFS quantization step L",
            tuple(Variant(f"L={L}", "hsd", fields={"L": L}) for L in (4, 8, 16, 32)),
        ),
        Sweep(
            "ht",
            "Table 4: hybrid training applied to TET and SLTT",
            (
                Variant("TET w/o HT", "tet", {"ht": False}),
                Variant("TET w/ HT", "tet", {"ht": True}),
                Variant("SLTT w/o HT", "sltt", {"ht": False}),
                Variant("SLTT w/ HT", "sltt", {"ht": True}),
            ),
        ),
        Sweep(
            "kd",
            "Table 6: vanilla KD (response, feature, both) against same-T training",
            (
                Variant("baseline", "sts"),
                Variant("response", "kd-response"),
                Variant("feature", "kd-feature"),
                Variant("both", "kd-both"),
            ),
        ),
        Sweep("params", "Table 5: parameter counts (no training)", (), trains=False),
    )
}
# Table 5 architectures: arch name -> the paper's label.
ARCHS = {"vgg": "VGG-SNN", "snn5": "SNN-5"}


def sweep_names(name: str) -> list[str]:
    """The sweeps one --sweep value stands for ("all" = every sweep)."""
    if name == "all":
        return list(SWEEPS)
    if name not in SWEEPS:
        raise SweepError(f"unknown sweep {name!r}; valid: {', '.join([*SWEEPS, 'all'])}")
    return [name]


@dataclass(frozen=True)
class Trial:
    """One training run: the resolved config and every (sweep, variant) cell it serves."""

    cfg: RunConfig
    cells: tuple[tuple[str, str], ...]

    @property
    def run_id(self) -> str:
        return self.cfg.run_id()

    @property
    def sweep(self) -> str:
        return self.cells[0][0]

    @property
    def variant(self) -> str:
        return self.cells[0][1]

    def label(self) -> str:
        return f"{self.variant} {self.cfg.dataset} T={self.cfg.T} seed={self.cfg.seed}"

    def row_fields(self) -> dict[str, Any]:
        """What every row of this run carries to place it in the tables."""
        return {
            "sweep": self.sweep,
            "variant": self.variant,
            "cells": [list(c) for c in self.cells],
        }

    def to_dict(self) -> dict[str, Any]:
        return {"cells": [list(c) for c in self.cells], "cfg": self.cfg.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        return cls(RunConfig.from_dict(d["cfg"]), tuple(tuple(c) for c in d["cells"]))


def t_values(variant: Variant, dataset: str, profile: str, T: Sequence[int] | None) -> tuple:
    """The T a variant runs at on `dataset`: the user's --T, else its T list."""
    if T:
        return tuple(T)
    table = T_LISTS[variant.T][profile]
    if dataset not in table:
        raise SweepError(
            f"no default T for dataset {dataset!r} ({variant.T} list); pass --T (e.g. --T 1,2,5)"
        )
    return table[dataset]


def latency_variants(methods: Sequence[str] | None) -> tuple[Variant, ...]:
    """The latency sweep's variants for --methods (any registered method; default DEFAULT_METHODS)."""
    known = {v.label: v for v in LATENCY.variants}
    return tuple(known.get(m, Variant(m, m, T="grid")) for m in (methods or DEFAULT_METHODS))


def expand(
    names: Sequence[str],
    *,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    T: Sequence[int] | None = None,
    seeds: int | None = None,
    profile: str = "smoke",
    best: Tuned | None = None,
) -> list[Trial]:
    """The unresolved trials (one per cell) of the named training sweeps.

    `methods` only applies to ``latency``; `T` overrides every variant's T list; `best` holds one
    method's tuned values per dataset (`Tuned`), applied to every trial of that method (`apply_best`).
    """
    if profile not in PROFILES:
        raise SweepError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    datasets = tuple(datasets or DEFAULT_DATASETS)
    seeds = DEFAULT_SEEDS[profile] if seeds is None else seeds
    if seeds < 1:
        raise SweepError(f"--seeds must be >= 1, got {seeds}")
    out = []
    for name in names:
        sweep = SWEEPS[name]
        variants = latency_variants(methods) if name == "latency" else sweep.variants
        for ds in datasets:
            for v in variants:
                for t in t_values(v, ds, profile, T):
                    for seed in range(seeds):
                        cfg = RunConfig(
                            v.method,
                            ds,
                            int(t),
                            seed=seed,
                            profile=profile,
                            options=dict(v.options),
                            **dict(v.fields),
                        )
                        if best:
                            cfg = apply_best(cfg, v, best)
                        out.append(Trial(cfg, ((name, v.label),)))
    if best and out and not any(best.serves(t.cfg.method) for t in out):
        raise SweepError(
            f"--use-best holds values tuned for {best.method}, which this sweep does not run "
            f"(it runs {', '.join(sorted({t.cfg.method for t in out}))}); run a sweep with "
            f"{best.method} (e.g. --sweep latency --methods {best.method}) or drop --use-best"
        )
    return out


@dataclass(frozen=True)
class Tuned:
    """A best_params.json of --tune: the method it tuned and its best values per dataset (with the
    point's val_acc, T and trial, which are read, not applied)."""

    method: str
    values: Mapping[str, Mapping[str, Any]]

    META = ("val_acc", "T", "trial")

    def serves(self, method: str) -> bool:
        """Whether runs of `method` take these values (an alias takes its target's)."""
        from hsd.method import target

        return target(method) == target(self.method)

    def point(self, dataset: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(config fields, options) for `dataset`, each value parsed by the method's declared
        search space (a file edited by hand saying 1 where --tune wrote 1.0 is the same run id);
        ConfigError for a value or name the space refuses."""
        from hsd.method import split_point

        given = self.values.get(dataset) or {}
        point = {k: v for k, v in given.items() if k not in self.META and v is not None}
        try:
            return split_point(self.method, point)
        except ConfigError as err:
            raise ConfigError(f"{dataset}: {err}") from None


def apply_best(cfg: RunConfig, variant: Variant, best: Tuned) -> RunConfig:
    """Use tuned hyper-parameters (`harness.tune`, best_params.json) for a run of the method they
    were tuned for. A field or option the variant sets itself is its variable (Table 3's L) and
    stays."""
    if not best.serves(cfg.method):
        return cfg
    fields, options = best.point(cfg.dataset)
    fields = {k: v for k, v in fields.items() if k not in variant.fields}
    options = {k: v for k, v in options.items() if k not in variant.options}
    return cfg.replace(options={**dict(cfg.options), **options}, **fields)


def resolve_all(trials: Iterable[Trial]) -> list[Trial]:
    """Resolve every config (method presets, validation) before anything runs.

    Collects all problems into one SweepError so the user fixes them in one go. Trials whose
    resolved configs are identical (same run id) become one trial serving all their cells.
    """
    from hsd.method import resolve

    merged: dict[str, Trial] = {}
    problems: list[str] = []
    for t in trials:
        try:
            cfg = resolve(t.cfg)
        except (ConfigError, KeyError) as err:
            msg = f"{t.label()} ({t.cfg.method}): {err}"
            if msg not in problems:
                problems.append(msg)
            continue
        rid = cfg.run_id()
        if rid in merged:
            old = merged[rid]
            cells = old.cells + tuple(c for c in t.cells if c not in old.cells)
            merged[rid] = Trial(old.cfg, cells)
        else:
            merged[rid] = Trial(cfg, t.cells)
    if problems:
        head = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise SweepError(f"{len(problems)} invalid trial config(s):\n  {head}{more}")
    return list(merged.values())


def check_datasets(datasets: Sequence[str]) -> None:
    """Unknown dataset names -> SweepError listing the valid ones."""
    from hsd.data import DATASETS

    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise SweepError(f"unknown dataset(s) {bad}; valid: {', '.join(DATASETS.names())}")


def trial_cost(cfg: RunConfig) -> int:
    """Training work of one resolved run in epoch-frames: the sum over the method's training stages
    (`Method.training_stages`: ANN pre-training or a distillation teacher, then the SNN) of
    epochs × frames per sample.

    Multiplied by the training-set size this is the number of single-frame forward/backward passes;
    it ignores the per-frame cost difference between an ANN and an SNN stage.
    """
    from hsd.method import METHODS

    return sum(e * f for _, e, f in METHODS[cfg.method].training_stages(cfg))


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
                "cells": [["params", arch]],
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
