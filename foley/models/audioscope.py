"""AudioScope: unsupervised separation of on-screen sounds (Tzinis et al., ICLR 2021).

Two parts in one trained component:

- **Separator** (STFT masks): the mixture's STFT magnitude goes through a stack of dilated
  1-D convolutions over time (a small TDCN); ``num_sources`` masks are a softmax over sources,
  so the masked STFTs sum to the mixture's STFT, and a mixture-consistency projection makes the
  sources' waveforms sum to the mixture exactly (up to float rounding).
- **On-screen classifier**, with one of two video contexts (``context``):

  * ``"tokens"``: each source's audio embedding attends over the video's spatio-temporal
    embeddings (a small CNN on frames and frame differences, a grid of tokens per frame);
  * ``"sync"``: coincidence in time. The frozen sync encoder (:class:`~foley.models.sync.
    SyncModel`, a submodule) turns the frames into (onset, level) curves of the contacts it
    sees, at the latent rate (50 per second); each source gives its own loudness, onset
    strength and band energies at the same rate (:meth:`AudioScope.source_features`, no
    parameters, so training can cache them); a small temporal conv over [source curves, video
    curves, their products] plus the curves' correlations gives the logit.

  Without video (``frames=None``) a learned null context stands in (the audio-only ablation;
  training drops the video at random so the same model has both modes).

Trained with mixture invariant training (MixIT, :func:`mixit_loss`) on mixtures of mixtures; no
labels (``training/train_audioscope.py``). Inference: :meth:`AudioScope.on_screen`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

SNR_TAU = 1e-3  # soft threshold of the MixIT SNR loss (the paper's tau)
CONTEXTS = ("tokens", "sync")
WEIGHTINGS = ("probability", "relative")  # how on-screen probabilities become source weights
SEPARATOR_MODULES = ("inp", "blocks", "mask")  # what ``--freeze-separator`` keeps fixed
LEVEL_RANGE_DB = 30.0  # as foley.models.sync: loudness curves span 30 dB above the floor


def snr_loss(ref: torch.Tensor, est: torch.Tensor, tau: float = SNR_TAU) -> torch.Tensor:
    """Negative thresholded SNR in dB: ``10 log10(|y - yhat|^2 + tau |y|^2) - 10 log10 |y|^2``.

    ref, est: (..., num_samples) -> (...). The ``tau`` term caps the SNR at ``-10 log10 tau``
    (30 dB), so silent or near-perfect references do not dominate.
    """
    power = ref.pow(2).sum(-1)
    err = (ref - est).pow(2).sum(-1)
    return 10 * torch.log10(err + tau * power + 1e-8) - 10 * torch.log10(power + 1e-8)


def _assignments(num_sources: int, num_mixtures: int, device) -> torch.Tensor:
    """Every way of giving each source to one mixture: (num_mixtures^M, num_mixtures, M) 0/1."""
    combos = torch.tensor(list(itertools.product(range(num_mixtures), repeat=num_sources)))
    return F.one_hot(combos, num_mixtures).permute(0, 2, 1).float().to(device)


def mixit_loss(
    mixtures: torch.Tensor, sources: torch.Tensor, tau: float = SNR_TAU
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixture invariant training: the best assignment of sources to reference mixtures.

    mixtures: (batch, K, N) reference mixtures; sources: (batch, M, N) estimates.
    Returns (loss (batch,): the sum over mixtures of :func:`snr_loss` at the best assignment,
    assignment (batch, M) long: the mixture each source went to). Searches all K^M assignments.
    """
    b, k, _ = mixtures.shape
    masks = _assignments(sources.shape[1], k, sources.device)  # (A, K, M)
    remix = torch.einsum("akm,bmn->bakn", masks, sources)  # (batch, A, K, N)
    losses = snr_loss(mixtures.unsqueeze(1), remix, tau).sum(-1)  # (batch, A)
    best = losses.argmin(-1)  # (batch,)
    assignment = masks[best].argmax(1)  # (batch, M)
    return losses[torch.arange(b), best], assignment


