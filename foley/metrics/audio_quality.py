"""Reconstruction quality of audio: SI-SDR, multi-scale mel distance, log-spectral distance.

Used to judge the codec against a reference degradation (8-bit mu-law, :func:`mu_law`).
Every function takes ``ref`` and ``est`` as ``(batch, num_samples)`` (or ``(num_samples,)``)
numpy arrays or tensors at the same rate and returns one value per item as a numpy array.

Definitions:
- SI-SDR (dB, higher is better): zero-mean both, project ``est`` on ``ref``;
  ``10 log10(|a ref|^2 / |a ref - est|^2)`` with ``a = <est, ref> / |ref|^2``.
- Mel distance (lower is better): mean over window sizes 64..2048 (hop = window / 4) of the mean
  absolute difference of log10 mel magnitudes (64 bands, fewer for small windows; floor 1e-5):
  the codec's training mel loss without its L2 term.
- Log-spectral distance (dB, lower is better): STFT 2048 / hop 512, power floor 1e-10; per frame
  the RMS over frequency of the difference of ``10 log10`` power, averaged over frames.
"""

from __future__ import annotations

import numpy as np
import torch

from foley.models.codec_losses import LOG_FLOOR, MEL_WINDOWS, mel_magnitude, stft_magnitude


def _pair(ref, est) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(np.asarray(ref) if not isinstance(ref, torch.Tensor) else ref)
    b = torch.as_tensor(np.asarray(est) if not isinstance(est, torch.Tensor) else est)
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if a.dim() == 1:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"ref and est must have the same (batch, N) shape: {a.shape} vs {b.shape}")
    return a, b


def si_sdr(ref, est, eps: float = 1e-8) -> np.ndarray:
    """Scale-invariant SDR in dB, one value per item."""
    a, b = _pair(ref, est)
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    scale = (a * b).sum(-1, keepdim=True) / (a.square().sum(-1, keepdim=True) + eps)
    target = scale * a
    noise = target - b
    ratio = (target.square().sum(-1) + eps) / (noise.square().sum(-1) + eps)
    return (10 * torch.log10(ratio)).numpy()


def mel_distance(ref, est, sample_rate: int = 16_000, windows=MEL_WINDOWS) -> np.ndarray:
    """Multi-scale log10-mel L1 distance, one value per item."""
    a, b = _pair(ref, est)
    out = torch.zeros(a.shape[0], dtype=torch.float64)
    for n_fft in windows:
        ma = torch.log10(mel_magnitude(a, sample_rate, n_fft).clamp_min(LOG_FLOOR))
        mb = torch.log10(mel_magnitude(b, sample_rate, n_fft).clamp_min(LOG_FLOOR))
        out += (ma - mb).abs().mean(dim=(1, 2))
    return (out / len(windows)).numpy()


def log_spectral_distance(ref, est, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Log-spectral distance in dB, one value per item."""
    a, b = _pair(ref, est)
    pa = stft_magnitude(a, n_fft, hop_length).square().clamp_min(1e-10)
    pb = stft_magnitude(b, n_fft, hop_length).square().clamp_min(1e-10)
    diff = 10 * torch.log10(pa) - 10 * torch.log10(pb)  # (batch, freqs, frames)
    return diff.square().mean(1).sqrt().mean(1).numpy()


def mu_law(wave, bits: int = 8) -> np.ndarray:
    """Mu-law companding then quantisation to ``bits`` bits and back (a reference degradation)."""
    x = np.clip(np.asarray(wave, np.float64), -1.0, 1.0)
    mu = 2**bits - 1
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)  # [-1, 1]
    q = np.round((y + 1) / 2 * mu) / mu * 2 - 1
    return (np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu).astype(np.float32)


def reconstruction_metrics(ref, est, sample_rate: int = 16_000) -> dict[str, np.ndarray]:
    """All three metrics, one array each (one value per item)."""
    return {
        "si_sdr": si_sdr(ref, est),
        "mel_distance": mel_distance(ref, est, sample_rate),
        "lsd": log_spectral_distance(ref, est),
    }
