"""Audio front end shared by MC3, AVS, the codec losses and the metrics.

Waves are float32 in [-1, 1], mono, ``(batch, num_samples)`` (a 1-D wave is treated as batch 1).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from foley.config import DEFAULT_CONFIG, AVConfig

_EPS = 1e-10


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Slaney-style triangular mel filters, ``(n_mels, n_fft // 2 + 1)``."""
    import torchaudio

    return torchaudio.functional.melscale_fbanks(
        n_freqs=n_fft // 2 + 1,
        f_min=0.0,
        f_max=sample_rate / 2,
        n_mels=n_mels,
        sample_rate=sample_rate,
        norm="slaney",
        mel_scale="slaney",
    ).T.contiguous()


def log_mel(
    wave: torch.Tensor,
    cfg: AVConfig = DEFAULT_CONFIG,
    *,
    n_fft: int | None = None,
    hop_length: int | None = None,
    n_mels: int | None = None,
) -> torch.Tensor:
    """Log-mel spectrogram, ``(batch, n_mels, cfg.num_mel_frames(num_samples))``.

    Natural log of power with a 1e-5 floor; centred STFT with a Hann window.
    """
    n_fft = n_fft or cfg.n_fft
    hop_length = hop_length or cfg.mel_hop_length
    n_mels = n_mels or cfg.n_mels
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)
    window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(
        wave,
        n_fft=n_fft,
        hop_length=hop_length,
        window=window,
        center=True,
        pad_mode="reflect" if wave.shape[-1] > n_fft // 2 else "constant",
        return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()  # (batch, freqs, frames)
    fb = mel_filterbank(cfg.sample_rate, n_fft, n_mels).to(wave.device, wave.dtype)
    mel = torch.einsum("mf,bft->bmt", fb, power)
    return torch.log(mel.clamp_min(1e-5))


def dbfs(wave: np.ndarray | torch.Tensor) -> float:
    """RMS level in dBFS (a full-scale sine is -3 dBFS); silence gives -100."""
    x = np.asarray(wave.detach().cpu() if isinstance(wave, torch.Tensor) else wave, np.float64)
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    return max(20.0 * np.log10(rms + _EPS), -100.0)


def to_mono(wave: np.ndarray) -> np.ndarray:
    """``(num_samples,)`` or ``(num_samples, channels)`` -> ``(num_samples,)`` float32."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    return np.ascontiguousarray(wave)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling of a mono wave (polyphase, scipy)."""
    if orig_sr == target_sr:
        return np.asarray(wave, dtype=np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(orig_sr), int(target_sr))
    out = resample_poly(np.asarray(wave, np.float64), target_sr // g, orig_sr // g)
    return out.astype(np.float32)


def fit_length(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Trim or zero-pad the last axis to ``num_samples``."""
    n = wave.shape[-1]
    if n >= num_samples:
        return wave[..., :num_samples]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, num_samples - n)]
    return np.pad(wave, pad)
