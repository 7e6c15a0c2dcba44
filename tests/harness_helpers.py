"""Shared fixtures and helpers of the tests; `tests/conftest.py` imports `data_env_fixture`, which
pytest then offers to every test as the fixture ``data_env``.

The fake methods (`tests/plugins/hsd_test_methods`, a plugin distribution with ``hsd.methods``
entry points) reach CLI subprocesses and Ray workers through ``PYTHONPATH``; the simulated n-digits
set is generated once per test run into a temporary data dir (reuse one across runs by exporting
HSD_DATA_DIR / HSD_CACHE_DIR).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "tests" / "plugins"
for _p in (REPO, PLUGINS):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


@pytest.fixture(scope="session", name="data_env")
def data_env_fixture(tmp_path_factory):
    """Environment with the data/cache dirs and the fake-method hook, n-digits cache built once."""
    base = tmp_path_factory.mktemp("hsd-data")
    env = {
        "HSD_DATA_DIR": os.environ.get("HSD_DATA_DIR", str(base / "data")),
        "HSD_CACHE_DIR": os.environ.get("HSD_CACHE_DIR", str(base / "cache")),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO), str(PLUGINS), os.environ.get("PYTHONPATH")])
        ),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from hsd.data import load_frames

    load_frames("n-digits", frames=10, size=8)
    yield env
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_cli(args, env_extra=None, timeout=240, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness.run", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def read_rows(out: Path) -> list[dict]:
    path = Path(out) / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def counter_lines(path: Path) -> list[str]:
    return Path(path).read_text().splitlines() if Path(path).exists() else []
