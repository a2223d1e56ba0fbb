"""foley.models.objectives: each target lets x0 be recovered from (noisy, t, target), and each
objective's sampler is the scheduler that interprets that target."""

from __future__ import annotations

import pytest
import torch

from foley.models.objectives import OBJECTIVES, Objective


def _x0() -> torch.Tensor:
    return torch.randn(6, 10, 4, generator=torch.Generator().manual_seed(0))  # (batch, L, C)


def test_flow_target_recovers_x0_and_samples_with_flow_matching():
    torch.manual_seed(1)
    x0 = _x0()
    noisy, t, target = Objective("flow").noisy_target(x0)
    s = (t / 1000).view(-1, 1, 1)
    assert torch.allclose(noisy - s * target, x0, atol=1e-5)
    assert ((t > 0) & (t < 1000)).all()
    sampler = Objective("flow", flow_shift=3.0).sampler()
    assert type(sampler).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert sampler.config.shift == 3.0


@pytest.mark.parametrize("name", ["v", "eps"])
def test_ddpm_targets_recover_x0_and_match_the_sampler(name):
    torch.manual_seed(2)
    x0 = _x0()
    objective = Objective(name)
    noisy, t, target = objective.noisy_target(x0)
    alpha_bar = objective._ddpm.alphas_cumprod[t.long()].view(-1, 1, 1)
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    x0_hat = a * noisy - s * target if name == "v" else (noisy - s * target) / a
    keep = alpha_bar.view(-1) > 1e-3  # eps at t ~ 1000 divides by ~0
    assert torch.allclose(x0_hat[keep], x0[keep], atol=1e-3)
    expected = "v_prediction" if name == "v" else "epsilon"
    assert objective.sampler().config.prediction_type == expected


def test_unknown_objective_is_one_line():
    with pytest.raises(ValueError, match="objective must be one of"):
        Objective("x0")
    assert OBJECTIVES == ("flow", "v", "eps")
