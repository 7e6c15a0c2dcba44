"""Shared fixtures and helpers of the tests; `tests/conftest.py` imports `data_env_fixture`, which
pytest then offers to every test as the fixture ``data_env``.

The fake methods (`tests/plugins/hsd_test_methods`, a plugin distribution with ``hsd.methods``
entry points) reach CLI subprocesses and Ray workers through ``PYTHONPATH``; the simulated n-digits
set is generated once per test run into a temporary data dir (reuse one across runs by exporting
HSD_DATA_DIR / HSD_CACHE_DIR).
"""

from __future__ import annotations

import contextlib
import io
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


def call_main(main, argv, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A CLI's ``main(argv)`` (what ``python -m`` calls) in this process: its exit code (argparse's
    SystemExit included), stdout and stderr, as `subprocess.run` would give them, without a fresh
    interpreter's imports. `cwd`: the working folder for the call. Torch's thread count is restored
    after it (a command's --threads stays with that command)."""
    import torch

    out, err, here, threads = io.StringIO(), io.StringIO(), os.getcwd(), torch.get_num_threads()
    args = [str(a) for a in argv]
    if cwd is not None:
        os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exit_:  # as the interpreter maps it to an exit status
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def read_rows(out: Path) -> list[dict]:
    path = Path(out) / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def counter_lines(path: Path) -> list[str]:
    return Path(path).read_text().splitlines() if Path(path).exists() else []
