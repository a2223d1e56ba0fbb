"""benchmarks/generate_speed.py: the per-part timers and the codec swap, on tiny pipelines."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.generate_speed import breakdown_timers, build_pipeline
from foley.models.codec import FoleyCodec
from foley.models.sync import SyncModel
from tests.tiny import TINY_CONFIG, tiny_codec, tiny_pipeline

STEPS = 2


def _sync_pipeline():
    torch.manual_seed(3)
    sync = SyncModel(
        dim=12, channels=(4, 8), input_size=32, latents_per_frame=TINY_CONFIG.latents_per_frame
    )
    return tiny_pipeline(0, sync=sync)


def _generate(pipe, frames, condition):
    return pipe(
        frames,
        condition_audio=condition,
        num_inference_steps=STEPS,
        solver="euler",
        generator=torch.Generator().manual_seed(0),
    ).audios[0]


def test_breakdown_times_every_part_and_leaves_the_output_unchanged():
    pipe = _sync_pipeline()
    cfg = pipe.av_config
    rng = np.random.default_rng(0)
    # 2.5 clips of frames: three windows, two seams
    frames = rng.integers(0, 255, (int(2.5 * cfg.frames_per_clip), 32, 32, 3), dtype=np.uint8)
    condition = rng.normal(0, 0.1, cfg.samples_per_clip).astype(np.float32)
    before = _generate(pipe, frames, condition)
    with breakdown_timers(pipe) as timers:
        timed = _generate(pipe, frames, condition)
    after = _generate(pipe, frames, condition)
    np.testing.assert_array_equal(before, timed)
    np.testing.assert_array_equal(before, after)
    assert timers.calls["  denoiser calls (2x batch if guided)"] == STEPS  # euler: one per step
    for part in (
        "frame preparation",
        "condition: codec encode",
        "video encoder (+ sync curves)",
        "sampler loop (total)",
        "codec decode",
        "windows + crossfade",
    ):
        assert timers.calls[part] == 1, part
        assert timers.wall[part] >= 0 and timers.cpu[part] >= 0
    assert timers.calls["sync shaping"] == 3  # once per window
    assert "retrieval (total)" not in timers.calls  # a given condition retrieves nothing
    # the wrappers are gone: no instance attribute shadows a method any more
    assert "forward" not in vars(pipe.denoiser) and "_denoise" not in vars(pipe)


def test_codec_swap_rebuilds_the_denoiser_at_the_new_latent_dim(tmp_path):
    pipe = tiny_pipeline(0)
    pipe.save_pretrained(tmp_path / "model")
    wide = FoleyCodec(**{**dict(tiny_codec().config), "latent_dim": 12})
    wide.save_pretrained(tmp_path / "codec")
    swapped = build_pipeline(str(tmp_path / "model"), str(tmp_path / "codec"))
    assert swapped.codec.config.latent_dim == swapped.denoiser.config.latent_dim == 12
    keep = ("hidden_dim", "num_layers", "video_dim", "patch_size", "curve_dim")
    assert all(swapped.denoiser.config[k] == pipe.denoiser.config[k] for k in keep)
    same = build_pipeline(str(tmp_path / "model"), str(tmp_path / "model" / "codec"))
    assert same.denoiser.config.latent_dim == pipe.denoiser.config.latent_dim
    for a, b in zip(same.denoiser.parameters(), pipe.denoiser.parameters()):
        assert torch.equal(a, b)  # a codec of the same latent_dim keeps the trained denoiser
