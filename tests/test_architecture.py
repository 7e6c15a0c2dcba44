"""The shape of the code: dependencies point one way (harness -> baselines -> hsd), no import cycle
anywhere (imports inside functions included), no source file over 500 lines, and the extension
points other packages use (entry-point registries) work for a package outside this repository."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness_helpers import REPO, read_rows

PACKAGES = ("hsd", "baselines", "harness")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of this project that `path` imports anywhere (top level or inside functions)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule when `sub` is one
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for t in targets:
            while t and t not in known:  # a name inside a module: the module itself
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def test_dependencies_point_one_way():
    graph = _graph()
    bad = [
        f"{m} imports {t}"
        for m, targets in graph.items()
        for t in targets
        if (m.startswith("hsd") and t.split(".")[0] in ("baselines", "harness"))
        or (m.startswith("baselines") and t.startswith("harness"))
    ]
    assert bad == []


def test_no_import_cycle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert cycles == []


# The harness's two halves: `harness.report` reads stores, the rest runs sweeps; both import the
# shared layer `harness.common`, which imports neither.
def _half(module: str) -> str:
    if module.startswith("harness.report"):
        return "reading"
    if module.startswith("harness.common"):
        return "shared"
    return "running" if module.startswith("harness") else module.split(".")[0]


def test_the_reading_half_imports_only_the_shared_layer_and_hsd():
    graph = _graph()
    bad = [
        f"{m} imports {t}"
        for m, targets in graph.items()
        for t in targets
        if (_half(m) == "reading" and _half(t) not in ("reading", "shared", "hsd"))
        or (_half(m) == "shared" and _half(t) not in ("shared", "hsd"))
    ]
    assert bad == []
    assert "harness.report.page_tables" in graph and "harness.common.store" in graph
    # ... and at run time: building and comparing reports loads no module of the running half,
    # nor Ray or Optuna.
    code = (
        "import sys, harness.report.build, harness.report.compare_report, harness.report.plots;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'optuna')"
        " or (m.startswith('harness.') and m.split('.')[1] not in ('report', 'common'))))"
    )
    cp = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert (cp.returncode, cp.stdout.strip()) == (0, "[]"), cp.stderr[-2000:]


def test_no_source_file_over_500_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in _modules().values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


# -- a plugin package outside the repository -------------------------------------------------------
PLUGIN = '''
"""A lab's own method: TET's loss on a half-width network, registered by entry point."""
from baselines.tet import TET


class LabNet(TET):
    name = "labnet"
    summary = "a method from another package"
    presets = {"any": {**TET.presets["any"], "epochs": 1, "width": 0.0625, "batch_size": 64}}
'''


def _install_plugin(root: Path) -> Path:
    """A distribution on a path entry: the package and its .dist-info with the entry point, which
    is what `pip install` of a package with [project.entry-points."hsd.methods"] leaves."""
    (root / "lab_methods").mkdir(parents=True)
    (root / "lab_methods" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "lab_methods-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-methods\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[hsd.methods]\nlabnet = lab_methods:LabNet\n")
    return root


@pytest.mark.slow
def test_a_plugin_method_is_trained_and_reported_by_the_harness(data_env, tmp_path):
    site = _install_plugin(tmp_path / "site")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    cp = subprocess.run(
        [sys.executable, "-m", "harness.run", "--sweep", "latency", "--executor", "local",
         "--datasets", "n-digits", "--methods", "labnet", "--T", "1", "--seeds", "1",
         "--out", str(out), "--no-progress"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr[-3000:]
    rows = read_rows(out)
    assert {r["method"] for r in rows} == {"labnet"} and rows[0]["status"] == "ok"
    assert rows[0]["epochs"] == 1 and rows[0]["width"] == 0.0625  # the plugin's own presets
    figure2 = (out / "tables" / "figure2_data.csv").read_text()
    assert "labnet" in figure2  # reported like any built-in method
