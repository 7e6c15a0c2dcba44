"""Trial packing: how many training processes one device should run at once.

Runs 1, 2, 4 ... worker processes (`python -m harness.bench _worker`, each training one model
on its own synthetic batch), releases them together, and reports aggregate frames/s, so a sweep
can pick trials per GPU from a measurement. The workers must not import Ray: the machines this
runs on may not have it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict

import torch

from harness.bench.anchors import model_for_impl
from harness.bench.config import TrainConfig
from harness.bench.train import optimizer, sync, synthetic_batch, train_step
from hsd.device import device_name, pick_device


def worker(spec: dict) -> None:
    """One packed trial: build, warm up, print READY, wait for GO on stdin, run, print JSON."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    cfg = TrainConfig(**spec["cfg"])
    dev = pick_device(cfg.device)
    try:
        model = model_for_impl(spec["impl"], cfg).to(dev)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = optimizer(model)
        batch = synthetic_batch(cfg, dev, seed=spec["index"])
        bf16 = cfg.precision == "bf16"
        for _ in range(cfg.warmup):
            train_step(model, opt, batch, dev, bf16)
        sync(dev)
    except torch.OutOfMemoryError as e:
        print("READY", flush=True)
        sys.stdin.readline()
        print(json.dumps({"status": "infeasible", "error": str(e)[:300]}), flush=True)
        return
    print("READY", flush=True)
    sys.stdin.readline()
    t0, steps = time.perf_counter(), 0
    while steps < spec["min_steps"] or time.perf_counter() - t0 < spec["seconds"]:
        train_step(model, opt, batch, dev, bf16)
        steps += 1
    sync(dev)
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
