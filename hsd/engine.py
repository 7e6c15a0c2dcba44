"""The one training and evaluation engine, shared by HSD and every baseline.

- `train_one_epoch`: one pass over the batches; neuron state is reset in a `finally` after every
  batch, so an exception can never leak membrane potential into the next batch or evaluation.
- `evaluate`: the model's logits at every t <= T, accuracy from the cumulative mean of logits, plus
  firing rates and synaptic operations (see `hsd.metrics`), and per sample and t the prediction,
  its confidence and its operations (`SampleRecord`, on test and optionally validation: the data
  an early-exit rule needs).
- `fit`: epochs of one training stage with the paper's cosine schedule, a checkpoint each epoch
  (resumed transparently), and model selection on the validation split — never on test. Each
  epoch yields one learning-curve record (`EPOCH_FIELDS`) to the `on_epoch` callback.
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spikingjelly.activation_based import functional
from torch import nn

from hsd import metrics
from hsd.config import ADAM_DECAYS, DEFAULT_ADAM_DECAY

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
# A step function does its own forward and backward (SLTT back-propagates per time step) and
# returns the loss value; the engine still zeroes gradients, resets state and steps the optimizer.
StepFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite; the harness records a 'diverged' row.

    `loss` is the offending value; `fit` adds the `stage` and `epoch` it happened in."""

    def __init__(self, message: str, loss: float = math.nan) -> None:
        super().__init__(message)
        self.loss = loss
        self.stage: str | None = None
        self.epoch: int | None = None


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this run: CUDA allocator peak on GPU; on CPU the process's peak resident set
    (an upper bound that includes the interpreter and libraries, as the OS reports it)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


def forward_frames(model: nn.Module, x: torch.Tensor, *, ann: bool) -> torch.Tensor:
    """Logits `[T, N, K]` for frames `[T, N, C, H, W]`. A 2-D ANN sees each frame as an
    independent image (the paper's ANN temporal training); an SNN consumes the sequence."""
    if ann:
        t, n = x.shape[:2]
        return model(x.flatten(0, 1)).view(t, n, -1)
    return model(x)


def train_one_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    *,
    loss_fn: LossFn | None = None,
    step_fn: StepFn | None = None,
    device: torch.device = torch.device("cpu"),
    bf16: bool = False,
    predictor: nn.Module | None = None,
) -> dict[str, float]:
    """One epoch; exactly one of `loss_fn` (the engine back-propagates it) or `step_fn`.

    Returns the sample-weighted mean training loss and the training accuracy
    (`hsd.metrics.TrainAccuracy`) of `predictor`, the module whose outputs are the logits
    (default: `model`)."""
    if (loss_fn is None) == (step_fn is None):
        raise ValueError("pass exactly one of loss_fn or step_fn")
    model.train()
    total, count = 0.0, 0
    with metrics.TrainAccuracy(predictor if predictor is not None else model) as acc:
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            try:
                with autocast(device, bf16):
                    if step_fn is not None:
                        value = float(step_fn(model, x, y))
                    else:
                        loss = loss_fn(model, x, y)
                        value = float(loss.detach())
                if not math.isfinite(value):
                    raise DivergedError(f"training loss became {value}", loss=value)
                if step_fn is None:
                    loss.backward()
                optimizer.step()
            finally:
                functional.reset_net(model)
            acc.end_batch(y)
            total += value * len(y)
            count += len(y)
    return {"loss": total / max(count, 1), "acc": acc.value}


@dataclass
class SampleRecord:
    """Per sample and inference step t = 1..T, what an early-exit rule needs (one split).

    With p_t = softmax((1/t)·Σ_{s≤t} o_s), the softmax of the cumulative mean logits:
    ``pred`` = argmax p_t, ``confidence`` = max p_t, ``margin`` = the largest minus the second
    largest entry of p_t. ``macs``/``acs`` are the sample's own operations to run steps 1..t.
    """

    pred: np.ndarray  # [N, T] int64
    confidence: np.ndarray  # [N, T] float32
    margin: np.ndarray  # [N, T] float32
    label: np.ndarray  # [N] int64
    macs: np.ndarray  # [N, T] float64, cumulative over t
    acs: np.ndarray  # [N, T] float64, cumulative over t