def source_weights(
    logits: torch.Tensor,
    weighting: str = "probability",
    temperature: float = 0.1,
    offset: float = 3.0,
) -> torch.Tensor:
    """On-screen weights (batch, M) in [0, 1] of the sources, from their logits (batch, M).

    - ``"probability"``: ``sigmoid(logit)`` (the weighting of the models up to s6);
    - ``"relative"``: ``p_max * sigmoid((logit - logit_max) / temperature + offset)``: each
      source is compared with the clip's most on-screen source (the shape: sources within a
      fraction of ``temperature`` of the top logit are kept almost whole, the rest fade out),
      and the whole clip is scaled by the top source's probability ``p_max = sigmoid(logit_max)``
      (the gate: a clip whose best source is unlikely on screen is turned down as a whole).
      The classifier's probabilities rank sources well but are soft (mostly below 0.5), so the
      probability weighting leaves much of every on-screen source in the off-screen track.
    """
    if weighting == "probability":
        return torch.sigmoid(logits)
    if weighting != "relative":
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {weighting!r}")
    top = logits.amax(-1, keepdim=True)
    return torch.sigmoid(top) * torch.sigmoid((logits - top) / temperature + offset)


def video_input(frames: np.ndarray, fps: float, model_fps: float, size: int) -> torch.Tensor:
    """uint8 (T, S, S, 3) at ``fps`` -> float (T', 3, size, size) in [0, 1] at ``model_fps``
    (every ``round(fps / model_fps)``-th frame, area-resized)."""
    step = max(1, int(round(fps / model_fps)))
    x = torch.from_numpy(np.ascontiguousarray(frames[::step])).permute(0, 3, 1, 2).float() / 255
    return F.interpolate(x, size=(size, size), mode="area")


