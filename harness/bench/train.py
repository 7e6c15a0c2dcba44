"""Training-step benchmark: each implementation's step time and peak memory against the ANN floor,
and an epoch of real batches against the summed steps (data stalls).

Every implementation (`harness.bench.anchors`) trains through the engine's own loop
(``hsd.engine.train_one_epoch`` on a single batch: zero_grad, autocast, ``hsd.losses.mean_ce``,
backward, step, ``reset_net`` in a finally); the step is repeated and its median reported.

Peak memory: CUDA ``max_memory_allocated`` after a reset before the measured steps. On CPU there is
no allocator peak to read, so ``peak_gib`` is an estimate labelled ``peak_method="saved+state"``:
bytes of the tensors autograd keeps for backward (measured with saved-tensor hooks) + parameters,
gradients and momentum + the input. ``saved_gib`` (activations kept for backward) is reported on
every device.
"""

from __future__ import annotations

import gc
import itertools
import json
import statistics
import sys
import time
from dataclasses import asdict, replace
from typing import Any

import torch
from torch import nn

from harness.bench.anchors import DESCRIPTIONS, model_for_impl
from harness.bench.config import TARGETS, BenchError, TrainConfig, precision_of
from hsd.device import device_name, pick_device


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work, so a timer measures it."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# -- one training step, exactly the engine's -----------------------------------------------------


def _loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from hsd.engine import forward_frames
    from hsd.losses import mean_ce

    return mean_ce(forward_frames(model, x, ann=False), y)


def optimizer(model: nn.Module) -> torch.optim.Optimizer:
    from hsd.engine import make_optimizer

    return make_optimizer("sgd", model.parameters(), lr=1e-3, weight_decay=5e-4)


def train_step(model, opt, batch, dev: torch.device, bf16: bool, loss_fn=_loss_fn) -> None:
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
    model = model_for_impl(impl, cfg).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    bf16 = precision_of(impl, cfg) == "bf16"
    opt = optimizer(model)
    x, y = batch
    saved = saved_bytes_of_step(model, x, y, dev, bf16)
    for _ in range(cfg.warmup):
        train_step(model, opt, (x, y), dev, bf16)
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu_times = [], []
    for _ in range(cfg.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        train_step(model, opt, (x, y), dev, bf16)
        sync(dev)
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
    model = model_for_impl(impl, replace(cfg, num_classes=fs.spec.num_classes)).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = optimizer(model)
    bf16 = precision_of(impl, cfg) == "bf16"
    gen = torch.Generator(device=dev).manual_seed(0)

    def run_epoch() -> tuple[float, int]:
        it = iterate_batches(
            fs.train, cfg.batch, slice(0, cfg.T), shuffle=True, generator=gen, device=dev,
            augment="flip_roll", drop_last=True,
        )  # fmt: skip
        counted = _Counted(itertools.islice(it, batches))
        sync(dev)
        t0 = time.perf_counter()
        train_one_epoch(model, counted, opt, loss_fn=_loss_fn, device=dev, bf16=bf16)
        sync(dev)
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
