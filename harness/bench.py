"""Training-step benchmark: our SNN step against an ANN floor and two anchor styles; trial packing.

    python -m harness.bench train   [--quick] [--out FILE] [--size S --width W --batch N --T T ...]
    python -m harness.bench packing [--quick] [--out FILE] [--trials 1,2,4] [--profiles smoke,paper]

``train`` measures, in one process and with repeats, one training step (forward + backward + SGD
step) of each implementation below, every one through the engine's own loop
(``hsd.engine.train_one_epoch`` on a single batch: zero_grad, autocast, ``hsd.losses.mean_ce``,
backward, step, ``reset_net`` in a finally), and reports step time (median), frames/s, peak
memory and both ratios to the floor:

- ``floor``: the same VGG convolutions with ReLU on the T·N frames as one batch — the cost of the
  network without any temporal state. The bound for an SNN step.

Every implementation runs in the same precision and layout: by default bf16 autocast and
channels_last on CUDA (the issue's setting), fp32 and NCHW on CPU (``--precision``; the floor
can be pinned apart with ``--floor-precision``, e.g. fp32 SNNs against the bf16 floor as in the
issue's table;
``--[no-]channels-last``).
- ``ours-sj`` / ``ours-lean``: ``hsd.models.vgg_snn(neuron="if")`` as the harness trains it, with
  SpikingJelly's IFNode, and with ``hsd.kernels.LeanIFNode`` swapped in;
- ``converted-sj`` / ``converted-lean``: the converted SNN (``hsd.convert.ann_to_snn``: θ = λ,
  v0 = θ/2, output θ·s) that HSD fine-tunes, with either neuron;
- ``anchor-sj``: the usual SpikingJelly multi-step style (an independent nn.Sequential, IFNode);
- ``anchor-loop``: the usual hand-written style: the whole net stepped in a Python loop over T
  with a hand-written IF neuron (state carried in Python variables).

Peak memory: CUDA ``max_memory_allocated`` after a reset before the measured steps. On CPU there is
no allocator peak to read, so ``peak_gib`` is an estimate labelled ``peak_method="saved+state"``:
bytes of the tensors autograd keeps for backward (measured with saved-tensor hooks) + parameters,
gradients and momentum. ``saved_gib`` (activations kept for backward) is reported on every device.

``--epoch-batches K`` also times K batches of a real epoch (``hsd.data.load_frames`` +
``iterate_batches`` on n-digits) against K × the measured step time: the data-stall ratio.

``packing`` runs 1, 2 and 4 training processes on one device at once (each a worker of this
module) and reports aggregate frames/s, so a sweep can pick trials per GPU from a measurement.

Results are JSON (``--out``; default ``results/bench/<device>-<command>-<date>.json``) with the
device, versions, exact command and every measured number. Do not import Ray here: the GPU
machines run this without it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import importlib.metadata
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

IMPLS = (
    "floor",
    "ours-sj",
    "ours-lean",
    "converted-sj",
    "converted-lean",
    "anchor-sj",
    "anchor-loop",
)
DESCRIPTIONS = {
    "floor": "ANN floor: same convs + ReLU on T*N frames as one batch",
    "ours-sj": "vgg_snn(neuron='if'), SpikingJelly IFNode, engine loss path",
    "ours-lean": "vgg_snn(neuron='if') with LeanIFNode (hsd.kernels), engine loss path",
    "converted-sj": "ann_to_snn(QCFS VGG): ConvertedIFNode (θ=λ, v0=θ/2), engine loss path",
    "converted-lean": "ann_to_snn(QCFS VGG) with LeanIFNode.converted, engine loss path",
    "anchor-sj": "anchor: nn.Sequential VGG, SpikingJelly multi-step IFNode",
    "anchor-loop": "anchor: Python loop over T, hand-written IF neuron",
}
TARGETS = {"step_ratio": 1.2, "mem_ratio": 1.5, "epoch_ratio": 1.1}  # the H100/H200 targets
# (size, width, batch, T) of the run profiles (hsd.pipeline: smoke = width 1/8, 32 px, batch 32)
PROFILES = {"smoke": (32, 0.125, 32, 10), "paper": (48, 1.0, 128, 10)}
QUICK = dict(size=16, width=1 / 16, batch=4, T=4, repeats=3, warmup=1)


class BenchError(ValueError):
    """Bad bench arguments; the CLI prints it on stderr and exits with code 2."""


@dataclass(frozen=True)
class TrainConfig:
    size: int = 48
    width: float = 1.0
    batch: int = 128
    T: int = 10
    num_classes: int = 10
    repeats: int = 20
    warmup: int = 5
    precision: str = "bf16"  # of every implementation, the floor included unless ...
    floor_precision: str | None = None  # ... this pins the floor's
    channels_last: bool = True
    device: str = "auto"


# -- environment --------------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    return dev


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"CPU {cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    out["cuda"] = str(torch.version.cuda)
    for dist in ("spikingjelly", "triton", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:  # recorded, not fatal
            out[dist] = "absent"
    from hsd.kernels import triton_available

    out["lean_if_triton"] = str(triton_available())
    out["HSD_IF_SCAN_BACKEND"] = os.environ.get("HSD_IF_SCAN_BACKEND", "auto")
    with contextlib.suppress(Exception):
        out["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    return out


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# -- models -------------------------------------------------------------------------------------


class _TriangleSpike(torch.autograd.Function):
    """H(v − θ) forward, max(0, 1 − |v − θ|) backward: the anchor loop's hand-written surrogate."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * (1 - u.abs()).clamp(min=0)


