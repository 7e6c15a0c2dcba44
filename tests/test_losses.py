"""Losses: hand-computed values on fixed tensors, SKD(T=1) = KD, teacher gets no gradient."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hsd.losses import kd_loss, mean_ce, skd_loss

LN3 = math.log(3.0)
# student o_1 = [0, 0], o_2 = [ln 3, 0]; teacher z = [ln 3, 0] → p_t = [3/4, 1/4]; y = 0
STUDENT = torch.tensor([[[0.0, 0.0]], [[LN3, 0.0]]])
TEACHER = torch.tensor([[LN3, 0.0]])
Y = torch.tensor([0])
S3 = math.sqrt(3.0)
CE_MEAN = math.log(1 + S3) - math.log(S3)  # softmax(mean_t o_t) = [√3, 1]/(1 + √3)
KL_STEP1 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)  # KL(p_t ‖ [½, ½]); step 2: 0
KL_MEAN = 0.75 * math.log(0.75 * (1 + S3) / S3) + 0.25 * math.log(0.25 * (1 + S3))


def test_mean_ce_by_hand():
    # CE(o_1) = ln 2, CE(o_2) = −ln(3/4)
    expected = (math.log(2.0) - math.log(0.75)) / 2
    assert mean_ce(STUDENT, Y).item() == pytest.approx(expected, abs=1e-6)
    assert mean_ce(STUDENT[1], Y).item() == pytest.approx(-math.log(0.75), abs=1e-6)


def test_skd_and_kd_by_hand():
    # batchmean: the per-sample KL; classmean (default): that divided by K = 2
    for reduction, c in (("batchmean", 1.0), ("classmean", 2.0)):
        skd = skd_loss(STUDENT, TEACHER, Y, lam=1.0, tau=1.0, reduction=reduction).item()
        assert skd == pytest.approx(CE_MEAN + KL_STEP1 / 2 / c, abs=1e-6)
        kd = kd_loss(STUDENT, TEACHER, Y, lam=1.0, tau=1.0, reduction=reduction).item()
        assert kd == pytest.approx(CE_MEAN + KL_MEAN / c, abs=1e-6)
    assert skd_loss(STUDENT, TEACHER, Y, 1.0, 1.0).item() == pytest.approx(
        CE_MEAN + KL_STEP1 / 4, abs=1e-6
    )
    # lam = 0 leaves the CE of the time-averaged logits
    assert skd_loss(STUDENT, TEACHER, Y, 0.0, 2.0).item() == pytest.approx(CE_MEAN, abs=1e-6)


def test_skd_matches_torch_kl_div_batchmean_with_temperature():
    torch.manual_seed(0)
    o, z, y = torch.randn(3, 4, 5), torch.randn(4, 5), torch.randint(0, 5, (4,))
    tau, lam = 2.0, 0.7
    kl = [
        F.kl_div(F.log_softmax(o[t] / tau, -1), F.softmax(z / tau, -1), reduction="batchmean")
        for t in range(3)
    ]
    expected = F.cross_entropy(o.mean(0), y) + lam * tau**2 * torch.stack(kl).mean()
    got = skd_loss(o, z, y, lam, tau, reduction="batchmean")
    assert torch.allclose(got, expected, atol=1e-6)
    kl_mean = F.kl_div(
        F.log_softmax(o.mean(0) / tau, -1), F.softmax(z / tau, -1), reduction="batchmean"
    )
    expected_kd = F.cross_entropy(o.mean(0), y) + lam * tau**2 * kl_mean
    assert torch.allclose(kd_loss(o, z, y, lam, tau, "batchmean"), expected_kd, atol=1e-6)
    # mean_ce on [T, N, K] is the mean of the per-step CEs
    per_t = torch.stack([F.cross_entropy(o[t], y) for t in range(3)]).mean()
    assert torch.allclose(mean_ce(o, y), per_t, atol=1e-6)


def test_default_equals_the_authors_kldivloss_formula():
    # Their distillation_step_loss: CE(mean_t o_t, y) + 1 · (1/T) Σ_t nn.KLDivLoss()(
    #   log_softmax(o_t/τ), softmax(z/τ)) · τ²   (KLDivLoss' default reduction: mean over N·K)
    torch.manual_seed(3)
    T, N, K, tau = 4, 6, 7, 10.0
    o, z, y = torch.randn(T, N, K) * 3, torch.randn(N, K) * 3, torch.randint(0, K, (N,))
    with warnings.catch_warnings():  # torch warns that 'mean' is not the true KL: that is the point
        warnings.simplefilter("ignore")
        kl = [
            nn.KLDivLoss()(torch.log_softmax(o[t] / tau, 1), torch.softmax(z / tau, 1)) * tau**2
            for t in range(T)
        ]
    authors = F.cross_entropy(o.mean(0), y) + 1 * sum(kl) / T
    assert torch.allclose(skd_loss(o, z, y, 1.0, tau), authors, atol=1e-6)
    # vanilla KD: the same term on the time-averaged logits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kl_mean = nn.KLDivLoss()(torch.log_softmax(o.mean(0) / tau, 1), torch.softmax(z / tau, 1))
    authors_kd = F.cross_entropy(o.mean(0), y) + kl_mean * tau**2
    assert torch.allclose(kd_loss(o, z, y, 1.0, tau), authors_kd, atol=1e-6)
    # and batchmean is exactly K times that KL term
    ce = F.cross_entropy(o.mean(0), y)
    batchmean = skd_loss(o, z, y, 1.0, tau, reduction="batchmean") - ce
    assert torch.allclose(batchmean, K * (authors - ce), atol=1e-5)


def test_skd_with_one_step_equals_kd():
    torch.manual_seed(1)
    o, z, y = torch.randn(1, 6, 4), torch.randn(6, 4), torch.randint(0, 4, (6,))
    assert torch.allclose(skd_loss(o, z, y, 1.3, 2.0), kd_loss(o, z, y, 1.3, 2.0), atol=1e-7)
    # and they differ once T > 1 with different steps
    o2 = torch.randn(3, 6, 4)
    assert not torch.allclose(skd_loss(o2, z, y, 1.0, 2.0), kd_loss(o2, z, y, 1.0, 2.0))


@pytest.mark.parametrize("loss", [skd_loss, kd_loss])
def test_teacher_gets_no_gradient_student_does(loss):
    torch.manual_seed(2)
    o = torch.randn(3, 4, 5, requires_grad=True)
    z = torch.randn(4, 5, requires_grad=True)
    loss(o, z, torch.randint(0, 5, (4,)), 1.0, 2.0).backward()
    assert z.grad is None
    assert o.grad is not None and o.grad.abs().sum() > 0


def test_shape_errors_are_clear():
    o, z, y = torch.randn(3, 4, 5), torch.randn(4, 5), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"student logits must be \[T, N, K\]"):
        skd_loss(o[0], z, y, 1.0, 2.0)
    with pytest.raises(ValueError, match="average a"):
        kd_loss(o, o, y, 1.0, 2.0)
    with pytest.raises(ValueError, match=r"target must be \[N=4\]"):
        skd_loss(o, z, y[:3], 1.0, 2.0)
    with pytest.raises(ValueError, match="integer class indices"):
        mean_ce(o, y.float())
    with pytest.raises(ValueError, match="tau must be > 0"):
        skd_loss(o, z, y, 1.0, 0.0)
    with pytest.raises(ValueError, match="KL reduction 'sum' unknown; valid: classmean, batchmean"):
        kd_loss(o, z, y, 1.0, 2.0, reduction="sum")
    with pytest.raises(ValueError, match=r"\[N, K\] or \[T, N, K\]"):
        mean_ce(torch.randn(5), y)
