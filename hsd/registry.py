"""A name -> object registry (the fvcore/timm pattern) that also loads providers from other packages.

Duplicates are rejected and a missing name's error lists the valid ones, so a typo on the command
line is answered, not guessed. A registry may name a Python entry-point group (e.g. ``hsd.methods``):
every entry point of that group, in any installed distribution, is a provider whose object is
registered under the entry point's name the first time the registry is asked for a name it does not
hold or for its list of names. This project's baselines register that way, and so does a lab's own
package, without editing this one::

    # pyproject.toml of a plugin package
    [project.entry-points."hsd.methods"]
    my-method = "my_lab.methods:MyMethod"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Registry(Generic[T]):
    """Names to objects. `group` is the entry-point group whose providers load on demand;
    `adapt` turns a loaded entry-point object into what is stored (e.g. a class into an instance)."""

    def __init__(
        self, kind: str, group: str | None = None, adapt: Callable[[str, Any], T] | None = None
    ) -> None:
        self.kind = kind
        self.group = group
        self._adapt = adapt
        self._items: dict[str, T] = {}
        self._providers: dict[str, str] = {}  # name -> "module:attr" of an entry point loaded
        self._broken: dict[str, str] = {}  # name -> why its entry point failed to load
        self._scanned = False

    def register(self, name: str, obj: T | None = None):
        """Register `obj` under `name`; without `obj`, return a decorator."""

        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add(obj) if obj is not None else add

    # -- providers from entry points -------------------------------------------------------------
    def load_providers(self, *, rescan: bool = False) -> None:
        """Register every entry point of the group not registered yet (once, or again if `rescan`:
        a distribution may have appeared on the path since)."""
        if self.group is None or (self._scanned and not rescan):
            return
        self._scanned = True
        for ep in entry_points(group=self.group):
            if ep.name in self._items or ep.name in self._broken:
                continue
            try:
                obj = ep.load()
                item = self._adapt(ep.name, obj) if self._adapt else obj
            except Exception as err:  # noqa: BLE001 - one broken plugin must not hide the others
                self._broken[ep.name] = f"{ep.value}: {type(err).__name__}: {err}"
                continue
            if ep.name not in self._items:  # importing the provider may have registered it
                self._items[ep.name] = item
            self._providers[ep.name] = ep.value

    def providers(self) -> dict[str, str]:
        """Name -> entry point ("module:attr") of every item that came from an entry point."""
        self.load_providers()
        return dict(self._providers)

    # -- lookup -----------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> T:
        if name not in self._items:
            self.load_providers(rescan=True)
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def _unknown_message(self, name: str) -> str:
        msg = f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))}"
        if name in self._broken:
            msg += f". The provider of {name!r} failed to load: {self._broken[name]}"
        elif self._broken:
            msg += f" (providers that failed to load: {', '.join(sorted(self._broken))})"
        return msg

    def get(self, name: str, default: T | None = None) -> T | None:
        return self[name] if name in self else default

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            self.load_providers(rescan=True)
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def names(self) -> list[str]:
        self.load_providers()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self.load_providers()
        return sorted(self._items.items())

    def filter(self, keep: Callable[[T], bool]) -> list[str]:
        return [n for n, v in self.items() if keep(v)]