class _Block(nn.Module):
    """Residual dilated depthwise-separable 1-D convolution over time (TDCN-style)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.depth = nn.Conv1d(
            channels, channels, 3, padding=dilation, dilation=dilation, groups=channels
        )
        self.point = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, C, L)
        return x + self.point(F.gelu(self.depth(self.norm(x))))


@dataclass
class AudioScopeOutput:
    sources: torch.Tensor  # (batch, M, N) separated waveforms, summing to the mixture
    logits: torch.Tensor  # (batch, M) on-screen logits


class AudioScope(ModelMixin, ConfigMixin):
    """MixIT separator + audio-visual on-screen classifier."""

    @register_to_config
    def __init__(
        self,
        num_sources: int = 4,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 128,
        channels: int = 128,
        num_blocks: int = 8,
        embed_dim: int = 64,
        video_fps: float = 8.0,
        frame_size: int = 48,
        video_channels: tuple[int, ...] = (16, 32),
        context: str = "tokens",
        sync_config: dict | None = None,
        latent_hop: int = 320,
        num_bands: int = 8,
        coincidence_channels: int = 32,
        weighting: str = "probability",
        weight_temperature: float = 0.1,
        weight_offset: float = 3.0,
    ) -> None:
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, not {context!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {weighting!r}")
        bins = n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # separator
        self.inp = nn.Conv1d(bins, channels, 1)
        self.blocks = nn.Sequential(*[_Block(channels, 2 ** (i % 5)) for i in range(num_blocks)])
        self.mask = nn.Conv1d(channels, num_sources * bins, 1)
        if context == "sync":
            self._init_sync_classifier(sync_config or {}, num_bands, coincidence_channels)
            return
        # per-source audio embedding (from the source's log magnitude)
        self.audio_embed = nn.Sequential(
            nn.Conv1d(bins, channels, 1), nn.GELU(), nn.Conv1d(channels, embed_dim, 3, padding=1)
        )
        # video: frames + frame differences -> a grid of tokens per frame
        layers, c_in = [], 6
        for c in (*video_channels, embed_dim):
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GELU()]
            c_in = c
        self.video_cnn = nn.Sequential(*layers[:-1])
        self.video_time = nn.Conv1d(embed_dim, embed_dim, 3, padding=1)
        self.query = nn.Linear(2 * embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)
        self.null_context = nn.Parameter(torch.zeros(embed_dim))
        self.head = nn.Sequential(
            nn.Linear(4 * embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, 1)
        )

    # ---- separation ------------------------------------------------------------------------

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, N) -> complex (batch, bins, frames)."""
        c = self.config
        return torch.stft(wave, c.n_fft, c.hop_length, window=self.window, return_complex=True)

    def separate(self, mixture: torch.Tensor) -> torch.Tensor:
        """(batch, N) -> sources (batch, M, N) whose sum is the mixture."""
        c, (b, n) = self.config, mixture.shape
        spec = self.stft(mixture)  # (b, F, L)
        h = self.blocks(self.inp(torch.log1p(spec.abs())))
        logits = self.mask(h).view(b, c.num_sources, spec.shape[1], spec.shape[2])
        masks = logits.softmax(1)  # (b, M, F, L), sums to 1 over sources
        est = torch.istft(
            (masks * spec.unsqueeze(1)).flatten(0, 1),
            c.n_fft,
            c.hop_length,
            window=self.window,
            length=n,
        ).view(b, c.num_sources, n)
        # mixture consistency: spread the remainder equally, so sum(sources) == mixture
        return est + (mixture - est.sum(1)).unsqueeze(1) / c.num_sources

    # ---- on-screen classifier --------------------------------------------------------------

    def embed_sources(self, sources: torch.Tensor) -> torch.Tensor:
        """(batch, M, N) -> (batch, M, 2 * embed_dim): mean and max over time."""
        b, m, _ = sources.shape
        h = self.audio_embed(torch.log1p(self.stft(sources.flatten(0, 1)).abs()))
        return torch.cat([h.mean(-1), h.amax(-1)], -1).view(b, m, -1)

    def embed_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(batch, T, 3, S, S) in [0, 1] at ``video_fps`` -> tokens (batch, T*s*s, embed_dim)."""
        b, t = frames.shape[:2]
        size = self.config.frame_size
        if frames.shape[-1] != size:
            frames = F.interpolate(frames.flatten(0, 1), size=(size, size), mode="area")
            frames = frames.view(b, t, 3, size, size)
        diff = torch.cat([torch.zeros_like(frames[:, :1]), frames.diff(dim=1)], 1)
        x = torch.cat([frames - 0.5, diff], 2).flatten(0, 1)  # (b*T, 6, S, S)
        g = self.video_cnn(x)  # (b*T, D, s, s)
        d, s = g.shape[1], g.shape[-1]
        g = g.view(b, t, d, s * s).permute(0, 3, 2, 1).reshape(b * s * s, d, t)
        g = g + self.video_time(F.gelu(g))  # temporal mixing per grid cell
        return g.view(b, s * s, d, t).permute(0, 3, 1, 2).reshape(b, t * s * s, d)

    def classify(
        self,
        sources: torch.Tensor,
        frames: torch.Tensor | None,
        video_curves: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """On-screen logits (batch, M) of separated sources; ``frames=None``: audio only.

        ``video_curves`` (batch, L, 2) (``"sync"`` context only): the sync encoder's curves of
        ``frames``, when they are already known (training caches them)."""
        if self.config.context == "sync":
            if video_curves is None and frames is not None:
                num_latents = -(-sources.shape[-1] // self.config.latent_hop)
                video_curves = self.sync.encode(frames, num_latents)[1]
            return self.classify_features(self.source_features(sources), video_curves)
        a = self.embed_sources(sources)  # (b, M, 2D)
        q = self.query(a)  # (b, M, D)
        if frames is None:
            ctx = self.null_context.expand_as(q)
        else:
            tokens = self.embed_video(frames)  # (b, P, D)
            ctx = F.scaled_dot_product_attention(q, self.key(tokens), self.value(tokens))
        return self.head(torch.cat([a, ctx, q * ctx], -1)).squeeze(-1)

    # ---- "sync" context: coincidence of source and video curves in time -------------------

    def _init_sync_classifier(self, sync_config: dict, num_bands: int, hidden: int) -> None:
        from foley.models.sync import SyncModel

        self.sync = SyncModel(**sync_config).requires_grad_(False)
        c_in = 3 + num_bands + 2 + 4  # source curves, video curves, products
        self.coincidence = nn.Sequential(
            nn.Conv1d(c_in, hidden, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=4, dilation=2),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=8, dilation=4),
            nn.GELU(),
        )
        self.null_curves = nn.Parameter(torch.zeros(2))
        self.head = nn.Sequential(
            nn.Linear(2 * hidden + 4, hidden), nn.GELU(), nn.Linear(hidden, 1)
        )

    def train(self, mode: bool = True):
        super().train(mode)
        if hasattr(self, "sync"):
            self.sync.eval()  # frozen
        return self

    @torch.no_grad()
    def source_features(self, sources: torch.Tensor) -> torch.Tensor:
        """(batch, M, N) -> (batch, M, L, 3 + num_bands) at the latent rate (``latent_hop``
        samples a frame, frame ``j`` covering samples ``[j, j + 1) * hop``): loudness above the
        source's floor in [0, 1] (as :func:`foley.models.sync.sync_targets`), onset strength
        (rectified rise of the band levels, /10 dB), the source's level relative to the
        mixture's in the same frame (/30 dB, in [-1, 0]) and band levels relative to the
        source's loudest band-frame (/30 dB, in [-1, 0])."""
        b, m, n = sources.shape
        hop, nb = self.config.latent_hop, self.config.num_bands
        frames_n = -(-n // hop)
        x = F.pad(sources, (0, frames_n * hop - n)).view(b, m, frames_n, hop)
        power = x.pow(2).mean(-1)  # (b, M, L)
        db = 10 * torch.log10(power + 1e-10)
        floor = torch.quantile(db, 0.2, dim=-1, keepdim=True)
        level = ((db - floor) / LEVEL_RANGE_DB).clamp(0, 1)
        mix_db = 10 * torch.log10(x.sum(1, keepdim=True).pow(2).mean(-1) + 1e-10)
        rel = ((db - mix_db) / LEVEL_RANGE_DB).clamp(-1, 0)
        spec = torch.fft.rfft(x * torch.hann_window(hop, device=x.device), dim=-1).abs().pow(2)
        edges = np.unique(np.geomspace(2, spec.shape[-1], nb + 1).astype(int))
        bands = torch.stack(
            [spec[..., lo:hi].mean(-1) for lo, hi in zip(edges[:-1], edges[1:])], -1
        )  # (b, M, L, <= nb)
        bands = F.pad(bands, (0, nb - bands.shape[-1]))
        band_db = 10 * torch.log10(bands + 1e-10)
        rise = band_db.diff(dim=2, prepend=band_db[:, :, :1]).clamp(min=0).mean(-1)
        onset = (rise / 10).clamp(0, 1) * (level > 0)
        top = band_db.amax(dim=(2, 3), keepdim=True)
        band_rel = ((band_db - top) / LEVEL_RANGE_DB).clamp(-1, 0)
        return torch.cat([torch.stack([level, onset, rel], -1), band_rel], -1)

    def classify_features(
        self, features: torch.Tensor, video_curves: torch.Tensor | None
    ) -> torch.Tensor:
        """features (batch, M, L, C) of :meth:`source_features`, the video's (onset, level)
        curves (batch, L, 2) in [0, 1] or None (audio only) -> on-screen logits (batch, M)."""
        b, m, n, _ = features.shape
        if video_curves is None:
            v = self.null_curves.expand(b, m, n, 2)
        else:
            v = video_curves[:, None, :n].to(features.dtype).expand(b, m, n, 2)
        level, onset = features[..., :1], features[..., 1:2]
        v_onset, v_level = v[..., :1], v[..., 1:]
        pairs = [level * v_level, onset * v_onset, level * v_onset, onset * v_level]
        x = torch.cat([features, v, *pairs], -1).flatten(0, 1).transpose(1, 2)  # (b*M, C', L)
        h = self.coincidence(x)
        s = torch.cat([level, onset, level, onset], -1)  # (b, M, L, 4)
        t = torch.cat([v_level, v_onset, v_onset, v_level], -1)
        s, t = s - s.mean(2, keepdim=True), t - t.mean(2, keepdim=True)
        corr = (s * t).sum(2) / (s.norm(dim=2) * t.norm(dim=2) + 1e-6)  # (b, M, 4)
        pooled = torch.cat([h.mean(-1), h.amax(-1)], -1).view(b, m, -1)
        return self.head(torch.cat([pooled, corr], -1)).squeeze(-1)

    def forward(self, mixture: torch.Tensor, frames: torch.Tensor | None) -> AudioScopeOutput:
        sources = self.separate(mixture)
        return AudioScopeOutput(sources=sources, logits=self.classify(sources, frames))

    def weights(self, logits: torch.Tensor, weighting: str | None = None) -> torch.Tensor:
        """:func:`source_weights` of ``logits`` (batch, M) with this model's ``weighting``
        (config; ``"probability"`` for models saved before it existed) unless one is given."""
        c = self.config
        return source_weights(
            logits, weighting or c.weighting, c.weight_temperature, c.weight_offset
        )

    @torch.no_grad()
    def on_screen(
        self, mixture: torch.Tensor, frames: torch.Tensor | None, weighting: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, AudioScopeOutput]:
        """(on-screen (batch, N), off-screen (batch, N), the output); on + off = mixture.

        The on-screen estimate is the sum of the sources weighted by :meth:`weights` (the
        model's ``weighting`` unless ``weighting`` is given)."""
        out = self(mixture, frames)
        on = (self.weights(out.logits, weighting).unsqueeze(-1) * out.sources).sum(1)
        return on, mixture - on, out