class _LoopAnchor(nn.Module):
    """A VGG stepped frame by frame: for t in 1..T, every layer on x_t; IF (θ = 1, reset by
    subtraction) state in a Python list. Input [T, N, C, H, W] → logits [T, N, K]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.features, self.classifier = net.features, net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v: dict[int, torch.Tensor | float] = {}
        outs = []
        for t in range(x.shape[0]):
            h = x[t]
            for i, layer in enumerate(self.features):
                if isinstance(layer, nn.Identity):  # the neuron slots
                    u = v.get(i, 0.0) + h
                    h = _TriangleSpike.apply(u - 1.0)
                    v[i] = u - h
                else:
                    h = layer(h)
            outs.append(self.classifier(h))
        return torch.stack(outs)


class _SeqAnchor(nn.Module):
    """SpikingJelly multi-step style: conv/BN on the merged T·N batch (``SeqToANNContainer``),
    ``IFNode(step_mode='m')`` on [T, N, ...]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        from spikingjelly.activation_based import layer

        from hsd.neurons import make_neuron

        mods: list[nn.Module] = []
        stateless: list[nn.Module] = []
        for m in net.features:
            if isinstance(m, nn.Identity):
                mods += [layer.SeqToANNContainer(*stateless), make_neuron("if")]
                stateless = []
            else:
                stateless.append(m)
        if stateless:
            mods.append(layer.SeqToANNContainer(*stateless))
        mods.append(layer.SeqToANNContainer(*net.classifier))
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def build_model(impl: str, cfg: TrainConfig) -> nn.Module:
    """The network of one implementation (same VGG-SNN layers everywhere, see module docstring)."""
    from hsd.convert import ann_to_snn
    from hsd.kernels import swap_to_lean
    from hsd.models import vgg_snn

    kw = dict(num_classes=cfg.num_classes, size=cfg.size, width=cfg.width)
    if impl == "floor":
        return vgg_snn(neuron=nn.ReLU, **kw)  # ReLU is stateless: runs on the merged T·N batch
    if impl in ("ours-sj", "ours-lean"):
        net = vgg_snn(neuron="if", **kw)
        return swap_to_lean(net) if impl == "ours-lean" else net
    if impl in ("converted-sj", "converted-lean"):
        net = ann_to_snn(vgg_snn(neuron="qcfs", **kw))
        return swap_to_lean(net) if impl == "converted-lean" else net
    if impl == "anchor-sj":
        return _SeqAnchor(vgg_snn(neuron=nn.Identity, **kw))
    if impl == "anchor-loop":
        return _LoopAnchor(vgg_snn(neuron=nn.Identity, **kw))
    raise BenchError(f"unknown implementation {impl!r}; valid: {', '.join(IMPLS)}")


