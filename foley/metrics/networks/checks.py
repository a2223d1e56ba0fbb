"""Checks of the evaluation networks against what the originals are known to answer.

- EfficientNet-Lite0 on matplotlib's sample photograph of Grace Hopper (``grace_hopper.jpg``,
  shipped with matplotlib): ImageNet's "military uniform";
- SoundNet-8 on synthetic sounds (:func:`check_sounds`): pink noise sounds like flowing water
  (creek, waterfall...), a 40 Hz sawtooth like an engine (runway, cockpit, highway).

Used by ``tests/test_metrics_pretrained.py`` and ``benchmarks/pretrained_metrics_time.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from foley.metrics.networks.soundnet import SAMPLE_RATE, class_names


def grace_hopper(size: int = 224) -> torch.Tensor:
    """matplotlib's sample photograph, centre-cropped and resized: ``(1, 3, size, size)`` in
    [0, 1]."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = Image.open(f).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((size, size))
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0


def pink_noise(num_samples: int, seed: int = 0) -> np.ndarray:
    """``(num_samples,)`` 1/f noise at peak 0.5."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(num_samples))
    spec /= np.sqrt(np.maximum(np.arange(spec.size), 1))
    x = np.fft.irfft(spec, num_samples)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def check_sounds(seconds: float = 3.0, sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Recognisable synthetic sounds ``(N,)`` at ``sample_rate``."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    noise = np.random.default_rng(1).standard_normal(n)
    engine = 0.5 * (2 * ((t * 40) % 1) - 1) + 0.05 * noise
    return {
        "pink noise": pink_noise(n),
        "40 Hz sawtooth + noise (engine)": engine.astype(np.float32),
        "silence": np.zeros(n, np.float32),
    }


def top_classes(probs: torch.Tensor | np.ndarray, names: tuple[str, ...], k: int = 3) -> list:
    """The ``k`` most probable ``(name, probability)`` of a ``(classes,)`` distribution."""
    p = torch.as_tensor(np.asarray(probs)).reshape(-1)
    return [(names[int(i)].split(",")[0], float(p[i])) for i in p.topk(k).indices]


@torch.no_grad()
def efficientnet_on_grace_hopper(net, k: int = 3) -> list[tuple[str, float]]:
    """Top-``k`` ImageNet classes of an :class:`EfficientNetLite0` on the photograph."""
    return top_classes(net(grace_hopper()).softmax(-1)[0], class_names()[0], k)


@torch.no_grad()
def soundnet_on(net, wave: np.ndarray, k: int = 3) -> tuple[list, list]:
    """Top-``k`` (Places scenes, ImageNet objects) of a :class:`SoundNet8` on ``wave`` at
    22,050 Hz."""
    objects, places = net(torch.as_tensor(wave, dtype=torch.float32)[None])
    names_o, names_p = class_names()
    p_places = places.softmax(-1).mean(1)[0]
    return top_classes(p_places, names_p, k), top_classes(
        objects.softmax(-1).mean(1)[0], names_o, k
    )
