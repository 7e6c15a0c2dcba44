"""ANN→SNN knowledge distillation baselines, the paper's Table 6 (Xu et al., CVPR 2023,
"Constructing deep SNNs from ANNs with knowledge distillation", KDSNN). Three methods:

- `kd-response`: L = CE(ō, y) + λ·τ²·KL(softmax(z/τ) ‖ softmax(ō/τ))     (Hinton KD)
- `kd-feature`:  L = CE(ō, y) + λ·MSE(A(f̄_S), f_T)
- `kd-both`:     L = CE(ō, y) + λ·τ²·KL(...) + λ·MSE(A(f̄_S), f_T)

ō = (1/T)·Σ_t o_t, the time-averaged student logits; z = the teacher's logits averaged over the
same frames; f̄_S = the SNN's last conv-stage output (after the last pool) averaged over time,
f_T = the ANN's last conv-stage output averaged over the frames; A = a learnable 1×1 conv
(bias-free) when the channel counts differ, else the identity (same architecture here, so the
identity: no extra parameters).

Teacher: a QCFS ANN of the same architecture (the same teacher HSD distils from, so Table 6
isolates the kind of distillation), trained first through the engine on the same T frames the
student sees (HSD's ANN temporal training: each frame an independent image, mean CE; SGD 0.1,
cosine, 300 epochs on the paper profile), then frozen: eval mode, no gradients, batch-norm
statistics untouched (it is kept outside the trained module, so the engine never calls
`.train()` on it).

Student: LIF SNN (TET-style neuron), trained and tested at the same T (`frames = T`, the
paper's Appendix C: "training and inference time steps consistent"), Adam 1e-3 without weight
decay, cosine (TET's optimiser: the paper gives none for Table 6). λ = 1 and τ = 2 by default,
HSD's values (the paper gives neither for Table 6).
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
from hsd.hsd_method import DISTILL_PRESETS
from hsd.hybrid import HYBRID_PRESETS, frozen_teacher, train_ann
from hsd.method import RunContext
from hsd.presets import only

# The teacher is trained with HSD's ANN pre-training recipe (and its weight decay, 5e-4, while the
# student uses TET's optimiser without decay); λ and τ are HSD's.
TEACHER_PRESETS = only(HYBRID_PRESETS, "L", "pre_epochs", "pre_lr")
TEACHER_DECAY = {"any": {"weight_decay": 5e-4}}


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
) -> torch.Tensor:
    """CE(ō, y) [+ λ·τ²·KL(softmax(z/τ) ‖ softmax(ō/τ)) if `response`]
    [+ λ·MSE(f̄_S, f_T) if features are given]. Student logits [T, N, K], teacher [N, K]."""
    if response:
        loss = losses.kd_loss(student_logits, teacher_logits, target, lam, tau)
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


class KDStudent(nn.Module):
    """The trained module: the SNN plus the feature-alignment map A (identity when channels
    already match). Forward = the SNN's; the teacher is deliberately not a submodule."""

    def __init__(self, snn: nn.Module, student_c: int, teacher_c: int) -> None:
        super().__init__()
        self.snn = snn
        self.align = (
            nn.Identity()
            if student_c == teacher_c
            else nn.Conv2d(student_c, teacher_c, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.snn(x)


def _channels(model: nn.Module) -> int:
    return [m for m in model.features if isinstance(m, nn.Conv2d)][-1].out_channels


class _KDBase(Baseline):
    neuron = "lif"
    options: dict[str, Any] = {}
    response = False
    feature = False

    def preset_layers(self, cfg: RunConfig):
        return [TET_PRESETS, TEACHER_PRESETS, DISTILL_PRESETS, TEACHER_DECAY]

    def run(self, cfg: RunConfig, ctx: RunContext) -> Evaluation:
        window = slice(0, cfg.T)
        teacher = frozen_teacher(train_ann(cfg, ctx, window, "teacher"))
        snn = fresh_snn(cfg, ctx)
        student = KDStudent(snn, _channels(snn), _channels(teacher)).to(ctx.device)
        opt = make_optimizer("adam", student.parameters(), cfg.lr, 0.0)  # TET's: no decay
        lam, tau, response, feature = cfg.kd_lambda, cfg.tau, self.response, self.feature

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
            )

        ctx.info["teacher"] = "qcfs-ann"
        return train_and_test(
            cfg, ctx, student, opt, window=window, loss_fn=loss_fn, test_model=snn
        )


class KDResponse(_KDBase):
    name = "kd-response"
    summary = "KDSNN response-based KD: CE + λτ²·KL(ANN ‖ time-averaged SNN logits), same T"
    response = True


class KDFeature(_KDBase):
    name = "kd-feature"
    summary = "KDSNN feature-based KD: CE + λ·MSE(SNN last-stage features, ANN's), same T"
    feature = True


class KDBoth(_KDBase):
    name = "kd-both"
    summary = "KDSNN response + feature KD, same T"
    response = True
    feature = True
