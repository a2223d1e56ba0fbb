"""Video encoder: one feature per frame (per-frame CNN, then temporal mixing).

Frames come in as ``(batch, num_frames, 3, H, W)`` float in [0, 1] (``foley.io.frames_to_tensor``,
112 x 112 by default) and leave as ``(batch, num_frames, dim)``.  The per-frame tower is a small
strided CNN; a user with a pretrained ``transformers`` vision model on disk can set
``backbone_path`` to use it instead.  The backbone is frozen, loaded lazily from that directory
and kept out of the state dict (our safetensors hold only what we train: the projection and the
temporal mixer), so ``save_pretrained`` stays small and ``from_pretrained`` reloads it from the
same path.  Temporal mixing is residual 1-D convolutions over time (local, frame-synchronous) or
a small transformer; both keep the frame count.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from foley.errors import InputError

# ImageNet-ish statistics for the CNN tower's input normalisation.
_MEAN = (0.45, 0.45, 0.45)
_STD = (0.225, 0.225, 0.225)
TEMPORAL_MIXERS = ("conv", "transformer", "none")
POOLS = ("mean", "meanmax")


def _group_norm(channels: int) -> nn.GroupNorm:
    groups = 8 if channels % 8 == 0 else 1
    return nn.GroupNorm(groups, channels)


def frame_differences(
    frames: torch.Tensor, prev_frames: torch.Tensor | None = None
) -> torch.Tensor:
    """Each frame minus its predecessor: ``(B, T, C, H, W) -> (B, T, C, H, W)``.

    ``prev_frames`` (same shape): each frame's predecessor at the video rate (what a caller that
    samples a subset of a clip's frames passes).  None: the frames are taken to be consecutive,
    each one's predecessor is the previous frame of ``frames`` and the first frame's difference
    is zero (what :class:`VideoEncoder`'s ``frame_diff`` uses).
    """
    if prev_frames is not None:
        if prev_frames.shape != frames.shape:
            raise InputError(
                f"prev_frames {tuple(prev_frames.shape)} must match frames {tuple(frames.shape)}"
            )
        return frames - prev_frames.to(frames.dtype)
    return torch.cat([torch.zeros_like(frames[:, :1]), frames[:, 1:] - frames[:, :-1]], 1)


class ConvBlock(nn.Module):
    """Stride-2 conv, then a residual 3x3 conv: ``(n, c_in, h, w) -> (n, c_out, h/2, w/2)``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.norm1 = _group_norm(c_out)
        self.conv = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = _group_norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.norm1(self.down(x)))
        return x + F.silu(self.norm2(self.conv(x)))


