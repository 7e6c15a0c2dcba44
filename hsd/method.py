"""What every training method implements, the one registry of methods, and `resolve()`.

A method owns its recipe (which frames, which losses, which stages) and its presets (data, see
`hsd.presets`); the engine (`hsd.engine`) owns the loops, checkpoints and evaluation, so every
method is trained and measured the same way. `hsd.execute.execute` runs one resolved config.

Methods are found by name in `METHODS`, whose providers load on demand from the ``hsd.methods``
entry-point group (`hsd.registry`): HSD itself and this project's baselines register there in
pyproject.toml, and any other installed package can add its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hsd import params, presets
from hsd.config import ConfigError, RunConfig, validate
from hsd.models import check_arch_fields
from hsd.registry import Registry

# Epoch callback: (stage, epoch index starting at 1, epochs in that stage, the epoch's
# learning-curve record, `hsd.engine.EPOCH_FIELDS`). A resumed stage first replays the epochs
# restored from its checkpoint, so a listener (the harness's learning-curve file) sees them all.
EpochCallback = Callable[[str, int, int, dict[str, Any]], None]


@dataclass
class RunContext:
    """Everything a run needs besides its config: data, device, where to checkpoint."""

    data: Any  # hsd.data.FrameSet, already loaded with cfg.frames frames per sample
    device: torch.device
    checkpoint_dir: Path | None = None  # per-stage checkpoints each epoch; resumed when present
    on_epoch: EpochCallback | None = None
    info: dict[str, Any] = field(default_factory=dict)  # what the method wants in every row


class Method:
    """Base class of a training method. Subclasses set the class attributes and implement `run`.

    - `options`: the method-specific options, each declared with its type and default
      (`hsd.params`: ``{"ht": Bool(False), "loss": Choice(("mse", "ce"), default="mse")}``; a
      plain bool/int/float/str default declares that type). `resolve` normalises every given
      value through `hsd.params.normalise`; any other option or value is an error naming the
      valid ones, so a misspelled option never silently does nothing.
    - `presets`: ``{profile: {field: value}}`` (`hsd.presets`), the method's recipe as data.
    - `search_space`: what tuning (`python -m harness.run --tune --methods <name>`) searches, as
      data: ``{name: Param}`` whose names are `RunConfig` fields (lr, weight_decay, kd_lambda, ...)
      or this method's own options; every sampled point is parsed by these declarations. The
      default is the space every method shares (`hsd.params.BASE_SPACE`: learning rate and weight
      decay); a method adds its own knobs with ``{**BASE_SPACE, "tau": Float(...)}``.
    - `alias_of`: this name is another method under the name a paper uses (e.g. ``sts`` = ``tet``):
      `resolve` rewrites it, so both names give one run id and one training.
    - `any_t`: one trained model serves every inference T = t <= T (its rows at t are the cells at
      T = t; e.g. DTS, trained on all frames and tested on the first t).
    """

    name: str = ""
    summary: str = ""
    neuron: str = "lif"
    options: dict[str, Any] = {}
    presets: presets.Preset = {}
    search_space: Mapping[str, params.Param] = params.BASE_SPACE
    alias_of: str | None = None
    any_t: bool = False

    def preset_layers(self, cfg: RunConfig) -> list[presets.Preset]:
        """The preset tables that apply to `cfg` (later wins); an option may pick another table."""
        return [self.presets]

    def canonical(self, cfg: RunConfig, spec: Any) -> RunConfig:
        """The config this method actually trains for `cfg` (default: `cfg` itself). A method
        whose one model serves every T (`any_t`) trains the same run whatever T was asked."""
        return cfg

    def frame_plan(self, cfg: RunConfig, spec: Any) -> dict[str, Any]:
        """Frames per sample and the pre-training window. Default: same-time-step training, the
        whole event stream integrated into T frames."""
        return {"frames": cfg.T, "pre_frames": 0}

    def training_stages(self, cfg: RunConfig) -> list[tuple[str, int, int]]:
        """The training stages a resolved run goes through, in order, as (stage name as reported
        to `on_epoch`, epochs, frames per sample): what the progress bar and the cost estimate
        count. Default: an ANN pre-training on the first `pre_frames` frames when there are any
        (HT), then the SNN on the remaining frames."""
        pre = cfg.pre_frames or 0
        ann = [("pretrain", cfg.pre_epochs or 0, pre)] if pre else []
        return ann + [("train", cfg.epochs or 0, cfg.frames - pre)]

    def check(self, cfg: RunConfig) -> None:
        """Method-specific validation of a resolved config; raise ConfigError to refuse it."""

    def run(self, cfg: RunConfig, ctx: RunContext) -> Any:
        """Train and evaluate; return the `hsd.engine.Evaluation` of the selected model on test."""
        raise NotImplementedError


def _instantiate(name: str, obj: Any) -> Method:
    """An entry point of ``hsd.methods`` names a Method subclass (or an instance)."""
    method = obj() if isinstance(obj, type) else obj
    if not isinstance(method, Method):
        raise TypeError(f"entry point {name!r} must name a hsd.method.Method subclass, got {obj!r}")
    if method.name != name:
        raise ValueError(f"entry point {name!r} names method {method.name!r}; use the same name")
    return method


METHODS: Registry[Method] = Registry("method", group="hsd.methods", adapt=_instantiate)


# RunConfig fields a search space may not name: they say which run it is, not how it trains.
UNTUNABLE_FIELDS = ("method", "dataset", "T", "seed", "profile", "options")


def target(name: str) -> str:
    """The method a name trains (an alias's target, e.g. sts -> tet); ConfigError if unknown."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; valid: {', '.join(METHODS.names())}")
    method = METHODS[name]
    return target(method.alias_of) if method.alias_of else name


def search_space(name: str) -> Mapping[str, params.Param]:
    """The tuning search space of a method (an alias: its target's), every name checked to be a
    tunable RunConfig field or one of the method's options."""
    method = METHODS[target(name)]
    fields = {f.name for f in dataclasses.fields(RunConfig)} - set(UNTUNABLE_FIELDS)
    bad = sorted(set(method.search_space) - fields - set(method.options))
    if bad:
        raise ConfigError(
            f"method {method.name!r} declares a search space over {', '.join(bad)}, which is "
            f"neither a tunable config field ({', '.join(sorted(fields))}) nor one of its options"
        )
    return method.search_space


def split_point(name: str, point: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A point of a method's search space as (config fields, options), each value parsed by its
    declaration (ConfigError naming the valid values); names outside the space are refused."""
    space, method = search_space(name), METHODS[target(name)]
    unknown = sorted(set(point) - set(space))
    if unknown:
        raise ConfigError(
            f"method {method.name!r} tunes no {', '.join(unknown)}; its search space: "
            f"{params.describe_space(space)}"
        )
    fields: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in point.items():
        try:
            parsed = space[key].parse(value)
        except ConfigError as err:
            raise ConfigError(f"{method.name} {key}={value!s}: {err}") from None
        (options if key in method.options else fields)[key] = parsed
    return fields, options


def preset_values(cfg: RunConfig, method: Method, spec: Any) -> dict[str, Any]:
    """Every preset value for `cfg` (before the user's fields): the merge rule of `hsd.presets`."""
    tables = [*presets.layers(presets.BASE, cfg.profile)]
    for table in method.preset_layers(cfg):
        tables += presets.layers(table, cfg.profile)
    values = presets.merge(tables, spec)
    values.update(method.frame_plan(cfg, spec))
    return values


def resolve(cfg: RunConfig) -> RunConfig:
    """Fill the unset fields from the method's presets and check the result.

    Raises ConfigError (unknown method/dataset/option, impossible frame windows, ...) before any
    data is touched or any training starts.
    """
    from hsd.data import DATASETS  # the data layer is heavy to import; only needed here

    if cfg.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {cfg.dataset!r}; valid: {', '.join(DATASETS.names())}")
    return resolve_for(cfg, DATASETS[cfg.dataset])


CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(RunConfig)) - {"options"}


def resolve_for(cfg: RunConfig, spec: Any) -> RunConfig:
    """`resolve` for a given dataset spec (name, arch, default_frames, ...)."""
    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method {cfg.method!r}; valid: {', '.join(METHODS.names())}")
    method = METHODS[cfg.method]
    owner = f"method {cfg.method!r}"
    given = dict(cfg.options)
    # Every option value enters the config here, normalised: ht=1 and ht=true are one run id.
    options = params.normalise(owner, method.options, given)
    if method.alias_of:  # checked against the alias's options; the target fills its own
        return resolve_for(cfg.replace(method=method.alias_of), spec)
    cfg = method.canonical(cfg.replace(options=options), spec)
    values = preset_values(cfg, method, spec)
    # A preset may also set an option the user left unset (a tuned smoke value of a method's own
    # knob, e.g. TET's mse_weight): it then replaces the declaration's default.
    preset_options = {k: v for k, v in values.items() if k in method.options and k not in given}
    if preset_options:
        cfg = cfg.replace(
            options=params.normalise(owner, method.options, {**given, **preset_options})
        )
    # A shared table (TET's serves CE and the KD students too) may hold an option another method
    # does not declare: only config fields fill the config.
    filled = {k: v for k, v in values.items() if k in CONFIG_FIELDS and getattr(cfg, k) is None}
    out = cfg.replace(**filled)
    check_arch_fields(out, spec)
    validate(out)
    method.check(out)
    return out
