"""How the optimisers apply weight decay (`hsd.engine.make_optimizer`, `RunConfig.adam_decay`)."""

import pytest
import torch

from hsd.config import ConfigError, RunConfig, validate
from hsd.engine import make_optimizer
from hsd.method import resolve


def _steps(opt, params, grads, n):
    for _ in range(n):
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()


def test_decoupled_decay_shrinks_a_weight_without_gradient_by_the_exact_factor():
    w = torch.nn.Parameter(torch.full((4,), 0.05))
    opt = make_optimizer("adam", [w], lr=3e-3, weight_decay=1e-2, adam_decay="decoupled")
    _steps(opt, [w], [torch.zeros(4)], 10)
    torch.testing.assert_close(w.detach(), torch.full((4,), 0.05 * (1 - 3e-3 * 1e-2) ** 10))


def test_coupled_decay_moves_a_weight_without_gradient_by_about_lr_per_step():
    # The decay term alone is what Adam normalises: 10 steps of about lr each, whatever its size
    # (here 1e-6 x 0.05 against Adam's eps of 1e-8: each step moves 0.7-0.83 lr).
    w = torch.nn.Parameter(torch.full((4,), 0.05))
    opt = make_optimizer("adam", [w], lr=3e-3, weight_decay=1e-6, adam_decay="coupled")
    _steps(opt, [w], [torch.zeros(4)], 10)
    assert (0.05 - w.detach()).min() > 10 * 3e-3 * 0.7


@pytest.mark.parametrize("adam_decay", ["decoupled", "coupled"])
def test_without_weight_decay_both_forms_are_plain_adam(adam_decay):
    torch.manual_seed(0)
    grads = [torch.randn(3, 2) for _ in range(5)]
    a = torch.nn.Parameter(torch.ones(3, 2))
    b = torch.nn.Parameter(torch.ones(3, 2))
    ours = make_optimizer("adam", [a], lr=1e-2, weight_decay=0.0, adam_decay=adam_decay)
    plain = torch.optim.Adam([b], lr=1e-2)
    for g in grads:
        _steps(ours, [a], [g], 1)
        _steps(plain, [b], [g], 1)
    assert torch.equal(a.detach(), b.detach())


def test_unknown_adam_decay_is_refused_by_config_and_optimizer():
    with pytest.raises(ConfigError, match="unknown adam_decay 'l2'; valid: decoupled, coupled"):
        validate(RunConfig(method="tet", dataset="n-digits", T=2, frames=2, adam_decay="l2"))
    with pytest.raises(ValueError, match="unknown adam_decay"):
        make_optimizer("adam", [torch.nn.Parameter(torch.ones(1))], 1e-3, 0.0, adam_decay="l2")


def test_every_method_resolves_to_decoupled_adam_decay():
    cfg = resolve(RunConfig(method="tcja", dataset="sim-gestures", T=5))
    assert cfg.adam_decay == "decoupled"


def test_the_default_adam_decay_keeps_run_ids_and_coupled_gets_its_own():
    cfg = resolve(RunConfig(method="tet", dataset="n-digits", T=3))
    unset = cfg.replace(adam_decay=None)
    assert cfg.run_id() == unset.run_id()
    assert cfg.replace(adam_decay="coupled").run_id() != cfg.run_id()
