"""Typed parameter declarations: what values a method option (or a tuned field) may take.

A method declares each option with one of these types and its default, next to its presets::

    options = {"ht": Bool(True), "distill": Choice(("skd", "kd", "none"), default="skd"),
               "K": Int(lo=1, default=None)}

`normalise` is the one function through which every option value enters a run config: the
single-run CLI's ``--option``, sweep variants and any `RunConfig` built in Python (tuning's too)
all reach it through `hsd.method.resolve`. It turns every accepted spelling into one value
(``ht=1``, ``ht=true`` and ``ht=True`` are the same ``True``, hence one run id) and refuses anything
else with a `ConfigError` that names the valid values.

Each type also describes itself in words (`describe`), and a `Float` carries a log scale, so the
same declaration can state a search space; nothing here depends on a tuning library.

The same types declare each method's tuning search space (`hsd.method.Method.search_space`):
`BASE_SPACE` below is the part every method shares.

Plain defaults (``{"mode": "ok"}``) still work for options of other packages: a bool, int, float or
str default declares `Bool`, `Int`, `Float` or `Text` (any text) with that default (`declared`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hsd.config import ConfigError

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
NONE_WORDS = ("none", "null")  # an optional Int/Float given back to its default


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bad(param: Param, value: Any) -> ConfigError:
    return ConfigError(f"{value!r} is not {param.describe()}")


@dataclass(frozen=True)
class Param:
    """A value type with a default. Subclasses implement `_parse` and `describe`."""

    def __post_init__(self) -> None:
        # The default is stored normalised, so a default and the same value given explicitly
        # are one value (one run id); a default the type refuses is a bug of the declaration.
        default = getattr(self, "default", None)
        if default is not None or not self.optional:
            object.__setattr__(self, "default", self.parse(default))

    @property
    def optional(self) -> bool:
        """Whether None is a value ("left to the presets"): declared with default None."""
        return False

    def parse(self, value: Any) -> Any:
        """The normalised value of `value` (text as typed on a command line, or a Python value);
        ConfigError naming the valid values when it is not one of them."""
        if self.optional and (
            value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)
        ):
            return None
        return self._parse(value)

    def holds(self, value: Any) -> bool:
        """Whether `value` is already a normalised value of this type (same value, same type)."""
        try:
            parsed = self.parse(value)
        except ConfigError:
            return False
        return parsed == value and type(parsed) is type(value)

    def _parse(self, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        """The valid values in words, e.g. "one of skd, kd, none"."""
        raise NotImplementedError


@dataclass(frozen=True)
class Bool(Param):
    default: bool = False

    def _parse(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if _is_int(value) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            word = value.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
        raise _bad(self, value)

    def describe(self) -> str:
        return "true or false (or yes/no, on/off, 1/0)"


def _range_text(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f" >= {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


@dataclass(frozen=True)
class Int(Param):
    lo: int | None = None
    hi: int | None = None
    default: int | None = None

    @property
    def optional(self) -> bool:
        return self.default is None

    def _parse(self, value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _bad(self, value) from None
        if not _is_int(value):
            raise _bad(self, value)
        value = int(value)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise _bad(self, value)
        return value

    def describe(self) -> str:
        return "an integer" + _range_text(self.lo, self.hi) + (", or none" if self.optional else "")


@dataclass(frozen=True)
class Float(Param):
    lo: float | None = None
    hi: float | None = None
    log: bool = False  # a search over it samples log-uniformly (lo must then be > 0)
    default: float | None = None

    def __post_init__(self) -> None:
        if self.log and (self.lo is None or self.hi is None or self.lo <= 0):
            raise ValueError(
                f"a log-scale Float needs 0 < lo <= hi, got lo={self.lo}, hi={self.hi}"
            )
        super().__post_init__()

    @property
    def optional(self) -> bool:
        return self.default is None

    def _parse(self, value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise _bad(self, value) from None
        if not _is_real(value) or not math.isfinite(value):
            raise _bad(self, value)
        value = float(value)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise _bad(self, value)
        return value

    def describe(self) -> str:
        text = "a number" + _range_text(self.lo, self.hi)
        text += ", log scale" if self.log else ""
        return text + (", or none" if self.optional else "")


@dataclass(frozen=True)
class Choice(Param):
    values: tuple = ()
    default: Any = None  # None: the first value

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a Choice needs at least one value")
        object.__setattr__(self, "values", tuple(self.values))
        if self.default is None:
            object.__setattr__(self, "default", self.values[0])
        super().__post_init__()

    def _parse(self, value: Any) -> Any:
        for v in self.values:  # the value itself, of the same kind (True is not 1 here)
            same_kind = (
                type(v) is type(value)
                or (_is_real(v) and _is_real(value))
                or (isinstance(v, str) and isinstance(value, str))
            )
            if same_kind and v == value:
                return v
        if isinstance(value, str):  # as typed: "16" for 16, "SKD" for "skd"
            text = value.strip().lower()
            matches = [v for v in self.values if str(v).lower() == text]
            if len(matches) == 1:
                return matches[0]
        raise _bad(self, value)

    def describe(self) -> str:
        return "one of " + ", ".join(str(v) for v in self.values)


@dataclass(frozen=True)
class Text(Param):
    """Any text: what a plain str default declares (a method that knows its values uses Choice)."""

    default: str = ""

    def _parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _bad(self, value)
        return value

    def describe(self) -> str:
        return "any text"


def declared(value: Any) -> Param:
    """The type a declaration states: a Param as is, else inferred from a plain default."""
    if isinstance(value, Param):
        return value
    if isinstance(value, bool):
        return Bool(value)
    if _is_int(value):
        return Int(default=int(value))
    if _is_real(value):
        return Float(default=float(value))
    if isinstance(value, str):
        return Text(value)
    raise TypeError(
        f"cannot infer a type from the default {value!r}; declare it with hsd.params "
        "(Bool, Int, Float, Choice, Text)"
    )


def defaults(declarations: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option at its default (what `normalise` gives when nothing is given)."""
    return {name: declared(decl).default for name, decl in declarations.items()}