def precision_of(impl: str, cfg: TrainConfig) -> str:
    if impl == "floor" and cfg.floor_precision:
        return cfg.floor_precision
    return cfg.precision


# -- one training step, exactly the engine's -----------------------------------------------------


def _loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from hsd.engine import forward_frames
    from hsd.losses import mean_ce

    return mean_ce(forward_frames(model, x, ann=False), y)


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    from hsd.engine import make_optimizer

    return make_optimizer("sgd", model.parameters(), lr=1e-3, weight_decay=5e-4)


def _train_step(model, opt, batch, dev: torch.device, bf16: bool, loss_fn=_loss_fn) -> None:
    from hsd.engine import train_one_epoch

    train_one_epoch(model, [batch], opt, loss_fn=loss_fn, device=dev, bf16=bf16)


def synthetic_batch(cfg: TrainConfig, dev: torch.device, seed: int = 0):
    """Event-count-like frames (sparse small integers) and labels, on the device."""
    g = torch.Generator().manual_seed(seed)
    shape = (cfg.T, cfg.batch, 2, cfg.size, cfg.size)
    x = torch.poisson(torch.full(shape, 0.3), generator=g)
    y = torch.randint(0, cfg.num_classes, (cfg.batch,), generator=g)
    return x.to(dev), y.to(dev)


