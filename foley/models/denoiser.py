"""FoleyDenoiser: the AV-LDM network, a transformer over codec latent frames.

Conditioning (Action2Sound's AV-LDM):

* a **frame-synchronous video stream**: per-frame video features are resampled to the token
  rate (``latents_per_frame / patch_size`` tokens per video frame, 1.5625 by default: linear
  interpolation in time) and added to every token, so action sounds stay local in time;
* **patches** of ``patch_size`` latent frames per token (2 by default: 25 tokens per second,
  40 ms, finer than the 62.5 ms between video frames) halve the sequence the transformer sees;
* **cross-attention** to ``[video tokens; audio-condition tokens]``: the conditioning clip's codec
  latents go through a small projection (and a temporal average pool) to give the condition
  tokens that carry the ambience;
* **learned null tokens** replace the video (both streams) and/or the condition when they are
  dropped, during training (classifier-free guidance) or at inference (the unconditional branch);
* a sinusoidal **timestep embedding** drives adaLN-Zero modulation in every block;
* optional **sync curves** (``curve_dim > 0``): per-latent-frame curves that the sync encoder
  (:class:`~foley.models.sync.SyncModel`) predicts from the frames (onset, loudness), projected
  per token and added like the video stream, so a contact's sound lands on the latent frame
  where the sync encoder places it instead of being re-derived from 16 fps features.
  With ``curve_input="peaks"`` the onset curve is first re-drawn as clean unit bumps at its
  peaks (:func:`clean_onset_curve`), so a denoiser trained on the bumps of the audio's own
  onsets (``--teacher-curves``) sees the same kind of input from the sync encoder's blurrier
  predictions at inference.
* optional **guidance embedding** (``guidance_embed=True``: a guidance-distilled student,
  ``foley train distill``): the classifier-free guidance scale is embedded like the timestep and
  added to it, and the network predicts in one call what the teacher's two guided calls give,
  ``uncond + g * (cond - uncond)``. Its last layer starts at zero, so a new student is exactly
  its teacher's conditional branch. The pipeline then runs one call per step instead of two.

The network predicts whatever the training objective asked for (flow velocity, epsilon or v);
the sampler is a diffusers scheduler that lives in the pipeline, not here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

CURVE_INPUTS = ("raw", "peaks")
ONSET_SIGMA_FRAMES = 1.0  # the sync targets' bump width (20 ms) in 50 Hz latent frames
GUIDANCE_EMBED_SCALE = 100.0  # guidance g is embedded as the timestep (g - 1) * 100 would be


def clean_onset_curve(
    onset: torch.Tensor, threshold: float = 0.5, sigma: float = ONSET_SIGMA_FRAMES
) -> torch.Tensor:
    """Re-draw an onset curve ``(batch, L)`` in [0, 1] as unit Gaussian bumps (``sigma`` latent
    frames) at its peaks: local maxima at or above ``threshold`` that are the largest value
    within +-2 frames (40 ms). Bumps do not add up: the result is their maximum, in [0, 1]."""
    x = onset.float().unsqueeze(1)  # (batch, 1, L)
    local_max = F.max_pool1d(x, 5, stride=1, padding=2)
    right = F.pad(x[..., 1:], (0, 1), value=-1.0)  # plateaus: keep their last frame
    peaks = (x >= threshold) & (x >= local_max) & (x > right)  # (batch, 1, L) bool
    radius = max(1, int(math.ceil(4 * sigma)))
    offsets = torch.arange(-radius, radius + 1, device=onset.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)  # (2r + 1,), 1 at the centre
    # max over peaks of kernel(t - p): a max-"convolution" via unfold
    padded = F.pad(peaks.float(), (radius, radius))  # (batch, 1, L + 2r)
    windows = padded.unfold(-1, 2 * radius + 1, 1)  # (batch, 1, L, 2r + 1)
    bumps = (windows * kernel.flip(0)).amax(-1)  # (batch, 1, L)
    return bumps.squeeze(1).to(onset.dtype)


def sinusoidal_positions(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (fractional) positions.

    positions: (length,) float, in latent frames. Returns (length, dim).
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(10_000.0)
        * torch.arange(half, device=positions.device, dtype=torch.float32)
        / half
    )
    angles = positions.float()[:, None] * freqs[None, :]
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def resample_to_latent_rate(
    features: torch.Tensor, num_latents: int, latents_per_frame: float
) -> torch.Tensor:
    """Linearly interpolate per-frame features to the latent rate.

    features: (batch, num_frames, dim) at the video rate. Returns (batch, num_latents, dim).
    Latent frame ``j`` covers the time of video frame ``(j + 0.5) / latents_per_frame - 0.5``
    (centres aligned, both streams starting at t = 0); positions outside the video are clamped.
    """
    num_frames = features.shape[1]
    pos = (torch.arange(num_latents, device=features.device) + 0.5) / latents_per_frame - 0.5
    pos = pos.clamp(0, num_frames - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=num_frames - 1)
    w = (pos - lo.float()).to(features.dtype)[None, :, None]
    return features[:, lo] * (1 - w) + features[:, hi] * w


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        context_dim = context_dim or dim
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, v), each (batch, heads, tokens, head_dim), of ``context``."""
        b, n, d = context.shape[0], context.shape[1], self.to_q.out_features
        h = self.num_heads
        k, v = self.to_kv(context).view(b, n, 2, h, d // h).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        b, n, d = x.shape
        h = self.num_heads
        q = self.to_q(x).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.keys_values(x if context is None else context) if kv is None else kv
        out = F.scaled_dot_product_attention(q, k, v)  # (batch, heads, n, head_dim)
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    """adaLN-Zero transformer block: self-attention, cross-attention, MLP."""

    def __init__(self, dim: int, num_heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.self_attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = _Attention(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, ff_mult * dim),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * dim, dim),
        )
        # shift/scale/gate for self-attention and MLP from the timestep embedding
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None,
        temb: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        # x: (batch, L, dim); context: (batch, tokens, dim); temb: (batch, dim); kv: the
        # cross-attention's keys and values of ``context``, when already computed
        sh1, sc1, g1, sh2, sc2, g2 = self.modulation(F.silu(temb))[:, None].chunk(6, dim=-1)
        x = x + g1 * self.self_attn(self.norm1(x) * (1 + sc1) + sh1)
        x = x + self.cross_attn(self.norm2(x), context, kv=kv)
        x = x + g2 * self.mlp(self.norm3(x) * (1 + sc2) + sh2)
        return x


