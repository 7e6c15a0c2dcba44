"""What every training method implements, the one registry of methods, and `resolve()`.

A method owns its recipe (which frames, which losses, which stages) and its presets (data, see
`hsd.presets`); the engine (`hsd.engine`) owns the loops, checkpoints and evaluation, so every
method is trained and measured the same way. `hsd.execute.execute` runs one resolved config.

Methods are found by name in `METHODS`, whose providers load on demand from the ``hsd.methods``
entry-point group (`hsd.registry`): HSD itself and this project's baselines register there in
pyproject.toml, and any other installed package can add its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hsd import params, presets
from hsd.config import ConfigError, RunConfig, validate
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


def resolve_for(cfg: RunConfig, spec: Any) -> RunConfig:
    """`resolve` for a given dataset spec (name, arch, default_frames, ...)."""
    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method {cfg.method!r}; valid: {', '.join(METHODS.names())}")
    method = METHODS[cfg.method]
    # Every option value enters the config here, normalised: ht=1 and ht=true are one run id.
    options = params.normalise(f"method {cfg.method!r}", method.options, dict(cfg.options))
    if method.alias_of:
        return resolve_for(cfg.replace(method=method.alias_of), spec)
    cfg = method.canonical(cfg.replace(options=options), spec)
    filled = {k: v for k, v in preset_values(cfg, method, spec).items() if getattr(cfg, k) is None}
    out = cfg.replace(**filled)
    validate(out)
    method.check(out)
    return out
