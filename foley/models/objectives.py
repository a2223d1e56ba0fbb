"""Training targets of the denoiser and the sampler that matches each (MMAudio's
``flow_matching.py`` idea: the target and its sampler together, apart from the network).

Objectives:

* ``flow``: rectified flow, x_t = (1 - s) x0 + s noise with s logit-normal (SD3), target
  noise - x0, timestep s * 1000; sampled with diffusers' ``FlowMatchEulerDiscreteScheduler``.
* ``v`` / ``eps``: DDPM (cosine betas, 1000 steps) v- or epsilon-prediction; sampled with
  DPM-Solver++.

Trainers and benchmarks import these; nothing here knows the denoiser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

OBJECTIVES = ("flow", "v", "eps")
NUM_TRAIN_TIMESTEPS = 1000
BETA_SCHEDULE = "squaredcos_cap_v2"


@dataclass
class Objective:
    """One training objective: ``noisy_target(x0)`` for training, ``sampler()`` for inference."""

    name: str = "flow"
    flow_shift: float = 1.0  # FlowMatchEuler's timestep shift (1: none)
    _ddpm: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {self.name!r}")
        if self.name != "flow":
            from diffusers import DDPMScheduler

            self._ddpm = DDPMScheduler(
                num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule=BETA_SCHEDULE
            )

    def noisy_target(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x0 (batch, L, C) -> (noisy latents, timesteps (batch,) in [0, 1000], target)."""
        noise = torch.randn_like(x0)
        b = x0.shape[0]
        if self.name == "flow":
            sigma = torch.sigmoid(torch.randn(b, device=x0.device))  # logit-normal (SD3)
            s = sigma.view(b, 1, 1)
            return (1 - s) * x0 + s * noise, sigma * float(NUM_TRAIN_TIMESTEPS), noise - x0
        ddpm = self._ddpm
        t = torch.randint(0, ddpm.config.num_train_timesteps, (b,), device=x0.device)
        noisy = ddpm.add_noise(x0, noise, t)
        target = noise if self.name == "eps" else ddpm.get_velocity(x0, noise, t)
        return noisy, t.float(), target

    def sampler(self):
        """A new inference scheduler matching this objective (a pipeline's ``scheduler``)."""
        from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

        if self.name == "flow":
            return FlowMatchEulerDiscreteScheduler(
                num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=self.flow_shift
            )
        prediction = "epsilon" if self.name == "eps" else "v_prediction"
        return DPMSolverMultistepScheduler(
            num_train_timesteps=NUM_TRAIN_TIMESTEPS,
            beta_schedule=BETA_SCHEDULE,
            prediction_type=prediction,
        )
