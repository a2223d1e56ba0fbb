"""Few-step solvers (foley.pipelines.solvers): exact on a known flow, finite on a tiny pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

from foley.config import AVConfig
from foley.errors import InputError
from foley.pipelines.solvers import (
    SOLVERS,
    flow_scheduler,
    model_evaluations,
    sample,
    solver_name,
)
from tests.tiny import tiny_pipeline

CFG = AVConfig(clip_seconds=1.0, fps=8.0, frame_size=32)
MEAN, STD = 0.5, 1.0  # the data distribution x0 ~ N(MEAN, STD^2) per coordinate


def gaussian_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The exact flow-matching velocity E[noise - x0 | x_s] for x0 ~ N(MEAN, STD^2), at
    x_s = (1 - s) x0 + s noise, s = t / 1000: a curved field (Euler is not exact on it)."""
    s = t.float() / 1000
    var = (1 - s) ** 2 * STD**2 + s**2  # Var[x_s]
    r = x - (1 - s) * MEAN
    x0 = MEAN + (1 - s) * STD**2 / var * r
    noise = s / var * r
    return noise - x0


def solve_error(solver: str, steps: int) -> tuple[float, int]:
    """Max error of the solved flow against its exact end point, and the NFE it took.

    The exact ODE maps noise z to MEAN + STD z (the flow between two Gaussians is affine)."""
    noise = torch.randn(32, 6, 4, generator=torch.Generator().manual_seed(0))
    calls = []

    def velocity(x, t):
        calls.append(float(t))
        return gaussian_velocity(x, t)

    sched = flow_scheduler(FlowMatchEulerDiscreteScheduler(), solver)
    out = sample(sched, velocity, noise.clone(), steps)
    assert len(calls) == model_evaluations(sched, steps)
    return float((out - (MEAN + STD * noise)).abs().max()), len(calls)


def test_higher_order_solvers_reach_the_exact_flow_end_in_few_evaluations():
    euler, nfe = solve_error("euler", 8)
    assert nfe == 8
    for solver in ("dpm", "unipc"):
        err, nfe = solve_error(solver, 8)
        assert nfe == 8
        assert err < 0.1 and err < euler / 5, (solver, err, euler)  # measured ~0.03-0.09 vs 0.69
    heun, nfe = solve_error("heun", 4)
    assert nfe == 7  # two calls per step, one in the last
    assert heun < 0.15 and heun < euler / 5
    for solver in SOLVERS:  # every solver converges with more steps
        assert solve_error(solver, 25)[0] < solve_error(solver, 4)[0] / 2, solver


def test_multistep_timesteps_are_the_exact_sigmas():
    sched = flow_scheduler(FlowMatchEulerDiscreteScheduler(), "unipc", shift=3.0)
    seen = []
    sample(
        sched, lambda x, t: (seen.append(float(t)), torch.zeros_like(x))[1], torch.ones(1, 2, 2), 4
    )
    sigmas = np.array(seen) / 1000
    s = np.linspace(1, 1 / 1000, 5)[:-1]
    np.testing.assert_allclose(sigmas, 3 * s / (1 + 2 * s), atol=2e-6)  # shifted, not floored


def test_solver_names_shift_and_errors():
    base = FlowMatchEulerDiscreteScheduler(shift=2.0)
    for solver in SOLVERS:
        sched = flow_scheduler(base, solver)
        assert solver_name(sched) == solver
        assert sched.config.get("shift", sched.config.get("flow_shift")) == 2.0
    assert flow_scheduler(base, "dpm", shift=0.5).config.flow_shift == 0.5
    assert solver_name(flow_scheduler(base)) == "euler"
    with pytest.raises(InputError, match="solver must be one of"):
        flow_scheduler(base, "rk4")
    with pytest.raises(InputError, match="shift must be"):
        flow_scheduler(base, "dpm", shift=0.0)
    with pytest.raises(InputError, match="flow-matching"):
        flow_scheduler(DPMSolverMultistepScheduler(prediction_type="v_prediction"), "unipc")


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(0, cfg=CFG, codec_stats="measured", codec_gain=1.6)


def test_every_solver_gives_finite_audio_on_a_tiny_pipeline(pipe):
    frames = np.random.default_rng(0).integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    calls = []
    hook = pipe.denoiser.register_forward_hook(lambda *_: calls.append(1))
    try:
        for solver in SOLVERS:
            for steps in (2, 4, 8):
                calls.clear()
                out = pipe(
                    frames,
                    mode="no_condition",
                    num_inference_steps=steps,
                    generator=torch.Generator().manual_seed(0),
                    solver=solver,
                )
                audio = out.audios[0]
                assert audio.shape == (round(12 * CFG.samples_per_frame),)
                assert np.isfinite(audio).all() and np.abs(audio).max() > 0
                assert len(calls) == (2 * steps - 1 if solver == "heun" else steps)
    finally:
        hook.remove()


def test_default_is_the_saved_scheduler_and_bad_solver_is_one_line(pipe):
    frames = np.random.default_rng(1).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)

    def run(**kw):
        g = torch.Generator().manual_seed(3)
        return pipe(frames, mode="no_condition", num_inference_steps=3, generator=g, **kw)

    default = run().audios[0]
    np.testing.assert_array_equal(run(solver="euler").audios[0], default)
    assert not np.allclose(run(solver="unipc").audios[0], default)
    assert not np.allclose(run(shift=3.0).audios[0], default)
    with pytest.raises(InputError, match="solver must be one of"):
        run(solver="rk4")
    with pytest.raises(InputError, match="shift must be"):
        run(shift=-1.0)


def test_cli_generate_solver(pipe, tmp_path, capsys):
    from foley.cli.main import main
    from foley.io import load_audio, write_video

    pipe.save_pretrained(tmp_path / "model")
    frames = np.random.default_rng(2).integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "in.mp4", frames, fps=8.0)
    common = ["generate", str(tmp_path / "in.mp4"), "--model", str(tmp_path / "model")]
    common += ["--mode", "no_condition", "--steps", "2", "--quiet"]
    wav = tmp_path / "out.wav"
    assert main(common + ["-o", str(tmp_path / "o.mp4"), "--wav", str(wav), "--solver", "dpm"]) == 0
    assert np.isfinite(load_audio(wav)).all()
    capsys.readouterr()
    assert main(common + ["-o", str(tmp_path / "x.mp4"), "--shift", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shift must be" in err[0] and not (tmp_path / "x.mp4").exists()