def saved_bytes_of_step(model, x, y, dev, bf16: bool) -> int:
    """Bytes of distinct non-parameter storages autograd saves for backward in one forward."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        st = t.untyped_storage()
        if st.data_ptr() not in params and st.device.type != "meta":
            seen[st.data_ptr()] = st.nbytes()
        return t

    from spikingjelly.activation_based import functional

    from hsd.engine import autocast

    try:
        with autocast(dev, bf16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = _loss_fn(model, x, y)
        loss.backward()
    finally:
        functional.reset_net(model)
        model.zero_grad(set_to_none=True)
    return sum(seen.values())


def measure_train(impl: str, cfg: TrainConfig, dev: torch.device, batch) -> dict[str, Any]:
    """Median step time over cfg.repeats steps after cfg.warmup, and peak memory of one impl."""
    torch.manual_seed(0)
    model = build_model(impl, cfg).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    bf16 = precision_of(impl, cfg) == "bf16"
    opt = _optimizer(model)
    x, y = batch
    saved = saved_bytes_of_step(model, x, y, dev, bf16)
    for _ in range(cfg.warmup):
        _train_step(model, opt, (x, y), dev, bf16)
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu_times = [], []
    for _ in range(cfg.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        _train_step(model, opt, (x, y), dev, bf16)
        _sync(dev)
        times.append((time.perf_counter() - t0) * 1e3)
        cpu_times.append((time.process_time() - c0) * 1e3)
    state = sum(p.numel() * p.element_size() for p in model.parameters()) * 3  # w, grad, momentum
    if dev.type == "cuda":
        peak, method = torch.cuda.max_memory_allocated(dev), "cuda-max-allocated"
    else:
        peak, method = saved + state + x.numel() * x.element_size(), "saved+state"
    step_ms = round(statistics.median(times), 4)
    out = {
        "impl": impl,
        "description": DESCRIPTIONS[impl],
        "precision": precision_of(impl, cfg),
        "step_ms": step_ms,
        "step_ms_min": round(min(times), 4),
        "step_ms_all": [round(t, 4) for t in times],
        # host CPU time of this process per step: on a shared CPU box, steadier than wall time
        "step_cpu_ms": round(statistics.median(cpu_times), 4),
        "frames_per_s": round(cfg.T * cfg.batch / (step_ms / 1e3), 2),
        "peak_gib": round(peak / 2**30, 6),
        "peak_method": method,
        "saved_gib": round(saved / 2**30, 6),
    }
    del model, opt
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


# -- epoch vs summed steps (data stalls) --------------------------------------------------------


def measure_epoch(impl: str, cfg: TrainConfig, dev, step_ms: float, batches: int, dataset: str):
    """Time `batches` batches of a real epoch (second pass, after the split sits on the device)
    against batches × the measured step time. Skipped, with the reason, when the data layer or
    the data set is not available."""
    try:
        from hsd.data import iterate_batches, load_frames
    except ImportError as e:
        return {"skipped": f"hsd.data data path not importable here: {e}"}
    from hsd.engine import train_one_epoch

    try:
        fs = load_frames(dataset, frames=None, size=cfg.size)
    except Exception as e:  # noqa: BLE001 — report why, do not fake a number
        return {"skipped": f"load_frames({dataset!r}) failed: {type(e).__name__}: {e}"}
    if cfg.T > fs.frames:
        return {"skipped": f"T={cfg.T} > the {fs.frames} cached frames of {dataset}"}
    torch.manual_seed(0)
    model = build_model(impl, replace(cfg, num_classes=fs.spec.num_classes)).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = _optimizer(model)
    bf16 = precision_of(impl, cfg) == "bf16"
    gen = torch.Generator(device=dev).manual_seed(0)

    def run_epoch() -> tuple[float, int]:
        it = iterate_batches(
            fs.train, cfg.batch, slice(0, cfg.T), shuffle=True, generator=gen, device=dev,
            augment="flip_roll", drop_last=True,
        )  # fmt: skip
        counted = _Counted(itertools.islice(it, batches))
        _sync(dev)
        t0 = time.perf_counter()
        train_one_epoch(model, counted, opt, loss_fn=_loss_fn, device=dev, bf16=bf16)
        _sync(dev)
        return time.perf_counter() - t0, counted.n

    first_s, _ = run_epoch()  # includes the one-time copy of the split to the device
    epoch_s, n = run_epoch()
    if n == 0:
        return {"skipped": f"{dataset} train split has fewer than {cfg.batch} samples"}
    summed = n * step_ms / 1e3
    return {
        "impl": impl,
        "dataset": dataset,
        "batches": n,
        "first_epoch_s": round(first_s, 4),
        "epoch_s": round(epoch_s, 4),
        "summed_step_s": round(summed, 4),
        "epoch_ratio": round(epoch_s / summed, 4),
    }


class _Counted:
    def __init__(self, it) -> None:
        self.it, self.n = it, 0

    def __iter__(self):
        for item in self.it:
            self.n += 1
            yield item


# -- train command ------------------------------------------------------------------------------


def run_train(cfg: TrainConfig, impls: list[str], epoch_batches: int, dataset: str) -> dict:
    from tqdm import tqdm

    dev = pick_device(cfg.device)
    if impls[0] != "floor":
        raise BenchError("the implementation list must start with 'floor' (every ratio needs it)")
    batch = synthetic_batch(cfg, dev)
    dev_name = device_name(dev)
    cfg_d = asdict(cfg) | {"device": str(dev)}
    rows = []
    for impl in tqdm(impls, desc=f"bench train on {dev.type}", unit="impl", file=sys.stderr):
        try:
            rows.append(measure_train(impl, cfg, dev, batch))
        except torch.OutOfMemoryError as e:
            rows.append({"impl": impl, "status": "infeasible", "error": str(e)[:300]})
            gc.collect()
            torch.cuda.empty_cache()
    floor = rows[0]
    for r in rows:
        r["device"] = dev_name
        r["config"] = cfg_d | {"precision": precision_of(r["impl"], cfg)}
        if "step_ms" not in r:
            continue
        r.setdefault("status", "ok")
        r["floor_step_ms"] = floor["step_ms"]
        r["floor_peak_gib"] = floor["peak_gib"]
        r["step_ratio"] = round(r["step_ms"] / floor["step_ms"], 4)
        r["mem_ratio"] = round(r["peak_gib"] / floor["peak_gib"], 4)
    epoch: dict[str, Any] = {"skipped": "not asked for (--epoch-batches 0)"}
    if epoch_batches > 0:
        impl = "ours-lean" if "ours-lean" in impls else impls[-1]
        step = next(r["step_ms"] for r in rows if r["impl"] == impl and "step_ms" in r)
        epoch = measure_epoch(impl, cfg, dev, step, epoch_batches, dataset)
    return {
        "kind": "train",
        "device": dev_name,
        "device_type": dev.type,
        "config": cfg_d,
        "targets": TARGETS,
        "results": rows,
        "epoch": epoch,
    }


def print_train(report: dict) -> None:
    print(f"\n{report['device']}  ", json.dumps(report["config"]))
    head = f"{'impl':<15}{'prec':>5}{'step ms':>10}{'×floor':>8}{'frames/s':>11}"
    head += f"{'peak GiB':>10}{'×floor':>8}{'saved GiB':>11}"
    print(head)
    print("-" * len(head))
    for r in report["results"]:
        if r.get("status") != "ok":
            print(f"{r['impl']:<15} {r.get('status')}: {r.get('error', '')[:60]}")
            continue
        print(
            f"{r['impl']:<15}{r['precision']:>5}{r['step_ms']:>10.2f}{r['step_ratio']:>8.2f}"
            f"{r['frames_per_s']:>11.0f}{r['peak_gib']:>10.4f}{r['mem_ratio']:>8.2f}"
            f"{r['saved_gib']:>11.4f}"
        )
    meth = report["results"][0].get("peak_method")
    if meth == "saved+state":
        print("peak GiB on CPU = saved-for-backward + params/grads/momentum + input (an estimate)")
    ep = report["epoch"]
    if "skipped" in ep:
        print(f"epoch vs summed steps: skipped ({ep['skipped']})")
    else:
        print(
            f"epoch vs summed steps ({ep['impl']}, {ep['dataset']}, {ep['batches']} batches): "
            f"{ep['epoch_s']:.3f} s vs {ep['summed_step_s']:.3f} s = {ep['epoch_ratio']:.2f}×"
        )
    print(f"targets (H100/H200): {TARGETS}")


# -- packing ------------------------------------------------------------------------------------


def _worker(spec: dict) -> None:
    """One packed trial: build, warm up, print READY, wait for GO on stdin, run, print JSON."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    cfg = TrainConfig(**spec["cfg"])
    dev = pick_device(cfg.device)
    try:
        model = build_model(spec["impl"], cfg).to(dev)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = _optimizer(model)
        batch = synthetic_batch(cfg, dev, seed=spec["index"])
        bf16 = cfg.precision == "bf16"
        for _ in range(cfg.warmup):
            _train_step(model, opt, batch, dev, bf16)
        _sync(dev)
    except torch.OutOfMemoryError as e:
        print("READY", flush=True)
        sys.stdin.readline()
        print(json.dumps({"status": "infeasible", "error": str(e)[:300]}), flush=True)
        return
    print("READY", flush=True)
    sys.stdin.readline()
    t0, steps = time.perf_counter(), 0
    while steps < spec["min_steps"] or time.perf_counter() - t0 < spec["seconds"]:
        _train_step(model, opt, batch, dev, bf16)
        steps += 1
    _sync(dev)
    elapsed = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    res = {"status": "ok", "steps": steps, "elapsed_s": elapsed, "peak_gib": peak}
    res["ray_imported"] = "ray" in sys.modules  # must stay False: GPU machines have no Ray
    print(json.dumps(res), flush=True)


