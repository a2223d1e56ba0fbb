"""Guidance distillation (``foley train distill``): the student starts as its teacher's
conditional branch, learns the guided prediction, and the pipeline samples it with one denoiser
call per step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from foley.cli.main import main
from foley.errors import InputError
from foley.models.denoiser import FoleyDenoiser
from foley.pipelines.foley_pipeline import FoleyPipeline
from tests.media import counter_frames, prepared_footage
from tests.tiny import TINY_CONFIG, tiny_denoiser, tiny_pipeline
from training.distill import guided_target, make_student

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(batch: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    L, T = TINY_CONFIG.latents_per_clip, TINY_CONFIG.frames_per_clip
    return (
        torch.randn(batch, L, 8, generator=g),
        torch.rand(batch, generator=g) * 1000,
        torch.randn(batch, T, 12, generator=g),
        torch.randn(batch, L, 8, generator=g),
    )


def test_a_new_student_is_its_teachers_conditional_branch_at_every_guidance():
    torch.manual_seed(0)
    teacher = tiny_denoiser(TINY_CONFIG).eval()
    student = make_student(teacher).eval()
    assert student.config.guidance_embed and not teacher.config.guidance_embed
    x, t, video, cond = _inputs()
    with torch.no_grad():
        want = teacher(x, t, video, cond)
        for g in (None, 0.0, 1.0, 3.0, torch.tensor([0.5, 5.0, 8.0])):
            assert torch.allclose(student(x, t, video, cond, guidance=g), want, atol=1e-6)
        # once its guidance layers have weights, the scale changes the prediction
        student.guidance_embedding.linear_2.weight.normal_(0, 0.2)
        one, three = (
            student(x, t, video, cond, guidance=1.0),
            student(x, t, video, cond, guidance=3.0),
        )
        assert not torch.allclose(one, three, atol=1e-4)
        assert torch.equal(one, student(x, t, video, cond))  # None means 1
    with pytest.raises(InputError, match="already guidance-distilled"):
        make_student(student)


def test_guided_target_is_the_pipelines_guidance_mix():
    torch.manual_seed(0)
    teacher = tiny_denoiser(TINY_CONFIG).eval()
    x, t, video, cond = _inputs()
    keep = torch.tensor([True, False, True])
    g = torch.tensor([0.0, 3.0, 5.0])
    target = guided_target(teacher, x, t, video, cond, keep, None, g)
    with torch.no_grad():
        p_cond = teacher(x, t, video, cond, condition_keep=keep)
        p_uncond = teacher(x, t, video, cond, video_keep=torch.zeros(3, dtype=torch.bool),
                           condition_keep=keep)  # fmt: skip
    for i in range(3):
        want = p_uncond[i] + g[i] * (p_cond[i] - p_uncond[i])
        assert torch.allclose(target[i], want, atol=1e-5)
    assert torch.allclose(target[0], p_uncond[0], atol=1e-6)  # g = 0: the null video


def test_the_pipeline_runs_a_distilled_denoiser_once_per_step(tmp_path):
    teacher = tiny_pipeline(0)
    student = FoleyPipeline.from_pipe(teacher, denoiser=make_student(teacher.denoiser).eval())
    student.set_progress_bar_config(disable=True)
    frames = counter_frames(8, 32, 32)
    cond = np.random.default_rng(0).normal(0, 0.1, TINY_CONFIG.samples_per_clip).astype(np.float32)

    def calls(pipe, guidance: float) -> tuple[list[int], np.ndarray]:
        seen = []
        hook = pipe.denoiser.register_forward_pre_hook(
            lambda _m, args, kwargs: seen.append(
                (args[0].shape[0], kwargs["invariants"]["guidance"])
            ),
            with_kwargs=True,
        )
        try:
            audio = pipe(frames, condition_audio=cond, num_inference_steps=4,
                         guidance_scale=guidance, generator=torch.Generator().manual_seed(0),
                         sync_shaping=0).audios[0]  # fmt: skip
        finally:
            hook.remove()
        return seen, audio

    seen, _ = calls(teacher, 3.0)
    assert [b for b, _ in seen] == [2] * 4 and all(g is None for _, g in seen)  # two branches
    seen, _ = calls(student, 3.0)
    assert seen == [(1, 3.0)] * 4  # one call per step, the scale passed to the network
    # a new student is the teacher's conditional branch: at guidance 1 the same audio
    _, a = calls(teacher, 1.0)
    _, b = calls(student, 1.0)
    assert np.allclose(a, b, atol=1e-5)
    # outside its trained scales it mixes its own calls at 1 and 0 as the two branches
    student.denoiser.register_to_config(guidance_max=4.0)
    seen, _ = calls(student, 6.0)
    assert [b for b, _ in seen] == [2] * 4
    assert all(torch.equal(g, torch.tensor([1.0, 0.0])) for _, g in seen)
    # saved and loaded, it is still a distilled denoiser
    student.save_pretrained(tmp_path / "student")
    loaded = FoleyDenoiser.from_pretrained(tmp_path / "student" / "denoiser")
    assert loaded.config.guidance_embed and loaded.config.guidance_max == 4.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("distill")
    data = prepared_footage(root)
    tiny_pipeline().save_pretrained(root / "teacher")
    return {"root": root, "data": data, "teacher": root / "teacher"}


def _distill(setup, out: Path, steps: int) -> int:
    return main(["train", "distill", str(setup["data"]), "-o", str(out), "--teacher",
                 str(setup["teacher"]), "--steps", str(steps), "--batch-size", "4",
                 "--val-every", "10", "--lr", "0.003", "--ema-decay", "0.0", "--cpu"])  # fmt: skip


def test_distillation_learns_the_guided_prediction_and_resumes(setup, capsys):
    out = setup["root"] / "run"
    assert _distill(setup, out, 10) == 0
    assert _distill(setup, out, 40) == 0
    assert "resumed from" in capsys.readouterr().out
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in rows if "val_mse_start" in r)
    vals = [r for r in rows if "val_mse" in r]
    assert [r["step"] for r in vals] == [10, 20, 30, 40]
    # the val regression (noise, timesteps and guidance fixed by the seed) falls well below
    # the conditional branch's, at the shipped guidances too
    best = min(vals, key=lambda r: r["val_mse"])
    assert best["val_mse"] < 0.5 * start["val_mse_start"]
    assert best["val_mse_g3"] < start["val_mse_g3_start"]
    assert best["val_mse_g5"] < start["val_mse_g5_start"]
    pipe = FoleyPipeline.from_pretrained(out / "model")
    assert pipe.denoiser.config.guidance_embed
    audio = pipe(counter_frames(8, 32, 32), mode="no_condition", num_inference_steps=2).audios[0]
    assert np.isfinite(audio).all() and audio.size == TINY_CONFIG.samples_per_clip


def test_a_bad_guidance_range_is_one_line(setup, capsys):
    code = main(["train", "distill", str(setup["data"]), "-o", str(setup["root"] / "bad"),
                 "--teacher", str(setup["teacher"]), "--guidance-min", "5",
                 "--guidance-max", "2"])  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["foley train: error: --guidance-min must be >= 0 and below --guidance-max"]
    assert not (setup["root"] / "bad").exists()  # refused before anything is written


def test_the_shipped_student_is_refused_as_a_teacher_before_anything_is_written(setup, capsys):
    from foley.defaults import DEFAULT_MODEL_DIR

    out = setup["root"] / "from-default"
    code = main(["train", "distill", str(setup["data"]), "-o", str(out), "--teacher",
                 str(DEFAULT_MODEL_DIR)])  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already guidance-distilled" in err[0]
    assert not out.exists()


def test_the_objective_of_a_saved_scheduler_is_flow_for_every_flow_sampler():
    """The shipped DPM-Solver++ samples a flow-matching model: fine-tunes and distillation
    must noise its inputs as flow (it used to read as v-prediction)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from foley.defaults import DEFAULT_MODEL_DIR
    from foley.models.objectives import objective_of
    from foley.pipelines.solvers import flow_scheduler

    shipped = json.loads((DEFAULT_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())
    assert objective_of(shipped) == ("flow", 1.5)
    euler = FlowMatchEulerDiscreteScheduler(shift=2.0)
    assert objective_of(euler) == ("flow", 2.0)
    for solver in ("dpm", "unipc", "heun"):
        assert objective_of(flow_scheduler(euler, solver, 3.0)) == ("flow", 3.0)
    assert objective_of({"_class_name": "DPMSolverMultistepScheduler",
                         "prediction_type": "epsilon"}) == ("eps", 1.0)  # fmt: skip
    assert objective_of({"_class_name": "DPMSolverMultistepScheduler",
                         "prediction_type": "v_prediction"})[0] == "v"  # fmt: skip
