"""Few-step samplers for a flow-matching denoiser: the same trained model, other ODE solvers.

The denoiser predicts the velocity ``noise - x0`` at ``x_s = (1 - s) x0 + s noise``, timestep
``1000 s`` (:mod:`foley.models.objectives`). Sampling integrates ``dx/ds = v`` from ``s = 1``
(noise) to ``s = 0``; diffusers' schedulers are the integrators:

* ``euler``: ``FlowMatchEulerDiscreteScheduler`` (what a pipeline folder ships); one model
  evaluation (NFE) per step; its schedule ``linspace(1, 0.001, steps)`` ends with a step from
  ``s = 0.001`` to 0 that does almost nothing;
* ``heun``: ``FlowMatchHeunDiscreteScheduler``, second order, two evaluations per step except
  the last (``2 * steps - 1`` NFE);
* ``dpm``: ``DPMSolverMultistepScheduler`` (DPM-Solver++ 2M) in its flow mode
  (``use_flow_sigmas``, ``prediction_type="flow_prediction"``): second order from the previous
  step's prediction, one evaluation per step;
* ``unipc``: ``UniPCMultistepScheduler`` (bh2, order 2) in the same flow mode, one per step.

``shift`` warps the schedule, ``s -> shift s / (1 + (shift - 1) s)`` (SD3's time shift; > 1
spends more steps at high noise). :func:`sample` is the one sampler loop: the pipeline runs it
with the denoiser under classifier-free guidance, the tests with a known velocity field.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from foley.errors import InputError

if TYPE_CHECKING:  # torch and diffusers load when a sampler is built, not with the CLI
    import torch
    from diffusers import SchedulerMixin

SOLVERS = ("euler", "heun", "dpm", "unipc")

# velocity(latents (n, L, C), timestep) -> predicted velocity (n, L, C)
Velocity = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def solver_name(scheduler: SchedulerMixin) -> str | None:
    """The :data:`SOLVERS` name of a flow-matching scheduler, None for any other scheduler."""
    from diffusers import (
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        FlowMatchHeunDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
        return "euler"
    if isinstance(scheduler, FlowMatchHeunDiscreteScheduler):
        return "heun"
    if getattr(scheduler.config, "use_flow_sigmas", False):
        if isinstance(scheduler, DPMSolverMultistepScheduler):
            return "dpm"
        if isinstance(scheduler, UniPCMultistepScheduler):
            return "unipc"
    return None


def _shift_of(scheduler: SchedulerMixin) -> float:
    config = scheduler.config
    return float(config.get("shift", config.get("flow_shift", 1.0)))


def check_solver(solver: str | None, shift: float | None) -> None:
    """One-line :class:`InputError` for an unknown solver or a shift that is not > 0."""
    if solver is not None and solver not in SOLVERS:
        raise InputError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    if shift is not None and not (math.isfinite(float(shift)) and float(shift) > 0):
        raise InputError(f"shift must be a number > 0, got {shift}")


def flow_scheduler(
    base: SchedulerMixin, solver: str | None = None, shift: float | None = None
) -> SchedulerMixin:
    """A new scheduler integrating the same flow as ``base`` (a pipeline's saved scheduler).

    solver: one of :data:`SOLVERS` (None: ``base``'s own kind); shift: the schedule's time
    shift (None: ``base``'s). ``base`` must be a flow-matching scheduler: a model trained with
    another objective (``v``, ``eps``) raises a one-line :class:`InputError`.
    """
    from diffusers import (
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        FlowMatchHeunDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    check_solver(solver, shift)
    own = solver_name(base)
    if own is None:
        raise InputError(
            f"solvers and shifts apply to flow-matching models; this pipeline's scheduler is "
            f"{type(base).__name__}: leave solver and shift unset"
        )
    solver = solver or own
    shift = _shift_of(base) if shift is None else float(shift)
    steps = int(base.config.num_train_timesteps)
    if solver == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=steps, shift=shift)
    if solver == "heun":
        return FlowMatchHeunDiscreteScheduler(num_train_timesteps=steps, shift=shift)
    multistep = {"dpm": DPMSolverMultistepScheduler, "unipc": UniPCMultistepScheduler}[solver]
    return multistep(
        num_train_timesteps=steps,
        solver_order=2,  # diffusers' advice for guided sampling
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=shift,
    )


def set_timesteps(scheduler: SchedulerMixin, num_inference_steps: int, device=None) -> None:
    """``scheduler.set_timesteps``; the multistep schedulers' flow timesteps are made exact.

    diffusers casts their flow timesteps to int64 (``floor(1000 s)``); the denoiser was trained
    at ``1000 s`` exactly, so they become ``1000 * sigmas`` (float) again.
    """
    scheduler.set_timesteps(int(num_inference_steps), device=device)
    if getattr(scheduler.config, "use_flow_sigmas", False):
        scale = float(scheduler.config.num_train_timesteps)
        scheduler.timesteps = (scheduler.sigmas[:-1] * scale).to(device=device)


def model_evaluations(scheduler: SchedulerMixin, num_inference_steps: int) -> int:
    """Denoiser calls (NFE) of ``num_inference_steps`` steps with this scheduler's kind (a
    guided call is one call on a doubled batch); the scheduler itself is left untouched."""
    probe = type(scheduler).from_config(scheduler.config)
    set_timesteps(probe, num_inference_steps)
    return len(probe.timesteps)


def sample(
    scheduler: SchedulerMixin,
    velocity: Velocity,
    latents: torch.Tensor,
    num_inference_steps: int,
    *,
    generator: torch.Generator | None = None,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Integrate from noise ``latents`` (n, L, C) to s = 0 and return (n, L, C).

    ``velocity(x, t)`` is called once per entry of ``scheduler.timesteps`` (NFE times), and
    ``on_step`` after each call (a progress bar's ``update``).
    """
    set_timesteps(scheduler, num_inference_steps, device=latents.device)
    latents = latents * getattr(scheduler, "init_noise_sigma", 1.0)
    step_kwargs = {}
    if "generator" in inspect.signature(scheduler.step).parameters:
        step_kwargs["generator"] = generator
    for t in scheduler.timesteps:
        model_in = latents
        if hasattr(scheduler, "scale_model_input"):
            model_in = scheduler.scale_model_input(model_in, t)
        latents = scheduler.step(velocity(model_in, t), t, latents, **step_kwargs).prev_sample
        if on_step is not None:
            on_step()
    return latents
