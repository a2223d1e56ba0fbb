"""Tiny real components shared by the tests (random weights, CPU-sized)."""

from __future__ import annotations

import torch

from foley.config import AVConfig
from foley.models.codec import FoleyCodec
from foley.models.denoiser import FoleyDenoiser
from foley.models.mc3 import MC3Model
from foley.models.video_encoder import VideoEncoder
from foley.pipelines.foley_pipeline import FoleyPipeline
from foley.retrieval import ClipRetriever

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

# a CPU-sized DenseAVModel (two heads, the trainer's recipe): DenseAVModel(**DENSEAV_TINY)
DENSEAV_TINY = dict(
    dim=8,
    heads=2,
    visual_channels=(8, 16),
    audio_channels=(8, 16),
    input_size=32,
    normalize=True,
    audio_encoder="conv1d",
)


def tiny_denoiser(cfg: AVConfig, curve_dim: int = 0, video_dim: int = 12) -> FoleyDenoiser:
    """A 2-layer denoiser (latent 8, video ``video_dim``) that depends on video and condition.

    The zero-initialised modulation and output layers (identity at init, as in DiT) are given
    small random weights, so that an untrained model still responds to its inputs.
    """
    denoiser = FoleyDenoiser(
        latent_dim=8,
        video_dim=video_dim,
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


# the small time contract of the tiny pipelines: 1 s clips, 8 fps, 32 x 32 frames
TINY_CONFIG = AVConfig(clip_seconds=1.0, fps=8.0, frame_size=32)


def tiny_codec(
    cfg: AVConfig = TINY_CONFIG, seed: int = 0, stats: str = "none", gain: float = 1.0
) -> FoleyCodec:
    """A FoleyCodec (latent 8, 4 filters, no LSTM).

    stats: ``"none"`` (identity latent scaling), ``"measured"`` (mean and std of the latents of
    seeded noise: unit-scale latents, as a trained codec gives them) or ``"wide"`` (measured
    mean, std 0.5: an untrained encoder's latents barely vary, a wider scale lets the noise, the
    video and the condition be heard). gain: factor on the weight norms (the default init
    shrinks the signal at every layer, so an untrained codec maps all audio to one latent).
    """
    codec = FoleyCodec(latent_dim=8, n_filters=4, lstm_layers=0)
    if gain != 1.0:
        with torch.no_grad():
            for name, p in codec.named_parameters():
                if name.endswith("weight_g"):
                    p.mul_(gain)
    if stats != "none":
        waves = torch.randn(4, cfg.samples_per_clip, generator=torch.Generator().manual_seed(seed))
        mean, std = codec.measure_latent_stats([0.3 * waves.clamp(-3, 3) / 3])
        codec.set_latent_stats(mean, [0.5] * len(mean) if stats == "wide" else std)
    return codec


def tiny_pipeline(
    seed: int = 0,
    *,
    cfg: AVConfig = TINY_CONFIG,
    codec_stats: str = "none",
    codec_gain: float = 1.0,
    video_encoder=None,
    curve_dim: int = 0,
    mc3: bool | MC3Model = False,
    index=None,
    sync=None,
    avs=None,
) -> FoleyPipeline:
    """The one tiny FoleyPipeline the tests share (audiocraft's debug models): real components
    at CPU size, seeded (``torch.manual_seed(seed)`` first), progress bars off.

    video_encoder: default a VideoEncoder (dim 12); pass a SyncModel (with ``curve_dim=2``) for
    a sync pipeline; the denoiser's ``video_dim`` follows the encoder's ``dim``. mc3: True for
    a tiny random MC3Model, or a model. index, sync, avs: passed
    through as components.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    torch.manual_seed(seed)
    video_dim = 12 if video_encoder is None else int(video_encoder.config.dim)
    denoiser = tiny_denoiser(cfg, curve_dim=curve_dim, video_dim=video_dim)
    codec = tiny_codec(cfg, seed, codec_stats, codec_gain)
    if video_encoder is None:
        video_encoder = VideoEncoder(dim=12, channels=(4, 8))
    if mc3 is True:
        mc3 = MC3Model(**MC3_TINY).eval()
    pipe = FoleyPipeline(
        codec=codec,
        video_encoder=video_encoder,
        denoiser=denoiser,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        retriever=ClipRetriever(mc3, index) if mc3 else None,
        av_config=cfg.to_dict(),
        sync=sync,
        avs=avs,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