class FrameCNN(nn.Module):
    """Small strided CNN per frame: ``(n, c_in, H, W) -> (n, out_dim)``.

    ``c_in`` is 3 (RGB) or 6 (RGB and the difference to the previous frame, see
    :class:`VideoEncoder`'s ``frame_diff``). ``pool``: ``"mean"`` (global average) or
    ``"meanmax"`` (average and maximum concatenated: a small moving hand still shows in the max).
    """

    def __init__(
        self, channels: tuple[int, ...], out_dim: int, in_channels: int = 3, pool: str = "mean"
    ) -> None:
        super().__init__()
        chans = (in_channels, *channels)
        self.pool = pool
        self.blocks = nn.Sequential(*[ConvBlock(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.proj = nn.Linear(chans[-1] * (2 if pool == "meanmax" else 1), out_dim)
        reps = in_channels // 3
        self.register_buffer(
            "mean", torch.tensor(_MEAN).repeat(reps).view(1, -1, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(_STD).repeat(reps).view(1, -1, 1, 1), persistent=False
        )
        if reps == 2:  # the difference channels are centred on 0 already
            self.mean[:, 3:] = 0.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std
        x = self.blocks(x)  # (n, C, H / 2^L, W / 2^L)
        pooled = x.mean(dim=(2, 3))
        if self.pool == "meanmax":
            pooled = torch.cat([pooled, x.amax(dim=(2, 3))], dim=1)
        return self.proj(pooled)


class _TemporalConvBlock(nn.Module):
    """Residual temporal conv: ``(batch, T, dim) -> (batch, T, dim)``."""

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.norm(x).transpose(1, 2)).transpose(1, 2)  # (batch, T, dim)
        return x + self.out(F.gelu(h))


class _FrozenBackbone:
    """A ``transformers`` vision model kept outside the module tree (not in the state dict).

    Loaded on first use from ``path`` with ``AutoModel.from_pretrained`` (local files only),
    frozen, in eval mode, moved to the caller's device on demand.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.model: nn.Module | None = None
        self.mean = (0.5, 0.5, 0.5)
        self.std = (0.5, 0.5, 0.5)
        self.image_size: int | None = None

    def load(self) -> nn.Module:
        if self.model is None:
            from transformers import AutoModel

            self._check_dir()
            path = Path(self.path)
            model = AutoModel.from_pretrained(str(path), local_files_only=True)
            model.requires_grad_(False).eval()
            proc = path / "preprocessor_config.json"
            if proc.is_file():
                meta = json.loads(proc.read_text())
                self.mean = tuple(meta.get("image_mean", self.mean))
                self.std = tuple(meta.get("image_std", self.std))
            cfg = getattr(model.config, "vision_config", model.config)
            size = getattr(cfg, "image_size", None)
            self.image_size = int(size) if isinstance(size, int) else None
            self.model = model
        return self.model

    def feature_dim(self) -> int:
        """Output size, read from ``config.json`` alone (no weights are loaded here, so that
        building the encoder under diffusers' empty-weights init does not touch the backbone)."""
        from transformers import AutoConfig

        self._check_dir()
        cfg = AutoConfig.from_pretrained(self.path, local_files_only=True)
        if getattr(cfg, "projection_dim", None) and hasattr(cfg, "vision_config"):
            return int(cfg.projection_dim)
        return int(getattr(cfg, "vision_config", cfg).hidden_size)

    def _check_dir(self) -> None:
        if not (Path(self.path) / "config.json").is_file():
            raise InputError(
                f"video backbone {self.path!r} is not a transformers model directory "
                "(no config.json); set backbone_path to a local folder saved with save_pretrained"
            )

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` in [0, 1] -> ``(n, feature_dim)``."""
        model = self.load()
        param = next(model.parameters())
        if param.device != images.device:
            model.to(images.device)
        x = images.to(param.dtype)
        size = self.image_size
        if size and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        x = (x - mean) / std
        if hasattr(model, "get_image_features"):
            out = model.get_image_features(pixel_values=x)
            return out if torch.is_tensor(out) else out.pooler_output
        out = model(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state.mean(dim=1)
        return pooled.reshape(pooled.shape[0], -1).float()


class VideoEncoder(ModelMixin, ConfigMixin):
    """Frames ``(batch, T, 3, H, W)`` in [0, 1] -> per-frame features ``(batch, T, dim)``.

    Args:
        dim: output feature size per frame.
        channels: CNN widths; each stage halves the resolution (112 -> 7 with four stages).
        temporal_mixer: ``"conv"`` (residual 1-D convs), ``"transformer"`` or ``"none"``.
        temporal_layers: number of mixing blocks.
        temporal_kernel: kernel size of the conv mixer, in frames (odd).
        num_heads: heads of the transformer mixer.
        max_frames: length of the learned position table of the transformer mixer.
        backbone_path: optional local directory of a ``transformers`` vision model (frozen, not
            saved with our weights; it must exist again wherever this encoder is loaded).
        frame_chunk: frames per backbone/CNN call, to bound memory on long videos.
        frame_diff: also feed the CNN each frame's difference to the previous one (the first
            frame of a clip gets zeros): motion, and so contact timing, becomes local evidence
            (the sync encoder of ``training/train_sync.py``). CNN tower only.
        input_size: resize frames to ``input_size`` x ``input_size`` (area) before the CNN;
            None keeps the input size.
        pool: spatial pooling of the CNN tower, ``"mean"`` or ``"meanmax"``.
    """

    @register_to_config
    def __init__(
        self,
        dim: int = 256,
        channels: tuple[int, ...] = (32, 64, 128, 256),
        temporal_mixer: str = "conv",
        temporal_layers: int = 2,
        temporal_kernel: int = 3,
        num_heads: int = 4,
        max_frames: int = 512,
        backbone_path: str | None = None,
        frame_chunk: int = 256,
        frame_diff: bool = False,
        input_size: int | None = None,
        pool: str = "mean",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, not {pool!r}")
        if frame_diff and backbone_path:
            raise ValueError("frame_diff needs the CNN tower (no backbone_path)")
        if temporal_mixer not in TEMPORAL_MIXERS:
            raise ValueError(
                f"temporal_mixer must be one of {TEMPORAL_MIXERS}, not {temporal_mixer!r}"
            )
        if temporal_kernel % 2 == 0:
            raise ValueError("temporal_kernel must be odd (it keeps the frame count)")
        self._backbone = _FrozenBackbone(backbone_path) if backbone_path else None
        if self._backbone is None:
            in_channels = 6 if frame_diff else 3
            self.frame_net: nn.Module = FrameCNN(tuple(channels), dim, in_channels, pool)
        else:
            self.frame_net = nn.Linear(self._backbone.feature_dim(), dim)
        if temporal_mixer == "conv":
            self.mixer = nn.ModuleList(
                _TemporalConvBlock(dim, temporal_kernel) for _ in range(temporal_layers)
            )
        elif temporal_mixer == "transformer":
            self.pos = nn.Parameter(torch.zeros(1, max_frames, dim))
            layer = nn.TransformerEncoderLayer(
                dim, num_heads, dim * 2, dropout=0.0, batch_first=True, norm_first=True
            )
            self.mixer = nn.TransformerEncoder(layer, temporal_layers, enable_nested_tensor=False)
        else:
            self.mixer = nn.ModuleList()
        self.norm_out = nn.LayerNorm(dim)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features before temporal mixing: ``(batch, T, 3, H, W) -> (batch, T, dim)``."""
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be (batch, T, 3, H, W), got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        frames = frames.to(self.norm_out.weight.dtype)
        size = self.config.input_size
        if size and tuple(frames.shape[-2:]) != (size, size):
            small = F.interpolate(
                frames.reshape(b * t, *frames.shape[2:]), size=(size, size), mode="area"
            )
            frames = small.reshape(b, t, 3, size, size)
        if self.config.frame_diff:
            frames = torch.cat([frames, frame_differences(frames)], dim=2)  # (batch, T, 6, H, W)
        flat = frames.reshape(b * t, *frames.shape[2:])
        chunk = self.config.frame_chunk
        feats = []
        for i in range(0, flat.shape[0], chunk):
            part = flat[i : i + chunk]
            if self._backbone is not None:
                part = self._backbone(part)
            feats.append(self.frame_net(part))
        return torch.cat(feats).reshape(b, t, -1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(batch, T, 3, H, W)`` float in [0, 1] -> ``(batch, T, dim)``."""
        x = self.frame_features(frames)
        if self.config.temporal_mixer == "transformer":
            t = x.shape[1]
            if t > self.config.max_frames:
                raise ValueError(f"{t} frames exceed max_frames={self.config.max_frames}")
            x = self.mixer(x + self.pos[:, :t])
        else:
            for block in self.mixer:
                x = block(x)
        return self.norm_out(x)
