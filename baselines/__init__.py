"""Baseline training methods, one file each, all registered in the one method registry.

`import baselines` registers every method (and HSD itself, `hsd.recipe`), so
`baselines.METHODS` (= `hsd.method.METHODS`) lists them all:

- `tet` (baselines/tet.py), `sts` / `dts` / `ce` (baselines/direct.py),
- `sltt` / `sltt-k` (baselines/sltt.py), `tcja` (baselines/tcja.py),
- `kd-response` / `kd-feature` / `kd-both` (baselines/kd.py), `hsd` (hsd/recipe.py).
"""

import hsd.recipe  # noqa: F401  (registers "hsd")
from baselines import direct, kd, sltt, tcja, tet  # noqa: F401  (each registers its methods)
from hsd.method import METHODS

__all__ = ["METHODS"]