class FoleyDenoiser(ModelMixin, ConfigMixin):
    """Transformer over latent frames conditioned on video frames and an audio-condition clip.

    Args:
        latent_dim: codec latent channels (``FoleyCodec.config.latent_dim``).
        video_dim: per-frame video feature size (``VideoEncoder`` output).
        hidden_dim, num_layers, num_heads, ff_mult: transformer size.
        latents_per_frame: latent frames per video frame (``AVConfig.latents_per_frame``).
        patch_size: latent frames per transformer token.
        condition_pool: temporal average pooling of the condition latents (tokens per
            ``condition_pool`` latent frames) before cross-attention.
        dropout: MLP dropout.
        curve_dim: channels of the optional sync curves at the latent rate (0: none).
        curve_input: ``raw`` (the curves as given) or ``peaks`` (channel 0, the onset curve,
            re-drawn by :func:`clean_onset_curve` first).
        guidance_embed: a guidance-distilled network: ``forward(..., guidance=g)`` predicts the
            guided output in one call (see the module docstring).
        guidance_min, guidance_max: the guidance scales such a network was trained on (the
            pipeline mixes two of its calls, at 0 and 1, for scales outside).
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        latent_dim: int = 64,
        video_dim: int = 256,
        hidden_dim: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        ff_mult: int = 4,
        latents_per_frame: float = 3.125,
        patch_size: int = 2,
        condition_pool: int = 4,
        dropout: float = 0.0,
        curve_dim: int = 0,
        curve_input: str = "raw",
        guidance_embed: bool = False,
        guidance_min: float = 0.0,
        guidance_max: float = 8.0,
    ) -> None:
        super().__init__()
        if curve_input not in CURVE_INPUTS:
            raise ValueError(f"curve_input must be one of {CURVE_INPUTS}, not {curve_input!r}")
        if hidden_dim % num_heads:
            raise ValueError("hidden_dim must be a multiple of num_heads")
        self.proj_in = nn.Linear(latent_dim * patch_size, hidden_dim)
        self.time_proj = Timesteps(hidden_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(hidden_dim, hidden_dim)
        # frame-synchronous video stream (added per latent frame)
        self.video_sync = nn.Sequential(
            nn.Linear(video_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim)
        )
        # cross-attention tokens
        self.video_tokens = nn.Linear(video_dim, hidden_dim)
        self.condition_tokens = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim)
        )
        if curve_dim:
            self.curve_proj = nn.Sequential(
                nn.Linear(curve_dim * patch_size, hidden_dim),
                nn.SiLU(),
                nn.Linear(hidden_dim, hidden_dim),
            )
        if guidance_embed:  # zero last layer: starts as the conditional branch
            self.guidance_embedding = TimestepEmbedding(hidden_dim, hidden_dim)
            nn.init.zeros_(self.guidance_embedding.linear_2.weight)
            nn.init.zeros_(self.guidance_embedding.linear_2.bias)
        self.type_embed = nn.Parameter(torch.randn(2, hidden_dim) * 0.02)  # video, condition
        # learned null tokens for classifier-free guidance
        self.null_video_sync = nn.Parameter(torch.zeros(hidden_dim))
        self.null_video_token = nn.Parameter(torch.randn(hidden_dim) * 0.02)
        self.null_condition_token = nn.Parameter(torch.randn(hidden_dim) * 0.02)
        self.blocks = nn.ModuleList(
            [_Block(hidden_dim, num_heads, ff_mult, dropout) for _ in range(num_layers)]
        )
        self.norm_out = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.out_modulation = nn.Linear(hidden_dim, 2 * hidden_dim)
        self.proj_out = nn.Linear(hidden_dim, latent_dim * patch_size)
        for layer in (self.out_modulation, self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------------------------
    def _video_streams(
        self, video: torch.Tensor | None, keep: torch.Tensor | None, batch: int, num_tokens: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the sync stream (batch, tokens, d) and video tokens (batch, T or 1, d)."""
        d = self.config.hidden_dim
        if video is None:
            sync = self.null_video_sync.expand(batch, num_tokens, d)
            tokens = self.null_video_token.expand(batch, 1, d)
            return sync, tokens + self.type_embed[0]
        tokens_per_frame = self.config.latents_per_frame / self.config.patch_size
        sync = resample_to_latent_rate(self.video_sync(video), num_tokens, tokens_per_frame)
        lpf = self.config.latents_per_frame  # frame centres, in latent frames
        frame_pos = (torch.arange(video.shape[1], device=video.device) + 0.5) * lpf - 0.5
        tokens = self.video_tokens(video) + sinusoidal_positions(frame_pos, d).to(video.dtype)
        if keep is not None:
            k = keep.to(video.device).view(-1, 1, 1)
            sync = torch.where(k, sync, self.null_video_sync.to(sync.dtype))
            tokens = torch.where(k, tokens, self.null_video_token.to(tokens.dtype))
        return sync, tokens + self.type_embed[0]

    def _curve_stream(self, curves, keep, batch: int, num_tokens: int, dtype) -> torch.Tensor:
        """Sync curves (batch, L, curve_dim) -> per-token stream (batch, tokens, d); zero where
        the video is dropped."""
        if curves is None:
            raise ValueError("this denoiser was trained with sync curves: pass sync_curves")
        patch = self.config.patch_size
        curves = curves.to(dtype)
        if self.config.curve_input == "peaks":
            curves = torch.cat([clean_onset_curve(curves[..., 0])[..., None], curves[..., 1:]], -1)
        length = num_tokens * patch
        if curves.shape[1] < length:  # pad (repeat the edge) or crop to whole patches
            curves = F.pad(curves.transpose(1, 2), (0, length - curves.shape[1]), mode="replicate")
            curves = curves.transpose(1, 2)
        curves = curves[:, :length].reshape(batch, num_tokens, patch * curves.shape[-1])
        stream = self.curve_proj(curves)
        if keep is not None:
            stream = stream * keep.to(stream.device).view(-1, 1, 1).to(dtype)
        return stream

    def _condition_tokens(
        self, condition: torch.Tensor | None, keep: torch.Tensor | None, batch: int
    ) -> torch.Tensor:
        """Returns condition tokens (batch, Lc / condition_pool or 1, d)."""
        d = self.config.hidden_dim
        if condition is None:
            return self.null_condition_token.expand(batch, 1, d) + self.type_embed[1]
        pool = self.config.condition_pool
        if pool > 1:  # (batch, Lc, C) -> (batch, ceil(Lc / pool), C)
            condition = F.avg_pool1d(
                condition.transpose(1, 2), pool, pool, ceil_mode=True
            ).transpose(1, 2)
        pos = (torch.arange(condition.shape[1], device=condition.device) + 0.5) * pool - 0.5
        tokens = self.condition_tokens(condition) + sinusoidal_positions(pos, d).to(condition.dtype)
        if keep is not None:
            k = keep.to(condition.device).view(-1, 1, 1)
            tokens = torch.where(k, tokens, self.null_condition_token.to(tokens.dtype))
        return tokens + self.type_embed[1]

    def invariants(
        self,
        batch: int,
        num_latents: int,
        video_features: torch.Tensor | None = None,
        condition_latents: torch.Tensor | None = None,
        video_keep: torch.Tensor | None = None,
        condition_keep: torch.Tensor | None = None,
        sync_curves: torch.Tensor | None = None,
        guidance: torch.Tensor | float | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> dict:
        """What :meth:`forward` computes from everything but the noisy latents and the
        timestep: the video stream, the token positions, the curve stream, every block's
        cross-attention keys and values, and the guidance embedding. Constant over a sampler's
        steps, so a sampler computes it once (``forward(..., invariants=...)``)."""
        patch = self.config.patch_size
        num_tokens = -(-num_latents // patch)
        device = device if device is not None else self.proj_in.weight.device
        sync, video_tokens = self._video_streams(video_features, video_keep, batch, num_tokens)
        cond_tokens = self._condition_tokens(condition_latents, condition_keep, batch)
        context = torch.cat([video_tokens, cond_tokens], dim=1)  # (batch, tokens, d)
        # token positions in latent frames, like the video and condition tokens' positions
        pos = sinusoidal_positions(
            (torch.arange(num_tokens, device=device) + 0.5) * patch - 0.5, self.config.hidden_dim
        ).to(dtype)
        curves = None
        if self.config.curve_dim and video_features is not None:
            curves = self._curve_stream(sync_curves, video_keep, batch, num_tokens, dtype)
        guidance_emb = None
        if self.config.guidance_embed:
            g = torch.as_tensor(1.0 if guidance is None else guidance, dtype=torch.float32)
            g = g.to(device)
            g = g.expand(batch) if g.ndim == 0 else g.reshape(batch)
            g = self.time_proj((g - 1.0) * GUIDANCE_EMBED_SCALE).to(dtype)
            guidance_emb = self.guidance_embedding(g)
        kv = [block.cross_attn.keys_values(context) for block in self.blocks]
        return {
            "sync": sync, "pos": pos, "curves": curves, "kv": kv,
            "guidance_emb": guidance_emb, "guidance": guidance,
        }  # fmt: skip

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor | float,
        video_features: torch.Tensor | None = None,
        condition_latents: torch.Tensor | None = None,
        video_keep: torch.Tensor | None = None,
        condition_keep: torch.Tensor | None = None,
        sync_curves: torch.Tensor | None = None,
        guidance: torch.Tensor | float | None = None,
        invariants: dict | None = None,
    ) -> torch.Tensor:
        """Predict the training target for noisy latents.

        Args:
            latents: (batch, L, latent_dim) noisy latents at 50 latent frames per second.
            timestep: scheduler timestep(s) in [0, 1000], scalar or (batch,).
            video_features: (batch, T, video_dim) per-frame features covering the same time span
                as the latents (T * latents_per_frame ~= L), or None (null video).
            condition_latents: (batch, Lc, latent_dim) codec latents of the conditioning clip,
                or None (null condition).
            video_keep, condition_keep: (batch,) bool; False swaps that sample's video /
                condition for the learned null tokens (classifier-free guidance dropout).
            sync_curves: (batch, L, curve_dim) sync curves of the video at the latent rate
                (models with ``curve_dim``; part of the video: dropped with it, and ignored
                when ``video_features`` is None).
            guidance: the guidance scale(s), scalar or (batch,), of a ``guidance_embed`` network
                (None: 1, the conditional prediction); ignored by other networks.
            invariants: what :meth:`invariants` computed for these inputs (a sampler computes
                it once for all its steps); the video, condition, curves and guidance arguments
                are then not read. The result is bit-identical either way.

        Returns:
            (batch, L, latent_dim) prediction (velocity, epsilon or v: set by training).
        """
        batch, num_latents, channels = latents.shape
        patch = self.config.patch_size
        if invariants is None:
            invariants = self.invariants(
                batch, num_latents, video_features, condition_latents, video_keep,
                condition_keep, sync_curves, guidance, device=latents.device, dtype=latents.dtype,
            )  # fmt: skip
        num_tokens = -(-num_latents // patch)
        if num_tokens * patch != num_latents:  # pad to whole patches, cropped again at the end
            latents = F.pad(latents, (0, 0, 0, num_tokens * patch - num_latents))
        t = torch.as_tensor(timestep, device=latents.device, dtype=torch.float32)
        t = t.expand(batch) if t.ndim == 0 else t.reshape(batch)
        temb = self.time_embed(self.time_proj(t).to(latents.dtype))  # (batch, d)
        if invariants["guidance_emb"] is not None:
            temb = temb + invariants["guidance_emb"]

        x = latents.reshape(batch, num_tokens, patch * channels)  # (batch, tokens, patch * C)
        x = self.proj_in(x) + invariants["sync"] + invariants["pos"]  # (batch, tokens, d)
        if invariants["curves"] is not None:
            x = x + invariants["curves"]
        for block, kv in zip(self.blocks, invariants["kv"]):
            x = block(x, None, temb, kv=kv)
        shift, scale = self.out_modulation(F.silu(temb))[:, None].chunk(2, dim=-1)
        out = self.proj_out(self.norm_out(x) * (1 + scale) + shift)  # (batch, tokens, patch * C)
        return out.reshape(batch, num_tokens * patch, channels)[:, :num_latents]
