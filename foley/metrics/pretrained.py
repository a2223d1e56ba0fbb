"""Quality in embeddings nobody here trained: ``FD_aisfx``, ``KL_soundnet``, ``AV_agree``.

The field reports FD / KL / an audio-visual score in pretrained networks (MMAudio's
av-benchmark: FD_PANNs, KL_PANNs, ImageBind score). Ours use the networks that ship their
weights in pip packages (``requirements-weights.lock``, :mod:`foley.metrics.networks`):

- ``FD_aisfx``: Frechet distance between two sets of clips in the aisfx sound-effects embedding
  (512-d, the mean over the clip's 2.3 s blocks); the FD_VGGish / FD_PANNs analogue.
- ``KL_soundnet``: mean over clip pairs of ``KL(p_ref || p_gen)``, ``p`` SoundNet-8's
  distribution over 1000 ImageNet objects (softmax of ``conv8``, averaged over its output steps);
  the KL_PANNs analogue (SoundNet was trained to match these distributions with a KL loss).
- ``AV_agree``: Bhattacharyya coefficient ``sum_c sqrt(p_audio(c) p_video(c))`` in [0, 1] between
  SoundNet's ImageNet distribution of the audio and EfficientNet-Lite0's of the frames (mean of
  its softmax over frames sampled at ``frame_rate`` per second); 1 only when the two networks
  agree exactly. Needs no reference audio: the ImageBind-score analogue.

:class:`PretrainedJudges` loads the three networks once and runs them batched on one device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchaudio

from foley.metrics.fd import frechet_distance
from foley.metrics.networks.aisfx import SAMPLE_RATE as AISFX_RATE
from foley.metrics.networks.aisfx import AisfxEmbedding
from foley.metrics.networks.efficientnet import EfficientNetLite0
from foley.metrics.networks.soundnet import SAMPLE_RATE as SOUNDNET_RATE
from foley.metrics.networks.soundnet import SoundNet8

EPS = 1e-8


def fd_aisfx(a: np.ndarray, b: np.ndarray) -> float:
    """FD between two sets of aisfx embeddings ``(n, 512)`` each (n >= 2)."""
    return frechet_distance(a, b)


def kl_divergence(p_ref: np.ndarray, p_gen: np.ndarray) -> np.ndarray:
    """Per row ``KL(p_ref || p_gen)`` (nats) of distributions ``(n, classes)`` -> ``(n,)``."""
    p = np.clip(np.asarray(p_ref, np.float64), EPS, None)
    q = np.clip(np.asarray(p_gen, np.float64), EPS, None)
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    return np.maximum((p * (np.log(p) - np.log(q))).sum(-1), 0.0)


def kl_soundnet(p_ref: np.ndarray, p_gen: np.ndarray) -> float:
    """Mean paired KL of SoundNet object distributions ``(n, 1000)``: 0 for identical audio."""
    return float(kl_divergence(p_ref, p_gen).mean())


def av_agree(p_audio: np.ndarray, p_video: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient of ImageNet distributions ``(n, 1000)`` -> ``(n,)`` in [0, 1]."""
    p, q = np.asarray(p_audio, np.float64), np.asarray(p_video, np.float64)
    return np.sqrt(np.clip(p, 0, None) * np.clip(q, 0, None)).sum(-1)


@dataclass
class AudioJudgement:
    """The pretrained networks' view of a batch of soundtracks."""

    aisfx: np.ndarray  # (batch, 512) float64, FD_aisfx's embedding
    objects: np.ndarray  # (batch, 1000) float64, SoundNet's ImageNet distribution
    places: np.ndarray  # (batch, 401) float64, SoundNet's Places distribution


class PretrainedJudges:
    """aisfx, SoundNet-8 and EfficientNet-Lite0, loaded once, on one device.

    A network that is not installed raises :class:`~foley.errors.MissingNetworkError` (one
    line) when the judges are built.
    """

    def __init__(self, device: str | torch.device = "cpu", frame_rate: float = 2.0) -> None:
        self.device = torch.device(device)
        self.frame_rate = float(frame_rate)
        self.aisfx = AisfxEmbedding.from_package().to(self.device)
        self.soundnet = SoundNet8.from_package().to(self.device)
        self.efficientnet = EfficientNetLite0.from_package().to(self.device)

    def _batch(self, waves: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(waves, np.float32)).to(self.device)
        return x[None] if x.dim() == 1 else x  # (batch, N)

    @torch.no_grad()
    def embed(self, waves: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
        """``waves (batch, N)`` at ``sample_rate`` -> aisfx embeddings ``(batch, 512)`` only."""
        x = torchaudio.functional.resample(self._batch(waves), sample_rate, AISFX_RATE)
        return self.aisfx(x).double().cpu().numpy()

    @torch.no_grad()
    def audio(self, waves: np.ndarray | torch.Tensor, sample_rate: int) -> AudioJudgement:
        """``waves (batch, N)`` float in [-1, 1] at ``sample_rate`` -> :class:`AudioJudgement`."""
        x = self._batch(waves)
        emb = self.aisfx(torchaudio.functional.resample(x, sample_rate, AISFX_RATE))
        objects, places = self.soundnet(
            torchaudio.functional.resample(x, sample_rate, SOUNDNET_RATE)
        )  # (batch, T, classes) logits

        def dist(logits: torch.Tensor) -> np.ndarray:
            return logits.softmax(-1).mean(1).double().cpu().numpy()

        return AudioJudgement(emb.double().cpu().numpy(), dist(objects), dist(places))

    @torch.no_grad()
    def frames(self, frames: torch.Tensor, fps: float, batch_size: int = 16) -> np.ndarray:
        """``(T, 3, H, W)`` in [0, 1] at ``fps`` -> ``(1000,)``: EfficientNet-Lite0's ImageNet
        distribution, the mean over frames sampled ``frame_rate`` times a second."""
        step = max(1, round(float(fps) / self.frame_rate))
        picked = frames[step // 2 :: step] if frames.shape[0] > step // 2 else frames[:1]
        probs = [
            self.efficientnet(picked[i : i + batch_size].to(self.device)).softmax(-1)
            for i in range(0, picked.shape[0], batch_size)
        ]
        return torch.cat(probs).mean(0).double().cpu().numpy()
