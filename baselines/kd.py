"""ANN→SNN knowledge distillation baselines, the paper's Table 6 (Xu et al., CVPR 2023,
"Constructing deep SNNs from ANNs with knowledge distillation", KDSNN). Three methods:

- `kd-response`: L = CE(ō, y) + λ·τ²·KL(softmax(z/τ) ‖ softmax(ō/τ)) / c     (Hinton KD)
- `kd-feature`:  L = CE(ō, y) + λ·MSE(A(f̄_S), f_T)
- `kd-both`:     L = CE(ō, y) + λ·τ²·KL(...) / c + λ·MSE(A(f̄_S), f_T)

ō = (1/T)·Σ_t o_t, the time-averaged student logits; z = the teacher's logits averaged over the
same frames; c = K for the default KL reduction "classmean" (option `kl_reduction`, as HSD's,
see `hsd.losses`); f̄_S = the SNN's last conv-stage output (after the last pool) averaged over
time, f_T = the ANN's last conv-stage output averaged over the frames; A = a learnable alignment
on every feature pair, even when the channel counts match: student spike rates lie in [0, 1],
QCFS activations in [0, λ], so without it the MSE mostly cannot reach zero. Option `align`:
"conv1x1" (default: a 1×1 conv with bias, started at the identity when the channels match) or
"affine" (a per-channel scale and shift; channel counts must match).

Teacher: a QCFS ANN of the same architecture (the same teacher HSD distils from, so Table 6
isolates the kind of distillation), trained first through the engine on the same T frames the
student sees (HSD's ANN temporal training: each frame an independent image, mean CE; SGD 0.1,
cosine, 300 epochs on the paper profile), then frozen: eval mode, no gradients, batch-norm
statistics untouched (it is kept outside the trained module, so the engine never calls
`.train()` on it).

Student: LIF SNN (TET-style neuron), trained and tested at the same T (`frames = T`, the
paper's Appendix C: "training and inference time steps consistent"), Adam 1e-3 without weight
decay, cosine (TET's optimiser: the paper gives none for Table 6). λ, τ and the KL reduction by default
HSD's (λ = 1, τ = 10, classmean: the HSD authors' code; the paper gives none for Table 6). The
alignment A trains with the student.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import Baseline, fresh_snn, train_and_test
from baselines.tet import TET_PRESETS
from hsd import losses
from hsd.config import RunConfig
from hsd.engine import Evaluation, forward_frames, make_optimizer
from hsd.hsd_method import DISTILL_PRESETS, DISTILL_SPACE
from hsd.hybrid import HYBRID_PRESETS, frozen_teacher, train_ann
from hsd.method import RunContext
from hsd.params import BASE_SPACE, Choice
from hsd.presets import BASE, only

# The teacher is trained with HSD's ANN pre-training recipe, its weight decay included (the shared
# 5e-4, or HSD's smoke value from its study; the student uses TET's optimiser without decay); λ
# and τ are HSD's. The shared decay is laid again over TET's layer, which sets the student's own.
TEACHER_PRESETS = [
    only(BASE, "weight_decay"),
    only(HYBRID_PRESETS, "L", "pre_epochs", "pre_lr", "weight_decay"),
]

ALIGNMENTS = ("conv1x1", "affine")
# The options KDSNN-style students take (see the module docstring for why these defaults).
KL_REDUCTION = Choice(losses.KL_REDUCTIONS, default="classmean")
ALIGN = Choice(ALIGNMENTS, default="conv1x1")


def feature_kd(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """MSE between time-averaged student features and teacher features, both [N, C, h, w]."""
    if student_feat.shape != teacher_feat.shape:
        raise ValueError(
            f"feature_kd: student {tuple(student_feat.shape)} vs teacher "
            f"{tuple(teacher_feat.shape)}; align channels first"
        )
    return F.mse_loss(student_feat, teacher_feat.detach())


def kdsnn_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    *,
    lam: float,
    tau: float,
    response: bool,
    student_feat: torch.Tensor | None = None,
    teacher_feat: torch.Tensor | None = None,
    reduction: str = "classmean",
) -> torch.Tensor:
    """CE(ō, y) [+ λ·τ²·KL(softmax(z/τ) ‖ softmax(ō/τ)) / c if `response`]
    [+ λ·MSE(f̄_S, f_T) if features are given (already aligned)]. Student logits [T, N, K],
    teacher [N, K]; c per `reduction` as in `hsd.losses.kd_loss`."""
    if response:
        loss = losses.kd_loss(student_logits, teacher_logits, target, lam, tau, reduction)
    else:
        loss = F.cross_entropy(student_logits.mean(0), target)
    if student_feat is not None:
        loss = loss + lam * feature_kd(student_feat, teacher_feat)
    return loss


def features_and_logits(
    model: nn.Module, x: torch.Tensor, *, ann: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(last conv-stage output averaged over the T frames [N, C, h, w], logits [T, N, K]) of one
    forward; the features are read by a hook on the last module of `model.features`."""
    seen: list[torch.Tensor] = []
    hook = model.features[-1].register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        logits = forward_frames(model, x, ann=ann)
    finally:
        hook.remove()
    feats = seen[-1]
    if feats.dim() == 4:  # [T·N, C, h, w] (time folded into the batch)
        feats = feats.unflatten(0, tuple(x.shape[:2]))
    return feats.mean(0), logits