def run_packing_one(
    cfg: TrainConfig, impl: str, k: int, seconds: float, min_steps: int, threads: int | None
) -> dict:
    """k worker processes on one device, released together; aggregate frames/s. On CPU each
    worker gets `threads` torch threads (default: the cores split evenly)."""
    if pick_device(cfg.device).type == "cpu":
        threads = threads or max(1, (os.cpu_count() or 1) // k)
    else:
        threads = 0
    spec = {"cfg": asdict(cfg), "impl": impl, "seconds": seconds, "min_steps": min_steps}
    procs = []
    for i in range(k):
        arg = json.dumps(spec | {"index": i, "threads": threads})
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "harness.bench", "_worker", arg],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    try:
        for p in procs:
            line = p.stdout.readline().strip()
            if line != "READY":
                err = p.stderr.read()[-1500:] if p.poll() is not None else ""
                raise RuntimeError(f"packing worker did not start: {line!r} {err}")
        for p in procs:  # release all at once
            p.stdin.write("GO\n")
            p.stdin.flush()
        outs = [json.loads(p.stdout.readline()) for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                p.stdin.close()
            p.wait(timeout=60)
    if any(o["status"] != "ok" for o in outs):
        return {"trials": k, "status": "infeasible", "workers": outs}
    frames = sum(o["steps"] for o in outs) * cfg.T * cfg.batch
    wall = max(o["elapsed_s"] for o in outs)
    return {
        "trials": k,
        "status": "ok",
        "aggregate_frames_per_s": round(frames / wall, 2),
        "per_trial_frames_per_s": [
            round(o["steps"] * cfg.T * cfg.batch / o["elapsed_s"], 2) for o in outs
        ],
        "peak_gib_per_trial": [o["peak_gib"] for o in outs],
        "cpu_threads_per_trial": threads or None,
        "workers": outs,
    }


def run_packing(
    profiles: dict[str, TrainConfig],
    impl: str,
    trials: list[int],
    seconds: float,
    min_steps: int,
    threads: int | None = None,
) -> dict:
    from tqdm import tqdm

    dev = pick_device(next(iter(profiles.values())).device)
    rows = []
    jobs = [(p, k) for p in profiles for k in trials]
    for prof, k in tqdm(jobs, desc=f"bench packing on {dev.type}", unit="run", file=sys.stderr):
        cfg = profiles[prof]
        r = run_packing_one(cfg, impl, k, seconds, min_steps, threads)
        rows.append(
            {"profile": prof, "impl": impl, "config": asdict(cfg) | {"device": str(dev)}, **r}
        )
    for prof in profiles:
        base = next(
            (r for r in rows if r["profile"] == prof and r["trials"] == 1 and r["status"] == "ok"),
            None,
        )
        for r in rows:
            if r["profile"] == prof and base and r["status"] == "ok":
                r["speedup_vs_1"] = round(
                    r["aggregate_frames_per_s"] / base["aggregate_frames_per_s"], 4
                )
    return {
        "kind": "packing",
        "device": device_name(dev),
        "device_type": dev.type,
        "results": rows,
    }


def print_packing(report: dict) -> None:
    print(f"\n{report['device']}")
    head = f"{'profile':<8}{'trials':>7}{'agg frames/s':>14}{'×1 trial':>10}  per-trial frames/s"
    print(head)
    print("-" * (len(head) + 10))
    for r in report["results"]:
        if r["status"] != "ok":
            print(f"{r['profile']:<8}{r['trials']:>7}  {r['status']}")
            continue
        per = ", ".join(f"{v:.0f}" for v in r["per_trial_frames_per_s"])
        print(
            f"{r['profile']:<8}{r['trials']:>7}{r['aggregate_frames_per_s']:>14.1f}"
            f"{r.get('speedup_vs_1', float('nan')):>10.2f}  {per}"
        )


# -- CLI ----------------------------------------------------------------------------------------


def _positive(kind):
    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a positive {kind.__name__}, got {s!r}"
            ) from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {s!r}")
        return v

    return parse


