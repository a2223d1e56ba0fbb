"""`foley train all`: every stage of the recipe runs end to end (tiny preset) and resumes."""

from __future__ import annotations

import json

import numpy as np

from foley.cli.main import main as foley_main


def test_tiny_recipe_runs_every_stage_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert foley_main(["train", "all", "--preset", "tiny", "--out", str(out)]) == 0
    state = json.loads((out / "recipe.json").read_text())
    stages = ["data", "codec", "mc3", "avs", "features", "sync", "denoiser", "distill",
              "assemble", "eval"]  # fmt: skip
    assert list(state["stages"]) == stages
    assert all(s["seconds"] >= 0 for s in state["stages"].values())

    pipeline = out / "pipeline"
    for part in ("codec", "video_encoder", "denoiser", "scheduler", "retriever", "avs", "sync"):
        assert (pipeline / part).is_dir(), part
    card = (pipeline / "MODEL_CARD.md").read_text()
    assert "foley eval, split test" in card and "| model_ambient_joint |" in card
    # the denoiser alone beside the pipeline, from the same denoising: the _unshaped rows
    assert "| model_ambient_joint_unshaped |" in card
    report = json.loads((out / "eval" / "test" / "report.json").read_text())
    assert report["settings"]["sync_shaping"] == 1.0
    assert not (out / "eval" / "test_unshaped").exists()
    assert "Denoiser objective: `flow`" in card

    from foley.pipelines.foley_pipeline import FoleyPipeline

    pipe = FoleyPipeline.from_pretrained(pipeline)
    from foley.models.sync import SyncModel

    # --denoiser-video mc3 (default): MC3's video tower feeds the denoiser, sync/ the shaping
    assert isinstance(pipe.sync, SyncModel) and not isinstance(pipe.video_encoder, SyncModel)
    # the preset distils guidance: the shipped denoiser is the student, named in the card
    assert pipe.denoiser.config.guidance_embed
    assert "guidance-distilled" in card
    clips = sorted(p.name for p in (pipeline / "retriever" / "clips").iterdir())
    tracks = [c for c in clips if c.endswith(".action.ogg")]
    assert pipe.index is not None and len(pipe.index) == len(clips) - len(tracks)
    # FoleyWorld clips ship their action-only track: action-focused conditions on it
    assert len(tracks) == len(pipe.index)
    silence = np.zeros(pipe.av_config.samples_per_clip, np.float32)
    hit = pipe.retriever.retrieve(audio=[silence], mode="action_focused", cfg=pipe.av_config)[0]
    assert hit.track == "action"
    # action-focused loudness: calibrated on the recipe's FoleyWorld action tracks
    from foley.pipelines.level import action_level_of

    assert pipe.config.action_level_db == action_level_of(out / "data", "train")
    assert pipe.default_guidance_scale("action_focused") == 4.0  # the preset's, saved
    assert pipe.default_guidance_scale("ambient_joint") == 3.0
    # the preset's sampling defaults are saved with the pipeline and named in the model card
    from foley.pipelines.solvers import solver_name

    assert solver_name(pipe.scheduler) == "unipc" and pipe.default_num_inference_steps == 2
    assert "2 steps by default" in card and "Sync shaping is on by default (factor 1)" in card
    assert report["settings"]["num_inference_steps"] == 2  # the eval used the model's default

    # a second run finds every stage done and only rewrites the model card
    capsys.readouterr()
    assert foley_main(["train", "all", "--preset", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped") == len(stages)


def test_recipe_takes_a_trained_codec(tmp_path):
    """--codec DIR: the codec stage copies that codec (weights identical), the card says so."""
    import argparse

    import torch

    from foley.models.codec import FoleyCodec
    from training.recipe import Recipe, add_arguments

    torch.manual_seed(0)
    given = FoleyCodec(latent_dim=8, n_filters=4, lstm_layers=1)
    given.save_pretrained(tmp_path / "mycodec")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "run"), "--preset", "tiny", "--codec",
                              str(tmp_path / "mycodec"), "--data", str(tmp_path)])  # fmt: skip
    recipe = Recipe(args)
    recipe.stage("codec", lambda: recipe.copy_codec(args.codec))
    copied = FoleyCodec.from_pretrained(tmp_path / "run" / "codec" / "model")
    for (k, a), b in zip(given.state_dict().items(), copied.state_dict().values()):
        assert torch.equal(a, b), k


def test_store_half_halves_the_weights_and_loads_back_as_float32(tmp_path):
    """The shipped weights are stored as float16 (large tensors only) to fit the size limit;
    the pipeline loads them back as float32 and generates nearly the same audio."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    from foley.config import AVConfig
    from foley.pipelines.foley_pipeline import FoleyPipeline
    from tests.tiny import tiny_pipeline
    from training.recipe import HALF_MIN_ELEMENTS, store_half

    cfg = AVConfig(clip_seconds=2.0)
    torch.manual_seed(0)
    pipe = tiny_pipeline(cfg=cfg)
    pipe.save_pretrained(tmp_path / "p")
    weights = tmp_path / "p" / "denoiser" / "diffusion_pytorch_model.safetensors"
    before = weights.stat().st_size
    assert store_half(tmp_path / "p") > 0 and weights.stat().st_size < before
    stored = load_file(weights)
    assert {v.dtype for k, v in stored.items() if v.numel() >= HALF_MIN_ELEMENTS} == {torch.float16}
    assert all(v.dtype == torch.float32 for v in stored.values() if v.numel() < HALF_MIN_ELEMENTS)
    half = FoleyPipeline.from_pretrained(tmp_path / "p")
    assert all(p.dtype == torch.float32 for p in half.denoiser.parameters())
    assert all(p.dtype == torch.float32 for p in half.codec.parameters())
    video = np.random.default_rng(0).integers(0, 255, (32, 112, 112, 3), dtype=np.uint8)

    def run(p):
        p.set_progress_bar_config(disable=True)
        out = p(video, mode="no_condition", num_inference_steps=2,
                generator=torch.Generator().manual_seed(0))  # fmt: skip
        return out.audios[0]

    full, rounded = run(pipe), run(half)
    assert not np.array_equal(full, rounded)  # the rounding is real...
    err = np.sqrt(np.mean((full - rounded) ** 2)) / np.sqrt(np.mean(full**2))
    assert err < 0.02  # ...and small: under 2 % of the signal's RMS
