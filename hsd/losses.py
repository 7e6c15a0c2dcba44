"""Losses as pure functions of tensors (logits time-first: student ``[T, N, K]``).

- ``mean_ce``: frame-averaged cross-entropy, HSD Eq. 5 (ANN temporal training) and TET's CE term.
- ``ce_of_mean``: cross-entropy of the time-averaged logits (direct training's usual loss).
- ``skd_loss``: step-wise KD, HSD Eq. 11/13 — a KL term per time step.
- ``kd_loss``: vanilla Hinton KD on the time-averaged student (HSD Eq. 9/10), the Table 2/6
  "HT+KD" comparison.

Teacher logits are constants (detached here, so a caller cannot leak gradient into the ANN).
The τ² factor keeps the gradient scale independent of τ (Hinton et al. 2015). How the KL is
reduced over samples and classes is the ``reduction`` argument (``KL_REDUCTIONS``):

- ``"classmean"`` (default): the mean over samples *and* classes, i.e. the ``batchmean`` KL
  divided by the class count K. This is what the HSD authors' running code computes
  (``nn.KLDivLoss()`` with its default reduction, times τ², weight 1), so with λ = 1 the
  default loss is theirs.
- ``"batchmean"``: the sum over classes, mean over samples — the KL divergence per sample as in
  Hinton et al. 2015. λ in these units equals λ_classmean / K.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["KL_REDUCTIONS", "ce_of_mean", "kd_loss", "mean_ce", "skd_loss"]

KL_REDUCTIONS = ("classmean", "batchmean")


def _check_target(target: torch.Tensor, n: int, k: int, fn: str) -> None:
    if target.dim() != 1 or target.shape[0] != n:
        raise ValueError(f"{fn}: target must be [N={n}] class indices, got {tuple(target.shape)}")
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{fn}: target must hold integer class indices, got {target.dtype}")


def mean_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``[N, K]`` logits, or for ``[T, N, K]`` the mean over steps:

        L = (1/T) · Σ_t CE(o_t, y)

    (equal to CE on the ``[T·N, K]`` stack since every step has the same N).
    """
    if logits.dim() == 2:
        _check_target(target, logits.shape[0], logits.shape[1], "mean_ce")
        return F.cross_entropy(logits, target.long())
    if logits.dim() == 3:
        T, N, K = logits.shape
        _check_target(target, N, K, "mean_ce")
        return F.cross_entropy(logits.reshape(T * N, K), target.long().repeat(T))
    raise ValueError(f"mean_ce: logits must be [N, K] or [T, N, K], got {tuple(logits.shape)}")


def ce_of_mean(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the time-averaged logits of ``[T, N, K]``:

        L = CE( (1/T)·Σ_t o_t , y )

    (unlike ``mean_ce``, a confident step can make up for a wrong one).
    """
    if logits.dim() != 3:
        raise ValueError(f"ce_of_mean: logits must be [T, N, K], got {tuple(logits.shape)}")
    _check_target(target, logits.shape[1], logits.shape[2], "ce_of_mean")
    return F.cross_entropy(logits.mean(0), target.long())


def _check_kd(student, teacher, target, lam, tau, reduction, fn):
    if student.dim() != 3:
        raise ValueError(f"{fn}: student logits must be [T, N, K], got {tuple(student.shape)}")
    T, N, K = student.shape
    if teacher.shape != (N, K):
        raise ValueError(
            f"{fn}: teacher logits must be [N, K] = [{N}, {K}] (average a [T, N, K] teacher "
            f"over its frames first), got {tuple(teacher.shape)}"
        )
    _check_target(target, N, K, fn)
    if not tau > 0:
        raise ValueError(f"{fn}: temperature tau must be > 0, got {tau!r}")
    if not lam >= 0:
        raise ValueError(f"{fn}: KD weight lam must be >= 0, got {lam!r}")
    if reduction not in KL_REDUCTIONS:
        raise ValueError(
            f"{fn}: KL reduction {reduction!r} unknown; valid: {', '.join(KL_REDUCTIONS)}"
        )


def _kl_teacher_student(teacher_logits, student_logits, tau, reduction):
    """τ²·KL(softmax(z/τ) ‖ softmax(o/τ)) reduced over the last two axes [N, K] as `reduction`
    says ("batchmean": sum over K, mean over N; "classmean": mean over N and K); o may carry a
    leading T axis, in which case the result is per step ([T])."""
    log_p_s = F.log_softmax(student_logits / tau, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach() / tau, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean(-1)  # batchmean, [...]
    if reduction == "classmean":
        kl = kl / student_logits.shape[-1]
    return tau**2 * kl


def skd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    lam: float,
    tau: float,
    reduction: str = "classmean",
) -> torch.Tensor:
    """Step-wise knowledge distillation (HSD Eq. 11 + 13):

        L = CE( (1/T)·Σ_t o_t , y ) + lam · (1/T) · Σ_t τ² · KL( softmax(z/τ) ‖ softmax(o_t/τ) ) / c

    with c = K for ``reduction="classmean"`` (the default, the authors' code) and c = 1 for
    ``"batchmean"``; the KL is summed over classes and averaged over the N samples.
    ``student_logits`` o: ``[T, N, K]``; ``teacher_logits`` z: ``[N, K]`` (the frozen ANN's
    logits averaged over the frames the student sees; detached); ``target`` y: ``[N]``.
    With T = 1 it equals ``kd_loss``.
    """
    _check_kd(student_logits, teacher_logits, target, lam, tau, reduction, "skd_loss")
    ce = F.cross_entropy(student_logits.mean(0), target.long())
    kl_per_step = _kl_teacher_student(teacher_logits, student_logits, tau, reduction)  # [T]
    return ce + lam * kl_per_step.mean()


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    lam: float,
    tau: float,
    reduction: str = "classmean",
) -> torch.Tensor:
    """Vanilla KD on the time-averaged student (Hinton et al. 2015; HSD Eq. 9/10):

        L = CE( ō , y ) + lam · τ² · KL( softmax(z/τ) ‖ softmax(ō/τ) ) / c,   ō = (1/T)·Σ_t o_t

    Same arguments (and the same c per ``reduction``) as ``skd_loss``, so SKD and KD differ only
    in where the KL is taken.
    """
    _check_kd(student_logits, teacher_logits, target, lam, tau, reduction, "kd_loss")
    mean_o = student_logits.mean(0)
    ce = F.cross_entropy(mean_o, target.long())
    return ce + lam * _kl_teacher_student(teacher_logits, mean_o, tau, reduction)