def _int_list(s: str) -> list[int]:
    try:
        out = [int(v) for v in s.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", help="tiny sizes, ~10 s on CPU (CI)")
    common.add_argument("--out", type=Path, help="JSON output (default results/bench/...)")
    common.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    common.add_argument("--size", type=_positive(int), help="input size (multiple of 16)")
    common.add_argument("--width", type=_positive(float), help="channel width multiplier")
    common.add_argument("--batch", type=_positive(int), help="batch size N")
    common.add_argument("--T", type=_positive(int), help="time steps")
    common.add_argument("--repeats", type=_positive(int), help="measured steps")
    common.add_argument("--warmup", type=int, help="unmeasured steps first")
    common.add_argument(
        "--threads", type=_positive(int), help="torch CPU threads (default: torch's; --quick: 1)"
    )
    common.add_argument(
        "--precision", choices=("bf16", "fp32"), help="default: bf16 on CUDA, fp32 on CPU"
    )
    common.add_argument(
        "--floor-precision", choices=("bf16", "fp32"), help="floor's precision (default: same)"
    )
    common.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="channels_last layout (default: on for CUDA, off for CPU)",
    )
    tr = sub.add_parser("train", parents=[common], help="step time/memory vs the ANN floor")
    tr.add_argument("--impls", default=None, help=f"comma list from {','.join(IMPLS)}")
    tr.add_argument("--epoch-batches", type=int, default=None, help="0 skips the epoch timing")
    tr.add_argument("--dataset", default="n-digits", help="data set of the epoch timing")
    pk = sub.add_parser("packing", parents=[common], help="aggregate throughput, 1/2/4 trials")
    pk.add_argument("--trials", type=_int_list, default=[1, 2, 4])
    pk.add_argument("--profiles", default=None, help="smoke,paper (CPU default: smoke)")
    pk.add_argument("--impl", default="ours-lean", choices=IMPLS)
    pk.add_argument("--seconds", type=_positive(float), default=None, help="run time per trial")
    sub.add_parser("_worker").add_argument("spec")
    return ap


