"""DenseAV: where a sound comes from, learned from video and audio alone (no masks, no labels).

After "Separating the 'Chirp' from the 'Chat'" (Hamilton et al., CVPR 2024), written from the
paper's description:

- audio features per time step and visual features per spatial position, projected to
  ``heads * dim`` and split into ``heads`` heads; nothing is pooled before the comparison;
- the similarity volume ``S[a, v, k, h, w, t]`` = <audio a at time t, video v at (h, w)> in head k;
- aggregation: max over space, mean over the non-silent time steps, max over heads -> one score
  per (audio, video) pair; symmetric InfoNCE over the batch with a learned temperature;
- small regularisers: non-negativity, silence, total variation over time, calibration and head
  specialisation (:func:`denseav_loss`).

The heatmap of a frame is the time-averaged similarity (max over heads), min-max normalised and
upsampled to the frame (:meth:`DenseAVModel.heatmaps`).

Visual backbone: ``"cnn"`` (a small trained CNN, stride 8) or ``"efficientnet"`` (EfficientNet-
Lite0's ImageNet blocks up to stride 16, frozen, from ``foley.metrics.networks``; call
:meth:`DenseAVModel.load_backbone_weights` before training) with a trained projection.
Audio backbone: a 2-D CNN over our log-mel (``foley.audio.log_mel``), pooled over frequency.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from foley.audio import log_mel
from foley.config import DEFAULT_CONFIG, AVConfig

EFFNET_BLOCKS = 11  # blocks 0..10 of EfficientNet-Lite0: 112 channels at stride 16
EFFNET_CHANNELS = 112


def _conv(cin: int, cout: int, stride: int | tuple = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(1, cout), nn.GELU()
    )


def _conv1d(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(1, cout), nn.GELU()
    )


class FrozenEfficientNet(nn.Module):
    """EfficientNet-Lite0's stem and first blocks: ``(b, 3, H, W)`` in [0, 1] ->
    ``(b, 112, H/8, W/8)`` (input upsampled x2 first, so 112 px frames give 14 x 14)."""

    def __init__(self, net: nn.Module | None = None) -> None:
        super().__init__()
        if net is None:  # the architecture only; weights from the checkpoint or the package
            from efficientnet_lite_pytorch import EfficientNet

            net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[:EFFNET_BLOCKS])
        self.requires_grad_(False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(frames.float(), scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.stem((x * 255.0 - 127.0) / 128.0)
        for block in self.blocks:
            x = block(x)
        return x

    def train(self, mode: bool = True) -> FrozenEfficientNet:
        return super().train(False)  # frozen: batch-norm statistics never move


class DenseAVModel(ModelMixin, ConfigMixin):
    """Dense audio and visual features in ``heads`` heads of ``dim`` channels.

    ``audio_features(wave (b, N))`` -> ``(b, heads, dim, Ta)``;
    ``visual_features(frames (b, 3, H, W) in [0, 1])`` -> ``(b, heads, dim, h, w)``;
    ``forward(frames, wave)`` -> aggregated scores ``(b_audio, b_video)``.
    """

    @register_to_config
    def __init__(
        self,
        dim: int = 32,
        heads: int = 2,
        visual: str = "cnn",
        visual_channels: tuple[int, ...] = (32, 64, 96),
        audio_channels: tuple[int, ...] = (32, 64, 96),
        input_size: int = 112,
        silence_db: float = -35.0,
        normalize: bool = False,
        audio_encoder: str = "cnn2d",
        center_audio: bool = False,
        center_visual: bool = False,
        visual_gate: bool = False,
        av_config: dict | None = None,
    ) -> None:
        super().__init__()
        if visual not in ("cnn", "efficientnet"):
            raise ValueError(f"visual must be 'cnn' or 'efficientnet', got {visual!r}")
        self.av = AVConfig(**av_config) if av_config else DEFAULT_CONFIG
        code = int(dim) * int(heads)
        if visual == "cnn":  # stride 2 per stage: 112 px -> 14 x 14 with three stages
            layers, cin = [], 3
            for cout in visual_channels:
                layers += [_conv(cin, cout, 2), _conv(cout, cout)]
                cin = cout
            self.backbone: nn.Module = nn.Sequential(*layers)
        else:
            self.backbone = FrozenEfficientNet()
            cin = EFFNET_CHANNELS
        self.visual_proj = nn.Sequential(
            nn.Conv2d(cin, code, 1), nn.GELU(), nn.Conv2d(code, code, 1)
        )
        if audio_encoder not in ("cnn2d", "conv1d"):
            raise ValueError(f"audio_encoder must be 'cnn2d' or 'conv1d', got {audio_encoder!r}")
        if audio_encoder == "cnn2d":  # (b, 1, n_mels, M): stride 2 in frequency, 2, 2, 1 in time
            layers, cin = [], 1
            for i, cout in enumerate(audio_channels):
                layers += [_conv(cin, cout, (2, 2 if i < 2 else 1)), _conv(cout, cout)]
                cin = cout
        else:  # (b, n_mels, M): mel bands as channels, stride 2 in time per stage (~10x cheaper)
            layers, cin = [], self.av.n_mels
            for cout in audio_channels:
                layers += [_conv1d(cin, cout, 2), _conv1d(cout, cout)]
                cin = cout
        self.audio_backbone = nn.Sequential(*layers)
        self.audio_proj = nn.Sequential(
            nn.Conv1d(cin, code, 1), nn.GELU(), nn.Conv1d(code, code, 1)
        )
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))  # learned temperature

    # ---- features ----------------------------------------------------------------------
    # Each ``*_features`` is ``project_*(*_input(...))``: the inputs (frozen backbone maps, or
    # frames for the trained CNN; normalised log-mels) can be pre-extracted once
    # (``training.train_denseav``), so that a training step runs only the trained layers.
    def load_backbone_weights(self) -> None:
        """Fill a frozen EfficientNet backbone with the shipped ImageNet weights."""
        if self.config.visual != "efficientnet":
            return
        from foley.metrics.networks.efficientnet import EfficientNetLite0

        pretrained = FrozenEfficientNet(EfficientNetLite0.from_package().net)
        self.backbone.load_state_dict(pretrained.state_dict())

    @property
    def frozen_visual(self) -> bool:
        """True when the visual backbone is frozen (its maps can be stored once)."""
        return self.config.visual == "efficientnet"

    def visual_input(self, frames: torch.Tensor) -> torch.Tensor:
        """``(b, 3, H, W)`` in [0, 1] -> what :meth:`project_visual` takes: the frozen
        backbone's maps ``(b, 112, h, w)``, or the resized frames for the trained CNN."""
        size = int(self.config.input_size)
        if frames.shape[-2:] != (size, size):
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        if self.frozen_visual:
            with torch.no_grad():
                return self.backbone(frames)
        return frames

    def project_visual(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`visual_input`'s output -> ``(b, heads, dim, h, w)``. ``center_visual``: the
        backbone's maps minus their mean over space (per channel), so that what fills the frame
        (the background) is near zero and only what differs from it can score."""
        if not self.frozen_visual:
            x = self.backbone(x)
        if self.config.center_visual or self.config.visual_gate:
            x = x - x.mean((-2, -1), keepdim=True)
        # visual_gate: (b, 1, 1, h, w) in [0, 1], how far each position is from the frame's mean
        # map, relative to the farthest: a label-free saliency that scales the features, so that
        # what fills the frame (the background) scores near zero
        gate = x.norm(dim=1)[:, None, None] if self.config.visual_gate else None
        x = self.visual_proj(x)  # (b, heads * dim, h, w)
        b, _, h, w = x.shape
        x = self._norm(x.view(b, self.config.heads, self.config.dim, h, w))
        if gate is not None:
            x = x * gate / gate.flatten(1).max(1).values.clamp_min(1e-6)[:, None, None, None, None]
        return x

    def visual_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``(b, 3, H, W)`` in [0, 1] -> ``(b, heads, dim, h, w)``."""
        return self.project_visual(self.visual_input(frames))

    def audio_input(self, wave: torch.Tensor) -> torch.Tensor:
        """``(b, N)`` -> log-mel ``(b, n_mels, M)`` at roughly unit scale."""
        mel = log_mel(wave, self.av)  # (b, n_mels, M), natural log of power
        return (mel + 5.0) / 5.0

    def project_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """:meth:`audio_input`'s output -> ``(b, heads, dim, Ta)``, Ta = :meth:`audio_steps`.
        ``center_audio``: each mel band minus its median over the clip, so that a steady bed
        (ambience) is near zero and the events stand out."""
        if self.config.center_audio:
            mel = mel - mel.median(-1, keepdim=True).values
        if self.config.audio_encoder == "cnn2d":
            x = self.audio_backbone(mel.unsqueeze(1)).mean(2)  # (b, C, Ta): pooled over frequency
        else:
            x = self.audio_backbone(mel)  # (b, C, Ta)
        x = self.audio_proj(x)
        b, _, t = x.shape
        return self._norm(x.view(b, self.config.heads, self.config.dim, t))

    def audio_features(self, wave: torch.Tensor) -> torch.Tensor:
        """``(b, N)`` -> ``(b, heads, dim, Ta)``."""
        return self.project_audio(self.audio_input(wave))

    def audio_steps(self, mel_frames: int) -> int:
        """Ta for ``mel_frames`` log-mel frames (stride 2 in time in the first two stages of
        ``cnn2d``, in every stage of ``conv1d``)."""
        stages = len(self.config.audio_channels)
        for _ in range(min(2, stages) if self.config.audio_encoder == "cnn2d" else stages):
            mel_frames = -(-mel_frames // 2)
        return mel_frames

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        """Unit length per head (over ``dim``, axis 2) when ``normalize``: scores are cosines, so
        features cannot shrink to the bilinear score's zero-gradient point (the collapse)."""
        return F.normalize(x, dim=2) if self.config.normalize else x

    def voiced(self, wave: torch.Tensor, steps: int) -> torch.Tensor:
        """``(b, steps)`` bool: audio time steps louder than ``silence_db`` (dBFS RMS); a clip
        with no loud step counts every step."""
        n = wave.shape[-1]
        edges = torch.linspace(0, n, steps + 1, device=wave.device).long()
        power = torch.stack(
            [wave[:, a:b].pow(2).mean(-1) for a, b in zip(edges[:-1], edges[1:])], -1
        )
        loud = 10.0 * torch.log10(power + 1e-10) > self.config.silence_db
        return loud | ~loud.any(-1, keepdim=True)

    # ---- similarity --------------------------------------------------------------------
    def forward(self, frames: torch.Tensor, wave: torch.Tensor) -> torch.Tensor:
        """Scores ``(b_audio, b_video)`` of every audio in ``wave (b, N)`` against every frame
        in ``frames (b, 3, H, W)``."""
        audio = self.audio_features(wave)
        return aggregate(
            similarity_volume(audio, self.visual_features(frames)),
            self.voiced(wave, audio.shape[-1]),
        )

    @torch.no_grad()
    def heatmaps(self, frames: torch.Tensor, wave: torch.Tensor, head: int | None = None):
        """Where ``wave (N,)`` comes from in each of ``frames (T, 3, H, W)``: ``(T, H, W)`` in
        [0, 1], the similarity averaged over the voiced time steps (``head``: that head, else
        the max over heads), min-max normalised per frame, upsampled to the frame size; and the
        raw per-frame maximum ``(T,)``."""
        audio = self.audio_features(wave.reshape(1, -1))[0]  # (K, D, Ta)
        voiced = self.voiced(wave.reshape(1, -1), audio.shape[-1])[0]  # (Ta,)
        raw = torch.cat(
            [
                voiced_similarity(audio, voiced, self.visual_features(frames[lo : lo + 16]), head)
                for lo in range(0, frames.shape[0], 16)
            ]
        )  # (T, h, w)
        return minmax_upsample(raw, frames.shape[-2:]), raw.flatten(1).max(1).values


def voiced_similarity(
    audio: torch.Tensor, voiced: torch.Tensor, visual: torch.Tensor, head: int | None = None
) -> torch.Tensor:
    """``(t, h, w)``: one clip's audio ``(K, D, Ta)`` against visual features ``(t, K, D, h, w)``,
    averaged over the voiced steps ``voiced (Ta,)``; the max over heads, or ``head``."""
    weight = voiced.float()
    sim = torch.einsum("kdt,vkdhw->vkhwt", audio, visual)
    sim = (sim * weight).sum(-1) / weight.sum()  # (t, K, h, w)
    return sim.max(1).values if head is None else sim[:, head]


def minmax_upsample(raw: torch.Tensor, size) -> torch.Tensor:
    """``(t, h, w)`` maps, min-max normalised per map and upsampled to ``size``, in [0, 1]."""
    lo_, hi_ = raw.flatten(1).min(1).values, raw.flatten(1).max(1).values
    norm = (raw - lo_[:, None, None]) / (hi_ - lo_).clamp_min(1e-8)[:, None, None]
    return F.interpolate(norm[:, None], size=tuple(size), mode="bilinear")[:, 0].clamp(0, 1)


def similarity_volume(audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
    """``S[a, v, k, h, w, t]`` from audio ``(A, K, D, Ta)`` and visual ``(V, K, D, h, w)``."""
    return torch.einsum("akdt,vkdhw->avkhwt", audio, visual)


def aggregate(sim: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """``(A, V, K, h, w, Ta)`` -> ``(A, V)``: max over space, mean over audio ``a``'s voiced
    steps (``voiced (A, Ta)`` bool), max over heads."""
    space = sim.flatten(3, 4).max(3).values  # (A, V, K, Ta)
    w = voiced.float()[:, None, None, :]
    time = (space * w).sum(-1) / w.sum(-1).clamp_min(1.0)  # (A, V, K)
    return time.max(-1).values


def denseav_loss(
    model: DenseAVModel, frames: torch.Tensor, wave: torch.Tensor, weights: dict | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Symmetric InfoNCE on the aggregated scores of a batch (``frames (b, 3, H, W)`` paired
    with ``wave (b, N)``) plus the regularisers; returns (loss, parts)."""
    audio = model.audio_features(wave)  # (b, K, D, Ta)
    voiced = model.voiced(wave, audio.shape[-1])  # (b, Ta)
    return contrastive_loss(model, model.visual_features(frames), audio, voiced, weights)


def contrastive_loss(
    model: DenseAVModel,
    visual: torch.Tensor,
    audio: torch.Tensor,
    voiced: torch.Tensor,
    weights: dict | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """:func:`denseav_loss` from features: ``visual (b, K, D, h, w)`` paired with ``audio
    (b, K, D, Ta)`` whose voiced steps are ``voiced (b, Ta)`` bool."""
    w = {"neg": 0.01, "silence": 0.01, "tv": 0.01, "calib": 0.01, "heads": 0.01, **(weights or {})}
    sim = similarity_volume(audio, visual)  # (b, b, K, h, w, Ta)
    scores = aggregate(sim, voiced)  # (b, b)
    logits = scores * model.log_scale.exp().clamp(max=100.0)
    target = torch.arange(scores.shape[0], device=scores.device)
    nce = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    pos = sim[target, target]  # (b, K, h, w, Ta): each audio with its own frame
    parts = {
        "nce": nce,
        # similarities of the matching pair should not go negative
        "neg": F.relu(-pos).pow(2).mean(),
        # silent steps point nowhere
        "silence": (F.relu(pos) * (~voiced)[:, None, None, None, :]).pow(2).mean(),
        # similarity changes smoothly in time
        "tv": (pos[..., 1:] - pos[..., :-1]).pow(2).mean(),
        # mismatched pairs score near zero, so that a score means the same across clips
        "calib": (scores - torch.diag(torch.diag(scores))).pow(2).mean(),
        # heads specialise: one head active at a time on the matching pair
        "heads": _head_overlap(pos.flatten(2).max(2).values),
    }
    loss = nce + sum(w[k] * v for k, v in parts.items() if k != "nce")
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def _head_overlap(peaks: torch.Tensor) -> torch.Tensor:
    """``(b, K)`` per-head peak similarities -> mean product of distinct heads' activations."""
    act = F.relu(peaks)
    k = act.shape[1]
    if k < 2:
        return act.sum() * 0.0
    prod = act[:, :, None] * act[:, None, :]
    return (prod.sum((1, 2)) - prod.diagonal(dim1=1, dim2=2).sum(1)).mean() / (k * (k - 1))