class ChannelAffine(nn.Module):
    """y = a_c·x + b_c per channel of [N, C, h, w]; starts at the identity (a = 1, b = 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale[:, None, None] + self.shift[:, None, None]


def feature_alignment(kind: str, student_c: int, teacher_c: int) -> nn.Module:
    """The learnable map A from student to teacher features (see the module docstring)."""
    if kind == "affine":
        if student_c != teacher_c:
            raise ValueError(
                f"align='affine' needs equal channel counts, got student {student_c} vs teacher "
                f"{teacher_c}; use align='conv1x1'"
            )
        return ChannelAffine(student_c)
    if kind != "conv1x1":
        raise ValueError(f"feature alignment {kind!r} unknown; valid: {', '.join(ALIGNMENTS)}")
    conv = nn.Conv2d(student_c, teacher_c, 1, bias=True)
    if student_c == teacher_c:  # start at the identity: training only has to learn the scale
        with torch.no_grad():
            conv.weight.copy_(torch.eye(student_c)[:, :, None, None])
            conv.bias.zero_()
    return conv


class KDStudent(nn.Module):
    """The trained module: the SNN plus the feature-alignment map A. Forward = the SNN's; the
    teacher is deliberately not a submodule."""

    def __init__(
        self, snn: nn.Module, student_c: int, teacher_c: int, align: str | None = "conv1x1"
    ) -> None:
        super().__init__()
        self.snn = snn
        # None: response-only KD, which compares no features
        self.align = (
            nn.Identity() if align is None else feature_alignment(align, student_c, teacher_c)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.snn(x)


def _channels(model: nn.Module) -> int:
    return [m for m in model.features if isinstance(m, nn.Conv2d)][-1].out_channels


class _KDBase(Baseline):
    neuron = "lif"
    options: dict[str, Any] = {}
    # Tuned like HSD's distillation term (same λ and τ ranges), plus the shared lr and weight decay
    # (the latter acts on the teacher's pre-training: the student trains without decay).
    search_space = {**BASE_SPACE, **DISTILL_SPACE}
    response = False
    feature = False

    def preset_layers(self, cfg: RunConfig):
        return [TET_PRESETS, *TEACHER_PRESETS, DISTILL_PRESETS]

    def training_stages(self, cfg: RunConfig) -> list[tuple[str, int, int]]:
        # the teacher ANN (HSD's pre-training recipe) on the student's T frames, then the student
        return [("teacher", cfg.pre_epochs or 0, cfg.T), ("train", cfg.epochs or 0, cfg.T)]

    def run(self, cfg: RunConfig, ctx: RunContext) -> Evaluation:
        window = slice(0, cfg.T)
        teacher = frozen_teacher(train_ann(cfg, ctx, window, "teacher"))
        snn = fresh_snn(cfg, ctx)
        align = cfg.option("align") if self.feature else None
        student = KDStudent(snn, _channels(snn), _channels(teacher), align)
        student = student.to(ctx.device)
        opt = make_optimizer("adam", student.parameters(), cfg.lr, 0.0)  # TET's: no decay
        lam, tau, response, feature = cfg.kd_lambda, cfg.tau, self.response, self.feature
        reduction = cfg.option("kl_reduction", "classmean")

        def loss_fn(model: KDStudent, x, y):
            with torch.no_grad():
                t_feat, t_logits = features_and_logits(teacher, x, ann=True)
            if feature:
                s_feat, s_logits = features_and_logits(model.snn, x, ann=False)
                s_feat = model.align(s_feat)
            else:
                s_feat, s_logits, t_feat = None, model.snn(x), None
            return kdsnn_loss(
                s_logits,
                t_logits.mean(0),
                y,
                lam=lam,
                tau=tau,
                response=response,
                student_feat=s_feat,
                teacher_feat=t_feat,
                reduction=reduction,
            )

        ctx.info["teacher"] = "qcfs-ann"
        return train_and_test(
            cfg, ctx, student, opt, window=window, loss_fn=loss_fn, test_model=snn
        )


class KDResponse(_KDBase):
    name = "kd-response"
    summary = "KDSNN response-based KD: CE + λτ²·KL(ANN ‖ time-averaged SNN logits), same T"
    options = {"kl_reduction": KL_REDUCTION}
    response = True


class KDFeature(_KDBase):
    name = "kd-feature"
    summary = "KDSNN feature-based KD: CE + λ·MSE(aligned SNN last-stage features, ANN's), same T"
    options = {"align": ALIGN}
    feature = True
    # No response term, so no temperature to tune.
    search_space = {**BASE_SPACE, "kd_lambda": DISTILL_SPACE["kd_lambda"]}


class KDBoth(_KDBase):
    name = "kd-both"
    summary = "KDSNN response + feature KD, same T"
    options = {"kl_reduction": KL_REDUCTION, "align": ALIGN}
    response = True
    feature = True