def _config(args, base: TrainConfig) -> TrainConfig:
    over = {k: getattr(args, k) for k in ("size", "width", "batch", "T", "repeats", "warmup")}
    cfg = replace(base, **{k: v for k, v in over.items() if v is not None})
    cuda = pick_device(args.device).type == "cuda"
    # CPU defaults: fp32 and NCHW, CPU's fast paths (bf16 autocast on a CPU without native bf16
    # is emulated and would measure the emulation, not the network).
    precision = args.precision or ("bf16" if cuda else "fp32")
    channels_last = cuda if args.channels_last is None else args.channels_last
    cfg = replace(
        cfg,
        precision=precision,
        floor_precision=args.floor_precision,
        channels_last=channels_last,
        device=args.device,
    )
    if cfg.size % 16:
        raise BenchError(
            f"--size must be a multiple of 16 (VGG has four 2×2 pools), got {cfg.size}"
        )
    if cfg.warmup < 0:
        raise BenchError(f"--warmup must be >= 0, got {cfg.warmup}")
    return cfg


def default_out(command: str, dev_type: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("results/bench") / f"{'cpu' if dev_type == 'cpu' else 'gpu'}-{command}-{stamp}.json"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "_worker":
        _worker(json.loads(args.spec))
        return 0
    threads = args.threads or (1 if args.quick else None)
    if threads:  # a 2-core CI box under load spends most of a tiny step in OpenMP barriers
        torch.set_num_threads(threads)
    try:
        dev = pick_device(args.device)
        base = TrainConfig(**QUICK) if args.quick else TrainConfig()
        if dev.type == "cpu" and not args.quick and args.command == "train":
            # full size on 2 CPU cores takes minutes per step; say so rather than hang silently
            if args.size is None or args.batch is None:
                print("note: CPU run at the full paper size is slow; pass --size/--width/--batch",
                      file=sys.stderr)  # fmt: skip
        if args.command == "train":
            cfg = _config(args, base)
            impls = args.impls.split(",") if args.impls else list(IMPLS)
            bad = [i for i in impls if i not in IMPLS]
            if bad:
                raise BenchError(f"unknown implementation(s) {bad}; valid: {', '.join(IMPLS)}")
            if args.epoch_batches is not None and args.epoch_batches < 0:
                raise BenchError("--epoch-batches must be >= 0")
            eb = args.epoch_batches if args.epoch_batches is not None else (0 if args.quick else 20)
            report = run_train(cfg, impls, eb, args.dataset)
            print_train(report)
        else:
            names = (args.profiles or ("smoke" if dev.type == "cpu" else "smoke,paper")).split(",")
            bad = [p for p in names if p not in PROFILES]
            if bad:
                raise BenchError(f"unknown profile(s) {bad}; valid: {', '.join(PROFILES)}")
            profiles = {}
            for p in names:
                s, w, b, t = PROFILES[p]
                pbase = TrainConfig(size=s, width=w, batch=b, T=t, repeats=1, warmup=2)
                if args.quick:
                    pbase = replace(pbase, **{k: v for k, v in QUICK.items() if k != "repeats"})
                profiles[p] = _config(args, pbase)
            seconds = args.seconds or (1.0 if args.quick else 10.0)
            report = run_packing(
                profiles, args.impl, args.trials, seconds, min_steps=2, threads=threads
            )
            print_packing(report)
    except BenchError as e:
        print(f"harness.bench: error: {e}", file=sys.stderr)
        return 2
    report["command"] = "python -m harness.bench " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    report["host"] = platform.node()
    report["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    report["versions"] = versions()
    out = args.out or default_out(args.command, report["device_type"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
