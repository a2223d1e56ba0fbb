"""The sync encoder: a video encoder taught *when* things sound, from the paired audio alone.

Contrastive clip-level training (MC3) leaves per-frame features that hardly know when a hand
touches an object (a probe on them finds FoleyWorld contacts at chance). This model trains a
:class:`~foley.models.video_encoder.VideoEncoder` that sees frame differences to predict two
curves of its own clip's soundtrack at the codec's latent rate (50 per second):

* ``onset``: a bump (Gaussian, ``ONSET_SIGMA_S``) at every onset detected in the audio
  (:func:`foley.metrics.onsets.detect_onsets`),
* ``level``: the loudness envelope above the clip's own floor (its 20th percentile), scaled to
  [0, 1] over ``LEVEL_RANGE_DB``: continuous actions (scrape, pour) that have one onset only.

Both come from the audio track, so the same training runs on Ego4D-Sounds (no labels). The
trained encoder (without the head) is the denoiser's frozen video encoder: its frame features
carry contact timing into the frame-synchronous stream.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.models.denoiser import resample_to_latent_rate
from foley.models.video_encoder import VideoEncoder

ONSET_SIGMA_S = 0.02
LEVEL_RANGE_DB = 30.0
TARGETS = ("onset", "level")


def sync_targets(wave: np.ndarray, cfg: AVConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Training targets of one clip: ``(num_latents, 2)`` float32 in [0, 1], (onset, level).

    ``wave``: mono float audio at ``cfg.sample_rate``; latent frame ``j`` covers
    ``[j, j + 1) * hop_length`` samples.
    """
    from foley.metrics.onsets import detect_onsets

    wave = np.asarray(wave, np.float32).reshape(-1)
    n = cfg.num_latents(wave.size)
    hop = cfg.hop_length
    centres = (np.arange(n) + 0.5) * hop / cfg.sample_rate  # seconds
    onset = np.zeros(n, np.float32)
    for t in detect_onsets(wave, cfg):
        onset = np.maximum(onset, np.exp(-0.5 * ((centres - t) / ONSET_SIGMA_S) ** 2))
    padded = np.pad(wave, (0, n * hop - wave.size))
    db = 10 * np.log10(np.mean(padded.reshape(n, hop) ** 2, axis=1) + 1e-10)
    level = np.clip((db - np.percentile(db, 20)) / LEVEL_RANGE_DB, 0.0, 1.0)
    return np.stack([onset, level], axis=1).astype(np.float32)


def curve_onsets(
    curve: np.ndarray, cfg: AVConfig = DEFAULT_CONFIG, threshold: float = 0.5
) -> np.ndarray:
    """Onset times (s) from a predicted onset curve ``(num_latents,)`` in [0, 1]: local maxima
    above ``threshold``; peaks closer than 50 ms are merged (the stronger one kept)."""
    curve = np.asarray(curve, np.float64).reshape(-1)
    frame_s = cfg.hop_length / cfg.sample_rate
    gap = max(1, int(np.ceil(0.05 / frame_s - 1e-9)))
    peaks: list[int] = []
    for i in range(len(curve)):
        left = curve[i - 1] if i > 0 else -np.inf
        right = curve[i + 1] if i + 1 < len(curve) else -np.inf
        if curve[i] < threshold or curve[i] < left or curve[i] <= right:
            continue
        if peaks and i - peaks[-1] < gap:
            if curve[i] > curve[peaks[-1]]:
                peaks[-1] = i
            continue
        peaks.append(i)
    return (np.asarray(peaks, np.float64) + 0.5) * frame_s


class SyncModel(ModelMixin, ConfigMixin):
    """Frames -> (onset, level) logits at the latent rate; ``encoder`` is what the denoiser uses.

    Args:
        dim, channels, temporal_layers, input_size, pool: the :class:`VideoEncoder`'s (built
            with ``frame_diff=True``).
        latents_per_frame: latent frames per video frame (``AVConfig.latents_per_frame``).
        head_dim: width of the latent-rate temporal-conv head.
    """

    @register_to_config
    def __init__(
        self,
        dim: int = 128,
        channels: tuple[int, ...] = (16, 32, 64, 64),
        temporal_layers: int = 2,
        input_size: int | None = 56,
        pool: str = "meanmax",
        latents_per_frame: float = 3.125,
        head_dim: int = 64,
    ) -> None:
        super().__init__()
        self.encoder = VideoEncoder(
            dim=dim,
            channels=tuple(channels),
            temporal_layers=temporal_layers,
            frame_diff=True,
            input_size=input_size,
            pool=pool,
        )
        self.head = nn.Sequential(
            nn.Conv1d(dim, head_dim, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(head_dim, len(TARGETS), 5, padding=2),
        )

    def forward(self, frames: torch.Tensor, num_latents: int) -> torch.Tensor:
        """``(batch, T, 3, H, W)`` in [0, 1] -> logits ``(batch, num_latents, 2)``."""
        return self.encode(frames, num_latents, probabilities=False)[1]

    def encode(
        self, frames: torch.Tensor, num_latents: int, probabilities: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame features ``(batch, T, dim)`` and the curves ``(batch, num_latents, 2)``
        (probabilities, or logits with ``probabilities=False``)."""
        feats = self.encoder(frames)  # (batch, T, dim)
        x = resample_to_latent_rate(feats, num_latents, self.config.latents_per_frame)
        logits = self.head(x.transpose(1, 2)).transpose(1, 2)
        return feats, torch.sigmoid(logits) if probabilities else logits


def sync_loss(logits: torch.Tensor, targets: torch.Tensor, onset_weight: float = 5.0):
    """BCE on both curves; onset positives are rare, so they weigh ``onset_weight``."""
    weight = torch.ones_like(targets)
    weight[..., 0] = 1.0 + (onset_weight - 1.0) * targets[..., 0]
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weight)
