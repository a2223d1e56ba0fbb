"""Tiny real components shared by the tests (random weights, CPU-sized)."""

from __future__ import annotations

import torch

from foley.config import AVConfig
from foley.models.denoiser import FoleyDenoiser

# a CPU-sized MC3Model: MC3Model(**MC3_TINY)
MC3_TINY = dict(
    embed_dim=16,
    audio_channels=(4, 8),
    video_dim=8,
    video_channels=(4, 8),
    video_temporal_layers=1,
    video_frame_size=32,
    video_frame_stride=2,
)
# a CPU-sized AVSModel (TPAVI): AVSModel(**AVS_TINY)
AVS_TINY = dict(
    stage_channels=(8, 16),
    channels=8,
    aspp_dilations=(1, 2),
    audio_dim=8,
    audio_width=4,
    audio_window=16,
)


def tiny_denoiser(cfg: AVConfig, curve_dim: int = 0) -> FoleyDenoiser:
    """A 2-layer denoiser (latent 8, video 12) whose output depends on video and condition.

    The zero-initialised modulation and output layers (identity at init, as in DiT) are given
    small random weights, so that an untrained model still responds to its inputs.
    """
    denoiser = FoleyDenoiser(
        latent_dim=8,
        video_dim=12,
        hidden_dim=16,
        num_layers=2,
        num_heads=4,
        ff_mult=2,
        latents_per_frame=cfg.latents_per_frame,
        curve_dim=curve_dim,
    )
    with torch.no_grad():
        for name, p in denoiser.named_parameters():
            if "modulation" in name or "proj_out" in name or "curve_proj" in name:
                p.normal_(0, 0.2)
    return denoiser
