"""Frame-rate encoder and decoder of :class:`~foley.models.codec.FoleyCodec` ("stft" architecture).

Both work at the latent rate (50 frames a second), never at the sample rate, which is what makes
them cheap to train on a CPU (the idea of Vocos, Siuzdak 2023):

- :class:`STFTEncoder`: a "same"-padded STFT (window ``4 * hop``, hop 320) whose frames line up
  one to one with the latent frames; per frame the log magnitude and the power-law compressed
  complex spectrum (``|X|^0.3 e^{i phase}``, so the phase is in the input), a 1x1 projection,
  a ConvNeXt stack, a linear map to ``latent_dim``.
- :class:`STFTDecoder`: a 1x1 projection of the latents, a ConvNeXt stack, a linear head giving a
  log magnitude and a phase per bin; the complex spectrum is inverted by :func:`istft_same`,
  the overlap-add inverse of the encoder's framing, so ``frames * hop`` samples come back.

Shapes: waves ``(batch, num_samples)`` with ``num_samples`` a multiple of the hop; features and
latents ``(batch, channels, frames)`` inside, ``frames = num_samples / hop``.
"""

from __future__ import annotations

import torch
from torch import nn

MAG_COMPRESS = 0.3
"""Exponent of the compressed complex spectrum the encoder sees."""
MAX_LOG_MAG = 8.0
"""Clamp of the decoder's predicted log magnitude (exp(8) ~ 3000: far above any real bin)."""


def stft_same(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT with "same" padding: ``(batch, n_fft // 2 + 1, N / hop)``.

    The wave is zero-padded by ``(n_fft - hop) / 2`` on both sides and framed without centring,
    so frame ``t`` is centred on samples ``[t * hop, (t + 1) * hop)``.
    """
    pad = (n_fft - hop) // 2
    x = nn.functional.pad(wave, (pad, pad))
    window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    return torch.stft(x, n_fft, hop_length=hop, window=window, center=False, return_complex=True)


def istft_same(spec: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Inverse of :func:`stft_same`: ``(batch, bins, frames)`` complex -> ``(batch, frames * hop)``.

    Windowed overlap-add divided by the summed squared window (the envelope), then the padding
    trimmed; ``torch.istft`` cannot do this framing (it only inverts centred frames).
    """
    batch, _, frames = spec.shape
    pad = (n_fft - hop) // 2
    window = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
    pieces = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # (B, n_fft, T)
    length = (frames - 1) * hop + n_fft
    y = nn.functional.fold(pieces, (1, length), kernel_size=(1, n_fft), stride=(1, hop))
    envelope = nn.functional.fold(
        window.square()[None, :, None].expand(1, n_fft, frames),
        (1, length),
        kernel_size=(1, n_fft),
        stride=(1, hop),
    )
    y = y[:, 0, 0, pad : length - pad]
    envelope = envelope[0, 0, 0, pad : length - pad]
    return y / envelope.clamp_min(1e-8)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (kernel 7) -> LayerNorm -> pointwise MLP (GELU) -> layer scale, residual."""

    def __init__(self, dim: int, mult: int = 3, layer_scale: float = 1e-2) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, dim * mult)
        self.pw2 = nn.Linear(dim * mult, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, dim, frames)
        y = self.dwconv(x).transpose(1, 2)  # (batch, frames, dim)
        y = self.pw2(nn.functional.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class _Stack(nn.Module):
    """``in_dim`` channels -> ConvNeXt stack at ``dim`` -> ``out_dim`` channels (per frame)."""

    def __init__(
        self, in_dim: int, dim: int, out_dim: int, layers: int, mult: int, kernel: int = 7
    ) -> None:
        super().__init__()
        self.embed = nn.Conv1d(in_dim, dim, kernel_size=kernel, padding=kernel // 2)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, mult, 1.0 / max(layers, 1)) for _ in range(layers)
        )
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, in_dim, frames)
        x = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm_out(x.transpose(1, 2))).transpose(1, 2)  # (B, out, T)


class STFTEncoder(nn.Module):
    """Waves ``(batch, 1, frames * hop)`` -> raw latents ``(batch, latent_dim, frames)``."""

    def __init__(self, hop: int, n_fft: int, latent_dim: int, dim: int, layers: int, mult: int):
        super().__init__()
        self.hop, self.n_fft = hop, n_fft
        bins = n_fft // 2 + 1
        # a 1x1 embedding of the wide spectral input (the STFT window already spans 4 frames)
        self.stack = _Stack(3 * bins, dim, latent_dim, layers, mult, kernel=1)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, 3 * bins, frames)``: log magnitude, compressed real and imaginary parts."""
        spec = stft_same(wave, self.n_fft, self.hop)
        mag = spec.abs().clamp_min(1e-5)
        compressed = spec * (mag ** (MAG_COMPRESS - 1.0))  # |X|^0.3 e^{i phase}
        return torch.cat([mag.log(), compressed.real, compressed.imag], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stack(self.features(x[:, 0]))


class STFTDecoder(nn.Module):
    """Raw latents ``(batch, latent_dim, frames)`` -> waves ``(batch, 1, frames * hop)``."""

    def __init__(self, hop: int, n_fft: int, latent_dim: int, dim: int, layers: int, mult: int):
        super().__init__()
        self.hop, self.n_fft = hop, n_fft
        self.bins = n_fft // 2 + 1
        self.stack = _Stack(latent_dim, dim, 2 * self.bins, layers, mult)

    def spectrum(self, z: torch.Tensor) -> torch.Tensor:
        """The predicted complex spectrum ``(batch, bins, frames)``."""
        log_mag, phase = self.stack(z).split(self.bins, dim=1)
        mag = log_mag.clamp(max=MAX_LOG_MAG).exp()
        return torch.polar(mag.float(), phase.float())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return istft_same(self.spectrum(z), self.n_fft, self.hop).unsqueeze(1).to(z.dtype)
