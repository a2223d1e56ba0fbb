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

    def noisy_target(
        self, x0: torch.Tensor, *, uniform: bool = False, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x0 (batch, L, C) -> (noisy latents, timesteps (batch,) in [0, 1000], target).

        uniform: flow's noise level uniform over (0, 1) instead of logit-normal (DDPM timesteps
        are uniform either way); generator: a CPU generator for noise and levels (fixed draws).
        """
        b, device = x0.shape[0], x0.device
        if generator is None:
            noise = torch.randn_like(x0)
        else:
            noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)
        if self.name == "flow":
            if uniform:
                sigma = torch.rand(b, generator=generator).to(device)
            else:  # logit-normal (SD3)
                sigma = torch.sigmoid(torch.randn(b, generator=generator).to(device))
            s = sigma.view(b, 1, 1)
            return (1 - s) * x0 + s * noise, sigma * float(NUM_TRAIN_TIMESTEPS), noise - x0
        ddpm = self._ddpm
        t = torch.randint(0, ddpm.config.num_train_timesteps, (b,), generator=generator)
        t = t.to(device)
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


def objective_of(scheduler) -> tuple[str, float]:
    """(objective, flow shift) of a scheduler, or of a saved pipeline's scheduler config (a
    mapping with ``_class_name``): ``flow`` for every flow-matching sampler (FlowMatch*
    schedulers, and DPM-Solver++ / UniPC with flow sigmas, as ``foley.pipelines.solvers`` makes
    them), else ``eps`` or ``v`` by its prediction type."""
    if hasattr(scheduler, "config"):
        config = {**scheduler.config, "_class_name": type(scheduler).__name__}
    else:
        config = dict(scheduler)
    if (
        str(config.get("_class_name", "")).startswith("FlowMatch")
        or config.get("use_flow_sigmas")
        or config.get("prediction_type") == "flow_prediction"
    ):
        return "flow", float(config.get("shift", config.get("flow_shift", 1.0)))
    return ("eps" if config.get("prediction_type") == "epsilon" else "v"), 1.0