def sample_record(logits: torch.Tensor, target: torch.Tensor, ops: dict) -> SampleRecord:
    """`SampleRecord` from logits ``[T, N, K]``, targets ``[N]`` and per-sample ops
    (`hsd.metrics.SpikeStats.per_sample_ops`)."""
    steps = torch.arange(1, logits.shape[0] + 1, dtype=torch.float32).view(-1, 1, 1)
    probs = torch.softmax(logits.float().cumsum(0) / steps, dim=-1)  # [T, N, K]
    top = probs.topk(min(2, probs.shape[-1]), dim=-1)
    second = top.values[..., 1] if probs.shape[-1] > 1 else torch.zeros_like(top.values[..., 0])
    return SampleRecord(
        pred=top.indices[..., 0].T.numpy().astype(np.int64),
        confidence=top.values[..., 0].T.numpy().astype(np.float32),
        margin=(top.values[..., 0] - second).T.numpy().astype(np.float32),
        label=target.numpy().astype(np.int64),
        macs=np.asarray(ops["macs"], dtype=np.float64),
        acs=np.asarray(ops["acs"], dtype=np.float64),
    )


@dataclass
class Evaluation:
    """Test-set measurements of one model at every inference step t = 1..T."""

    acc: np.ndarray  # [T] accuracy from the cumulative mean of logits up to t
    macs: np.ndarray  # [T] multiply-accumulates per sample up to t (analog first layer)
    acs: np.ndarray  # [T] accumulates per sample up to t (spike-driven layers)
    firing_rates: dict[str, float]  # per spiking layer, mean over all steps
    firing_rate: float  # spikes per neuron per step over all spiking layers together
    params: int
    samples: int
    eval_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    # split ("test", "val") -> per-sample outcomes; kept out of the rows (see `SampleRecord`)
    per_sample: dict[str, SampleRecord] = field(default_factory=dict)

    @property
    def T(self) -> int:
        return len(self.acc)

    def rows(self, cfg) -> list[dict[str, Any]]:
        energy = metrics.energy_joules(self.macs, self.acs)
        out = []
        for i in range(self.T):
            t = i + 1
            out.append(
                {
                    "t": t,
                    "acc": float(self.acc[i]),
                    # Sensor-time latency: the last frame used over the frames per sample.
                    "stream_fraction": (cfg.first_eval_frame + t) / cfg.frames,
                    "macs": float(self.macs[i]),
                    "acs": float(self.acs[i]),
                    "energy_j": float(energy[i]),
                    "firing_rate": self.firing_rate,
                    "params": self.params,
                    "test_samples": self.samples,
                    "eval_s": round(self.eval_s, 3),
                    **self.extra,
                }
            )
        return out


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Batches,
    *,
    ann: bool = False,
    bf16: bool = False,
    device: torch.device = torch.device("cpu"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """All logits `[T, N, K]` (float32, on CPU) and targets `[N]` of a pass in eval mode."""
    model.eval()
    logits, targets = [], []
    for x, y in batches:
        try:
            with autocast(device, bf16):
                out = forward_frames(model, x, ann=ann)
        finally:
            functional.reset_net(model)
        logits.append(out.float().cpu())
        targets.append(y.cpu())
    return torch.cat(logits, dim=1), torch.cat(targets)


def _per_sample(
    model: nn.Module, batches: Batches, *, bf16: bool, device: torch.device
) -> SampleRecord:
    with metrics.SpikeStats(model, per_sample=True) as stats:
        logits, target = predict(model, batches, bf16=bf16, device=device)
    return sample_record(logits, target, stats.per_sample_ops())


def evaluate(
    model: nn.Module,
    batches: Batches,
    *,
    val_batches: Batches | None = None,
    bf16: bool = False,
    device: torch.device = torch.device("cpu"),
) -> Evaluation:
    """Accuracy at every t, firing rates and synaptic operations of a spiking model on `batches`
    (test), with per-sample outcomes on test and, given `val_batches`, on validation too (an
    early-exit threshold is chosen on validation, never on test)."""
    start = time.perf_counter()
    with metrics.SpikeStats(model, per_sample=True) as stats:
        logits, target = predict(model, batches, bf16=bf16, device=device)
        ops = stats.synaptic_ops()
        rates = stats.firing_rates()
        mean_rate = stats.mean_firing_rate()
        per_sample = {"test": sample_record(logits, target, stats.per_sample_ops())}
    eval_s = time.perf_counter() - start
    if val_batches is not None:
        per_sample["val"] = _per_sample(model, val_batches, bf16=bf16, device=device)
    return Evaluation(
        acc=metrics.accuracy_per_t(logits, target),
        macs=np.asarray(ops["macs"], dtype=float),
        acs=np.asarray(ops["acs"], dtype=float),
        firing_rates=rates,
        firing_rate=mean_rate,
        params=metrics.count_parameters(model),
        samples=len(target),
        eval_s=eval_s,
        per_sample=per_sample,
        extra={"ops_convention": ops["convention"]},
    )


@dataclass
class Validation:
    """One validation pass: accuracy of the full-window prediction (mean of logits over all
    frames) and, per spiking layer, spikes per neuron per time step on that pass (none for an
    ANN); `firing_rate` is over all spiking layers together (None for an ANN)."""

    acc: float
    firing_rates: dict[str, float]
    firing_rate: float | None


def validate(
    model: nn.Module, batches: Batches, *, ann: bool, bf16: bool, device: torch.device
) -> Validation:
    """The validation pass of one epoch (`Validation`); spikes are counted, operations are not."""
    with metrics.SpikeStats(model, count_ops=False) as stats:
        logits, target = predict(model, batches, ann=ann, bf16=bf16, device=device)
    rates = stats.firing_rates() if stats.samples else {}
    return Validation(
        acc=float(metrics.accuracy_per_t(logits, target)[-1]),
        firing_rates=rates,
        firing_rate=stats.mean_firing_rate() if rates else None,
    )


# -- optimisation recipe pieces ---------------------------------------------------------------


def make_optimizer(
    name: str, params, lr: float, weight_decay: float, adam_decay: str = DEFAULT_ADAM_DECAY
) -> torch.optim.Optimizer:
    """The paper's optimisers: SGD (momentum 0.9) for ANN pre-training, Adam elsewhere.

    `adam_decay` (`hsd.config.ADAM_DECAYS`) says how Adam applies weight decay. Coupled, Adam
    normalises the decay term with the gradient, so a weight whose gradient is (near) zero, as
    behind a silent spiking layer, moves by about lr per step towards 0 whatever the decay's size,
    and the layers after it fall silent too. Decoupled, it shrinks by the factor
    1 - lr x weight_decay per step. With weight decay 0 the two are the same optimiser."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        if adam_decay not in ADAM_DECAYS:
            raise ValueError(f"unknown adam_decay {adam_decay!r}; valid: {', '.join(ADAM_DECAYS)}")
        decoupled = adam_decay == "decoupled"
        return torch.optim.Adam(
            params, lr=lr, weight_decay=weight_decay, decoupled_weight_decay=decoupled
        )
    raise ValueError(f"unknown optimizer {name!r}; valid: sgd, adam")


def cosine(optimizer: torch.optim.Optimizer, epochs: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))


# -- a training stage with checkpoints and model selection ------------------------------------


@dataclass
class Stage:
    """One training stage of a recipe (e.g. HSD's 'pretrain' then 'finetune')."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int
    train_batches: Callable[[int], Batches]  # epoch -> batches (the epoch seeds the shuffle)
    val_batches: Callable[[], Batches]
    loss_fn: LossFn | None = None
    step_fn: StepFn | None = None
    ann: bool = False  # evaluate as a 2-D ANN over independent frames
    # the module whose outputs are the logits, when `model` wraps it with extra trainable parts
    # (training accuracy is read from it); default `model`
    predictor: nn.Module | None = None


#: The learning-curve record of one epoch, given to `fit`'s `on_epoch` callback and kept in the
#: checkpoint's history: the epoch (from 1), the sample-weighted mean training loss, the training
#: accuracy (`hsd.metrics.TrainAccuracy`), the validation accuracy, the learning rate the epoch
#: trained with (first parameter group, before the scheduler steps), spikes per neuron per time
#: step per spiking layer and over all of them on that epoch's validation pass (`validate`), the
#: seconds of training plus validation, and the model-selection epoch so far (best validation
#: accuracy, the first epoch reaching it).
EPOCH_FIELDS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_acc",
    "lr",
    "firing_rates",
    "firing_rate",
    "seconds",
    "best_epoch",
)


def _atomic_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def improves(val_acc: float, best_acc: float) -> bool:
    """The model-selection rule: strictly better validation accuracy (ties keep the earlier)."""
    return val_acc > best_acc


def _restored_history(history: list[dict]) -> list[dict]:
    """A checkpoint's history with every `EPOCH_FIELDS` key (checkpoints written before the
    learning-curve fields kept only loss, validation accuracy and seconds)."""
    out, best_acc, best_epoch = [], -1.0, None
    for record in history:
        rec = {**dict.fromkeys(EPOCH_FIELDS), **record}
        rec["train_loss"] = rec.pop("loss", rec["train_loss"])
        rec["seconds"] = rec.pop("epoch_s", rec["seconds"])
        if improves(rec["val_acc"], best_acc):
            best_acc, best_epoch = rec["val_acc"], rec["epoch"]
        if rec["best_epoch"] is None:
            rec["best_epoch"] = best_epoch
        out.append(rec)
    return out


def fit(
    stage: Stage,
    *,
    run_id: str,
    device: torch.device,
    bf16: bool = False,
    checkpoint_dir: Path | None = None,
    on_epoch=None,
) -> dict[str, Any]:
    """Train `stage.model` for `stage.epochs` epochs; keep and load the best-validation weights.

    With a `checkpoint_dir`, the state after every epoch is written atomically to
    `<dir>/<stage>.pt` and a rerun continues after the last finished epoch, so a killed trial
    loses at most the epoch in flight. `on_epoch(stage, epoch, epochs, record)` receives each
    epoch's record (`EPOCH_FIELDS`): first, on a resumed stage, every epoch restored from the
    checkpoint (in order), then each epoch as it is trained, so a listener sees the whole curve.
    A `DivergedError` leaves with the stage and epoch it happened in. Returns the stage summary
    (best validation accuracy and its epoch, epochs, history).
    """
    model = stage.model
    scheduler = cosine(stage.optimizer, stage.epochs)
    path = checkpoint_dir / f"{stage.name}.pt" if checkpoint_dir is not None else None
    start, best_acc, best_epoch, best_state, history = 0, -1.0, None, None, []
    if path is not None and path.exists():
        ck = load_checkpoint(path)
        if ck.get("run_id") != run_id:
            raise ValueError(
                f"checkpoint {path} belongs to run {ck.get('run_id')}, not {run_id}; "
                "remove it or use another checkpoint folder"
            )
        try:
            model.load_state_dict(ck["model"])
        except RuntimeError as err:
            raise ValueError(f"checkpoint {path} is from another architecture: {err}") from None
        stage.optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        start, best_acc, best_state = ck["epoch"], ck["best_acc"], ck["best_state"]
        history = _restored_history(ck["history"])
        best_epoch = history[-1]["best_epoch"] if history else None
        for record in history if on_epoch is not None else ():
            on_epoch(stage.name, record["epoch"], stage.epochs, record)
    for epoch in range(start + 1, stage.epochs + 1):
        t0 = time.perf_counter()
        lr = float(stage.optimizer.param_groups[0]["lr"])
        try:
            stats = train_one_epoch(
                model,
                stage.train_batches(epoch),
                stage.optimizer,
                loss_fn=stage.loss_fn,
                step_fn=stage.step_fn,
                device=device,
                bf16=bf16,
                predictor=stage.predictor,
            )
        except DivergedError as err:
            err.stage, err.epoch = stage.name, epoch
            raise
        scheduler.step()
        val = validate(model, stage.val_batches(), ann=stage.ann, bf16=bf16, device=device)
        if improves(val.acc, best_acc):
            best_acc, best_epoch, best_state = val.acc, epoch, _clone_state(model)
        record = {
            "epoch": epoch,
            "train_loss": stats["loss"],
            "train_acc": stats["acc"],
            "val_acc": val.acc,
            "lr": lr,
            "firing_rates": val.firing_rates,
            "firing_rate": val.firing_rate,
            "seconds": time.perf_counter() - t0,
            "best_epoch": best_epoch,
        }
        history.append(record)
        if path is not None:
            _atomic_save(
                {
                    "run_id": run_id,
                    "stage": stage.name,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": stage.optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "best_acc": best_acc,
                    "best_state": best_state,
                    "history": history,
                },
                path,
            )
        if on_epoch is not None:
            on_epoch(stage.name, epoch, stage.epochs, record)
    if best_state is not None:
        model.load_state_dict(best_state)
    return {
        "best_val_acc": best_acc,
        "best_epoch": best_epoch,
        "epochs": stage.epochs,
        "history": history,
    }
