"""One training run, described by a frozen dataclass that is validated before anything runs.

A `RunConfig` names the method, dataset and inference time steps `T`; every other field may be left
`None` and is then filled by `resolve()` from the method's preset for the chosen profile and dataset.
The resolved config is what gets hashed into the run id, saved beside every checkpoint and written
into every result row, so two runs with the same resolved config are the same run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from hsd.presets import BASE, PROFILES

# Implemented in hsd.data.augment, named here so a config validates without importing the
# data layer (tonic, scikit-learn, ...).
AUGMENTATIONS = ("none", "flip_roll", "roll", "nda")
# How Adam applies weight decay (`hsd.engine.make_optimizer`): "decoupled" shrinks each weight by
# lr x weight_decay per step (AdamW, Loshchilov & Hutter, "Decoupled Weight Decay
# Regularization"); "coupled" adds weight_decay x w to the gradient before Adam normalises it
# (torch.optim.Adam's weight_decay, the authors' code). SGD's decay is the coupled L2 either way.
ADAM_DECAYS = ("decoupled", "coupled")
DEFAULT_ADAM_DECAY = BASE["any"]["adam_decay"]
# Fields added after run ids were first published, with the value that leaves them out of the id,
# so that every run id planned before them stays. Stored runs that the new field changes carry no
# such column: Adam with a weight decay above 0 decayed coupled before `adam_decay` existed.
ID_NEUTRAL = {"adam_decay": DEFAULT_ADAM_DECAY}


class ConfigError(ValueError):
    """A run configuration that cannot run; the message says which field and how to fix it."""


@dataclass(frozen=True)
class RunConfig:
    method: str
    dataset: str
    T: int  # inference time steps: the frames the SNN sees at test time
    seed: int = 0
    profile: str = "smoke"
    # Frames per sample the event stream is integrated into. HSD and DTS use the dataset's F_total;
    # same-time-step training (STS, TET, SLTT, TCJA) integrates the whole stream into T frames.
    frames: int | None = None
    pre_frames: int | None = None  # T_p: frames of the ANN pre-training window (HT methods)
    L: int | None = None  # QCFS quantization step
    qcfs_threshold: float | None = None  # initial QCFS threshold λ of every layer (paper: 8.0)
    kd_lambda: float | None = None  # weight of the distillation term (HSD's λ_SKD, KD's λ)
    tau: float | None = None  # distillation temperature
    epochs: int | None = None  # SNN training / fine-tuning epochs
    pre_epochs: int | None = None  # ANN pre-training epochs (HT methods)
    batch_size: int | None = None
    lr: float | None = None
    pre_lr: float | None = None
    weight_decay: float | None = None
    adam_decay: str | None = None  # one of ADAM_DECAYS
    size: int | None = None  # input frames are resized to size x size
    width: float | None = None  # channel width multiplier of the architecture
    dropout: float | None = None  # SNN-5's classifier dropout (VGG-SNN has none: left unset)
    neuron: str | None = None
    augment: str | None = None
    bf16: bool = False
    options: tuple[tuple[str, Any], ...] = field(default=())  # method-specific, sorted by name

    def __post_init__(self) -> None:
        # Accept a dict for convenience but store a sorted tuple so the config stays hashable.
        opts = self.options
        if isinstance(opts, dict):
            opts = tuple(sorted(opts.items()))
        else:
            opts = tuple(sorted(tuple(kv) for kv in opts))
        object.__setattr__(self, "options", opts)

    # -- convenience -------------------------------------------------------------------------
    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown run config fields {unknown}; valid: {sorted(known)}")
        return cls(**d)

    def run_id(self) -> str:
        """Stable short hash of the config (resolve it first so defaults are part of the id)."""
        d = self.to_dict()
        for name, neutral in ID_NEUTRAL.items():
            if d[name] in (None, neutral):
                del d[name]
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def first_eval_frame(self) -> int:
        """Index of the first frame the SNN sees at inference (T_p for HT methods, else 0)."""
        return self.pre_frames or 0


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def validate(cfg: RunConfig) -> None:
    """Check a resolved config; raises ConfigError naming the field and the fix."""
    _check(
        cfg.profile in PROFILES, f"unknown profile {cfg.profile!r}; valid: {', '.join(PROFILES)}"
    )
    _check(isinstance(cfg.T, int) and cfg.T >= 1, f"T must be an integer >= 1, got {cfg.T!r}")
    _check(cfg.frames is not None and cfg.frames >= 1, f"frames must be >= 1, got {cfg.frames!r}")
    pre = cfg.pre_frames or 0
    _check(pre >= 0, f"pre_frames (T_p) must be >= 0, got {pre}")
    _check(
        pre + cfg.T <= cfg.frames,
        f"T_p + T = {pre} + {cfg.T} = {pre + cfg.T} exceeds the {cfg.frames} frames per sample; "
        f"lower T or pre_frames, or integrate into more frames",
    )
    if cfg.L is not None:
        _check(
            isinstance(cfg.L, int) and cfg.L >= 1,
            f"L (QCFS step) must be an integer >= 1, got {cfg.L!r}",
        )
    for name in ("kd_lambda", "tau", "lr", "pre_lr", "qcfs_threshold"):
        v = getattr(cfg, name)
        if v is not None:
            ok = math.isfinite(v) and (v > 0 or (name == "kd_lambda" and v == 0))
            _check(ok, f"{name} must be a positive finite number, got {v!r}")
    for name in ("epochs", "pre_epochs", "batch_size", "size"):
        v = getattr(cfg, name)
        if v is not None:
            _check(
                isinstance(v, int) and v >= (0 if "epochs" in name else 1), f"{name} invalid: {v!r}"
            )
    if cfg.width is not None:
        _check(cfg.width > 0, f"width must be > 0, got {cfg.width!r}")
    if cfg.dropout is not None:
        _check(0.0 <= cfg.dropout < 1.0, f"dropout must be in [0, 1), got {cfg.dropout!r}")
    if cfg.adam_decay is not None:
        _check(
            cfg.adam_decay in ADAM_DECAYS,
            f"unknown adam_decay {cfg.adam_decay!r}; valid: {', '.join(ADAM_DECAYS)}",
        )
    if cfg.augment is not None:
        _check(
            cfg.augment in AUGMENTATIONS,
            f"unknown augment {cfg.augment!r}; valid: {', '.join(AUGMENTATIONS)}",
        )
