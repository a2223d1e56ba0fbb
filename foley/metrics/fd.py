"""Frechet distance between two sets of embeddings, and the fixed embedding FD uses by default.

``mel_stats_embedding``: the documented, training-free embedding of FD-mel. Per clip, the mean
and standard deviation over time of each of 64 log-mel bands and of their first time difference
(256 numbers). It needs no downloaded network, so figures are reproducible anywhere; it sees
timbre, loudness and how much the spectrum moves (onsets), not semantics. The second FD of the
benchmark uses MC3's audio embedding (``foley.models.mc3``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from foley.audio import log_mel
from foley.config import DEFAULT_CONFIG, AVConfig


def mel_stats_embedding(waves: np.ndarray, cfg: AVConfig = DEFAULT_CONFIG) -> np.ndarray:
    """``(batch, num_samples)`` -> ``(batch, 4 * n_mels)`` float64."""
    x = torch.as_tensor(np.asarray(waves, np.float32))
    if x.dim() == 1:
        x = x[None]
    mel = log_mel(x, cfg)  # (batch, n_mels, frames)
    delta = mel[..., 1:] - mel[..., :-1]
    feats = torch.cat([mel.mean(-1), mel.std(-1), delta.mean(-1), delta.abs().mean(-1)], dim=1)
    return feats.double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """FD between Gaussians fitted to the rows of ``a`` and ``b`` (``(n, dim)`` each).

    ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``; ``eps`` on the diagonal keeps
    small sets (n < dim) well defined. Identical sets give 0.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (n, dim) arrays of one dim, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FD needs at least 2 samples per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    eye = np.eye(a.shape[1]) * eps
    s_a = np.cov(a, rowvar=False) + eye
    s_b = np.cov(b, rowvar=False) + eye
    covmean = np.real(linalg.sqrtm(s_a @ s_b))
    fd = float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2.0 * covmean))
    return max(fd, 0.0)
