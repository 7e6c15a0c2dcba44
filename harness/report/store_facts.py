"""What a sweep folder says about how it was made, read back for reports and comparisons.

Three sources: ``COMMAND.txt`` (one block of ``key: value`` lines per command that wrote to the
folder: command, machine, start/end, wall time, commit, ...), ``sweep.json`` (the sweep and the
arguments that define its grid) and the provenance fields of the result rows (commit, device,
library versions, thread count, neuron backend). Reading only: nothing here writes a file.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from harness.common.store import MANIFEST_FILE, PROVENANCE_FILE

#: row fields that say where and with what a run was made (not what it was asked to do)
PROVENANCE_FIELDS = {
    "git_commit": "git commit",
    "device": "device",
    "torch": "torch version",
    "threads": "torch threads",
    "neuron_backend": "neuron backend",
    "ops_convention": "operation-count convention",
}
#: COMMAND.txt keys that describe the machine and code rather than one command's timing
COMMAND_FACTS = {"machine": "machine", "git_commit": "git commit (COMMAND.txt)"}


def command_blocks(out_dir: str | Path) -> list[dict[str, str]]:
    """The blocks of ``COMMAND.txt`` in order, each as {key: value}; [] when there is no file."""
    path = Path(out_dir) / PROVENANCE_FILE
    if not path.exists():
        return []
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition(": ")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def manifest(out_dir: str | Path) -> dict:
    """``sweep.json`` as a dict ({} when absent or not JSON: a report never fails on it)."""
    path = Path(out_dir) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def values(rows: pd.DataFrame | None, column: str) -> list[str]:
    """The distinct values of `column` in `rows` as sorted strings ([] when absent or all empty)."""
    if rows is None or column not in rows:
        return []
    return sorted({_text(v) for v in rows[column].dropna()}, key=_natural)


def _text(value) -> str:
    """A stored value as text; a whole float is the integer it holds (a column with gaps reads
    back as floats: 10.0 is the 10 another store wrote)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _natural(text: str):
    """Numbers in numeric order (seeds 2 < 10), anything else alphabetically after them."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def provenance(out_dir: str | Path, rows: pd.DataFrame | None) -> dict[str, str]:
    """What produced the folder: commands, manifest, commits, devices, versions, seeds, report time."""
    out = Path(out_dir)
    info: dict[str, str] = {}
    command = out / PROVENANCE_FILE
    info["commands and machine (COMMAND.txt)"] = (
        command.read_text() if command.exists() else "(no COMMAND.txt in this folder)"
    )
    if (out / MANIFEST_FILE).exists():
        found = manifest(out)
        info["sweep (sweep.json)"] = (
            json.dumps(found, indent=2) if found else (out / MANIFEST_FILE).read_text()
        )
    if rows is not None and len(rows):
        for label, column in (
            ("git commits of the runs", "git_commit"),
            ("devices", "device"),
            ("torch versions", "torch"),
            ("seeds", "seed"),
        ):
            info[label] = ", ".join(values(rows, column)) or "(not recorded)"
        info["runs"] = str(rows["run_id"].nunique()) if "run_id" in rows else "?"
    info["report built"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return info