def describe_all(declarations: Mapping[str, Any]) -> str:
    """Every declared option with its valid values and default, for error messages and help."""
    parts = []
    for name in sorted(declarations):
        p = declared(declarations[name])
        default = "none" if p.default is None else str(p.default).lower()
        if isinstance(p, Text):
            default = repr(p.default)
        parts.append(f"{name}: {p.describe()}, default {default}")
    return "; ".join(parts) or "none"


def describe_searched(param: Param) -> str:
    """What a search over `param` samples: its values in words, without "or none" (an optional
    value leaves a field to the presets; a search always gives one)."""
    return param.describe().removesuffix(", or none")


def describe_space(space: Mapping[str, Param]) -> str:
    """A search space in words, one "name: values" per declaration."""
    return "; ".join(f"{name}: {describe_searched(p)}" for name, p in space.items()) or "nothing"


def normalise(
    owner: str, declarations: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Every declared option's normalised value: the given ones parsed, the rest their defaults.

    `owner` names the declarer in messages (e.g. "method 'hsd'"). An undeclared name or a value
    its type refuses raises ConfigError naming the valid names or values.
    """
    unknown = sorted(set(given) - set(declarations))
    if unknown:
        raise ConfigError(
            f"{owner} takes no option {', '.join(unknown)}; its options: "
            f"{describe_all(declarations)}"
        )
    out = defaults(declarations)
    for name, value in given.items():
        try:
            out[name] = declared(declarations[name]).parse(value)
        except ConfigError as err:
            raise ConfigError(f"{owner} option {name}={value!s}: {err}") from None
    return out


# The search space every method's tuning shares (`hsd.method.Method.search_space` starts from it).
# Learning rate, log-uniform over 3.5 decades: it spans the Adam recipes (TET/STS/DTS, TCJA, the KD
# students and HSD's fine-tuning: 1e-3, 3e-3 in the smoke profile) and SGD's 0.05-0.1 (SLTT, as in
# its authors' setting; HSD's VGG pre-training), with a factor 3 to spare at both ends.
# Weight decay, log-uniform: it holds the 5e-4 of SLTT and of HSD's ANN pre-training; the Adam
# recipes' 0 cannot sit on a log scale, and 1e-6 (the low end) is as good as none over a few
# thousand steps because Adam's decay is decoupled (`RunConfig.adam_decay`): each step shrinks a
# weight by the factor 1 - lr x 1e-6. Coupled, as torch's Adam applies it, even 1e-6 moves a weight
# without gradient by about lr per step: every TCJA trial of the sim-gestures studies made with it
# ended at chance (results/tuning/README.md).
BASE_SPACE: Mapping[str, Param] = {
    "lr": Float(1e-4, 0.3, log=True),
    "weight_decay": Float(1e-6, 1e-2, log=True),
}
