"""`python -m harness.bench kernels`: the CPU kernels against the plain code they replace.

Each pair trains (or evaluates) the same network on the same batch in one process, the two sides
alternating round by round, so a slow moment of a shared machine hits both; the result is the
median time per step of each side and their ratio:

- ``qcfs``: the QCFS ANN's training step, QCFS as one autograd node (`hsd.kernels.qcfs`) vs the
  textbook expression differentiated by autograd (`hsd.kernels.qcfs_reference`);
- ``neuron-train`` / ``neuron-eval``: an SNN's training step and evaluation forward with the CPU
  scan (`hsd.kernels.cpu_scan`) vs SpikingJelly's CPU path (``HSD_CPU_SCAN=0``);
- ``pool``: an SNN's training step with `hsd.models.AvgPool2x2` vs ``nn.AvgPool2d(2)``.

Sizes are the smoke profile's (what the default sweep trains on a CPU): SNN-5 at 32 px, width 1/4,
batch 8 (the ANN: 8 samples × 15 frames as independent images), T = 16 for the LIF net, 5 for the
converted IF net; VGG-SNN at 16 px, width 1/8, batch 16, T = 5.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from spikingjelly.activation_based import functional
from torch import nn

from hsd.models import AvgPool2x2, build_model
from hsd.neurons import CPU_SCAN_ENV, QCFS

Step = Callable[[], None]

# (name, arch, classes, size, width, neuron, T or None for the ANN, batch)
NETS = {
    "snn5-qcfs": ("snn5", 11, 32, 0.25, "qcfs", None, 8 * 15),
    "vgg-qcfs": ("vgg", 10, 16, 0.125, "qcfs", None, 16 * 9),
    "snn5-lif": ("snn5", 11, 32, 0.25, "lif", 16, 8),
    "snn5-if-converted": ("snn5", 11, 32, 0.25, "if-converted", 5, 8),
    "vgg-lif": ("vgg", 10, 16, 0.125, "lif", 5, 16),
}
PAIRS = {  # measurement -> (the nets it runs on, the plain side, the kernel side)
    "qcfs": (("snn5-qcfs", "vgg-qcfs"), "autograd", "qcfs-node"),
    "neuron-train": (("snn5-lif", "snn5-if-converted", "vgg-lif"), "spikingjelly", "cpu-scan"),
    "neuron-eval": (("snn5-lif", "snn5-if-converted", "vgg-lif"), "spikingjelly", "cpu-scan"),
    "pool": (("snn5-lif", "vgg-lif"), "nn.AvgPool2d", "AvgPool2x2"),
}


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def _plain_qcfs() -> Iterator[None]:
    from hsd.kernels.qcfs import qcfs_reference

    fast = QCFS.forward
    QCFS.forward = lambda self, z: qcfs_reference(z, self.lam, self.L)
    try:
        yield
    finally:
        QCFS.forward = fast


def _net(name: str, plain_pool: bool = False) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    arch, classes, size, width, neuron, T, batch = NETS[name]
    torch.manual_seed(0)
    net = build_model(arch, classes, 2, size, width, neuron, 16)
    if plain_pool:
        for parent in list(net.modules()):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, AvgPool2x2):
                    setattr(parent, child_name, nn.AvgPool2d(2))
    shape = (batch, 2, size, size) if T is None else (T, batch, 2, size, size)
    x = (torch.rand(shape) < 0.2).float()  # event-count-like input: mostly empty pixels
    y = torch.randint(0, classes, (batch,))
    return net, x, y


def _train_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Step:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    spiking = x.dim() == 5

    def step() -> None:
        out = net(x)
        loss = nn.functional.cross_entropy(out.mean(0) if spiking else out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        functional.reset_net(net)

    return step


def _eval_step(net: nn.Module, x: torch.Tensor) -> Step:
    net.eval()

    def step() -> None:
        with torch.no_grad():
            net(x)
        functional.reset_net(net)

    return step


def _sides(measure: str, name: str) -> tuple[Step, Step, Callable, Callable]:
    """(plain step, kernel step, context of the plain side, context of the kernel side)."""
    if measure == "pool":
        plain, x, y = _net(name, plain_pool=True)
        kernel, _, _ = _net(name)
        return (
            _train_step(plain, x, y),
            _train_step(kernel, x, y),
            contextlib.nullcontext,
            contextlib.nullcontext,
        )
    net, x, y = _net(name)
    make = (
        (lambda: _eval_step(net, x)) if measure == "neuron-eval" else lambda: _train_step(net, x, y)
    )
    if measure == "qcfs":
        return make(), make(), _plain_qcfs, contextlib.nullcontext
    return make(), make(), lambda: _env(CPU_SCAN_ENV, "0"), lambda: _env(CPU_SCAN_ENV, "1")


def _time(step: Step, context: Callable, steps: int) -> float:
    with context():
        step()  # untimed: first-call costs of this round
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - start) / steps * 1e3


def run_kernels(rounds: int, steps: int, measures: list[str]) -> dict:
    results = []
    for measure in measures:
        nets, plain_name, kernel_name = PAIRS[measure]
        for name in nets:
            plain, kernel, plain_ctx, kernel_ctx = _sides(measure, name)
            times: dict[str, list[float]] = {plain_name: [], kernel_name: []}
            for _ in range(rounds):
                times[plain_name].append(_time(plain, plain_ctx, steps))
                times[kernel_name].append(_time(kernel, kernel_ctx, steps))
            med = {k: statistics.median(v) for k, v in times.items()}
            results.append(
                {
                    "measure": measure,
                    "net": name,
                    "plain": plain_name,
                    "kernel": kernel_name,
                    "plain_ms": round(med[plain_name], 2),
                    "kernel_ms": round(med[kernel_name], 2),
                    "speedup": round(med[plain_name] / med[kernel_name], 3),
                    "rounds_ms": {k: [round(t, 2) for t in v] for k, v in times.items()},
                }
            )
    return {
        "kind": "kernels",
        "device": "cpu",
        "device_type": "cpu",
        "config": {"rounds": rounds, "steps_per_round": steps, "nets": NETS},
        "results": results,
    }


def print_kernels(report: dict) -> None:
    print(f"{'measure':<13} {'net':<18} {'plain':>10} {'kernel':>10} {'speedup':>8}")
    for r in report["results"]:
        print(
            f"{r['measure']:<13} {r['net']:<18} {r['plain_ms']:>8.1f}ms {r['kernel_ms']:>8.1f}ms "
            f"{r['speedup']:>7.2f}x"
        )
