"""How well HSD's pre-trained ANN reads each frame: per-frame validation accuracy of the QCFS ANN
that hybrid training pre-trains on frames [0, T_p) and converts, for every frame of the stream,
so the frames the SNN later infers on, [T_p, T_p + T), can be compared with the ones it learnt.

    python tools/teacher_per_frame.py --dataset n-digits --T 1,3,5 --seeds 0,1,2
    python tools/teacher_per_frame.py --dataset n-caltech101 --profile paper --root /data --T 1,3,5

Each (T, seed) trains the ANN exactly as an HSD run of that config does (its resolved preset,
the same seed and pre-training stage, so the same weights as the run's teacher), then classifies
every validation recording from one frame at a time. Prints a Markdown table: mean [95 % CI] over
the seeds per frame, the pre-training frames marked `pre`, the inference window marked `infer`.
"""

from __future__ import annotations

import argparse
import functools

import torch

from harness.report.stats import mean_ci
from hsd.config import RunConfig
from hsd.data import iterate_batches, load_frames
from hsd.data.partition import ht_partition
from hsd.device import pick_device
from hsd.engine import predict
from hsd.execute import seed_everything
from hsd.hybrid import train_ann
from hsd.method import RunContext, resolve

EVAL_BATCH = 64


def per_frame_accuracy(ann: torch.nn.Module, split, frames: int, device) -> list[float]:
    """Accuracy (%) of `ann` on `split` from each single frame f = 0..frames-1: one pass, in which
    the 2-D ANN classifies every frame on its own (`hsd.engine.predict` with ``ann=True``)."""
    device = torch.device(device)
    batches = iterate_batches(split, EVAL_BATCH, slice(0, frames), shuffle=False, device=device)
    logits, target = predict(ann, batches, ann=True, device=device)  # [F, N, K], [N]
    correct = (logits.argmax(-1) == target.view(1, -1)).sum(1).double()
    return (100.0 * correct / len(target)).tolist()


@functools.lru_cache(maxsize=2)
def _frames(dataset: str, frames: int, size: int, root: str | None):
    """The frame cache of one window layout, loaded once for every seed that trains on it."""
    return load_frames(dataset, frames=frames, size=size, root=root)


def teacher_accuracy(
    dataset: str, T: int, seed: int, profile: str = "smoke", root: str | None = None
) -> tuple[RunConfig, float, list[float]]:
    """Train the HSD run's pre-training ANN for (dataset, T, seed). Returns the resolved config,
    the stage's best validation accuracy (%; the run's row holds it as `pretrain_val_acc`, which
    checks that these are the run's weights) and the per-frame validation accuracy."""
    cfg = resolve(RunConfig("hsd", dataset, T, seed=seed, profile=profile))
    seed_everything(cfg.seed)
    data = _frames(cfg.dataset, cfg.frames, cfg.size, root)
    ctx = RunContext(data=data, device=pick_device("auto"))  # a GPU when there is one
    pre, _ = ht_partition(cfg.frames, cfg.pre_frames, cfg.T)
    ann = train_ann(cfg, ctx, pre, "pretrain")
    pre_val = 100.0 * ctx.info["pretrain_val_acc"]
    return cfg, pre_val, per_frame_accuracy(ann, data.val, cfg.frames, ctx.device)


def _cell(values: list[float]) -> str:
    iv = mean_ci(values)
    return f"{iv.mean:.1f}" + (f" [{iv.low:.1f}, {iv.high:.1f}]" if iv.n > 1 else "")


def table(results: dict[int, list[tuple[RunConfig, float, list[float]]]]) -> str:
    """Markdown: one row per T, one column per frame (mean [95 % CI] over the seeds, marked `pre`
    or `infer`), and the stage's own validation accuracy on its frames."""
    frames = max(cfg.frames for runs in results.values() for cfg, _, _ in runs)
    head = " | ".join(f"frame {f}" for f in range(frames))
    lines = [
        f"| T | T_p | seeds | ANN val on [0, T_p) | {head} |",
        "|" + "---:|" * (frames + 4),
    ]
    for T, runs in sorted(results.items()):
        cfg = runs[0][0]
        cells = [
            f"{_cell([accs[f] for _, _, accs in runs])} ({'pre' if f < cfg.pre_frames else 'infer'})"
            for f in range(cfg.frames)
        ]
        pre_val = _cell([v for _, v, _ in runs])
        lines.append(
            f"| {T} | {cfg.pre_frames} | {len(runs)} | {pre_val} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="n-digits")
    ap.add_argument("--T", default="1,3,5", help="comma-separated inference time steps")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ap.add_argument("--profile", default="smoke", choices=("smoke", "paper"))
    ap.add_argument("--root", help="real dataset root (simulated sets are generated when absent)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as every run of a sweep trains
    results = {}
    for T in (int(t) for t in args.T.split(",")):
        results[T] = [
            teacher_accuracy(args.dataset, T, int(s), args.profile, args.root)
            for s in args.seeds.split(",")
        ]
    print(table(results))


if __name__ == "__main__":
    main()
