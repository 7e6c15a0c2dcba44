"""The project's dependencies: regenerate the lock, or test the newest versions pyproject.toml allows.

    python tools/deps.py lock            # resolve anew, write requirements.lock
    python tools/deps.py check-newest    # install the newest allowed versions, run the drift tests

Both install the project with `pip install -e ".[dev]"` (the ranges of pyproject.toml, no lock)
into a scratch virtual environment, so pip picks the newest release each range allows on this
Python and platform. `lock` writes what was installed as exact pins; `check-newest` runs the
tests most exposed to upstream changes (imports and layering, tuning, Ray) against it and prints
which versions differ from the lock. Run `check-newest` whenever dependencies change and before
regenerating committed results; CI stays on the lock, so a new upstream release never turns a
submission red unseen. Needs network access to the package index; takes a few minutes.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
DRIFT_TESTS = ["tests/test_architecture.py", "tests/test_tune.py", "tests/test_run_ray.py"]
HEADER = """\
# Exact versions of every dependency, used as pip constraints by the set-up command:
#   pip install -c requirements.lock -e ".[dev]"
# Resolved for CPython {python} on {system} {machine} (torch's Linux wheel is a CUDA build; it runs
# on a CPU too). On another Python or platform some pins may not exist: install from the ranges in
# pyproject.toml with `pip install -e ".[dev]"`, or regenerate with `python tools/deps.py lock`.
"""


def scratch_install(folder: Path) -> Path:
    """A fresh venv in `folder` with the project and the newest allowed dependencies; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
    return python


def frozen(python: Path) -> dict[str, str]:
    """name -> version of every installed distribution but pip and the project itself."""
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pins = {}
    for line in out.splitlines():
        name, sep, version = line.partition("==")
        if sep and name != "pip":  # no "==": a local or URL install, never pinned
            pins[name] = version
    return pins


def read_lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines() if LOCK.exists() else []:
        name, sep, version = line.strip().partition("==")
        if sep and not line.startswith("#"):
            pins[name] = version
    return pins


def write_lock(pins: dict[str, str]) -> None:
    header = HEADER.format(
        python=platform.python_version_tuple()[0] + "." + platform.python_version_tuple()[1],
        system=platform.system(),
        machine=platform.machine(),
    )
    body = "".join(f"{n}=={v}\n" for n, v in sorted(pins.items(), key=lambda p: p[0].lower()))
    LOCK.write_text(header + body)


def differences(new: dict[str, str], old: dict[str, str]) -> list[str]:
    names = sorted(set(new) | set(old), key=str.lower)
    return [
        f"{n}: {old.get(n, '-')} -> {new.get(n, '-')}" for n in names if new.get(n) != old.get(n)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["lock", "check-newest"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hsd-deps-") as tmp:
        python = scratch_install(Path(tmp) / "venv")
        pins = frozen(python)
        changed = differences(pins, read_lock())
        if args.command == "lock":
            write_lock(pins)
            print(f"wrote {LOCK.name}: {len(pins)} pins; changed: {changed or 'nothing'}")
            return 0
        print("newest allowed versions that differ from the lock:")
        print("\n".join(f"  {c}" for c in changed) or "  none")
        cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *DRIFT_TESTS]
        code = subprocess.run(cmd, cwd=ROOT).returncode
        key = ("torch", "numpy", "spikingjelly", "tonic", "ray", "optuna", "scipy", "pandas")
        shown = ", ".join(f"{k} {pins[k]}" for k in key if k in pins)
        verdict = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"check-newest {verdict} on Python {platform.python_version()} with {shown}")
        return code


if __name__ == "__main__":
    sys.exit(main())
