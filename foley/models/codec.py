"""FoleyCodec: the autoencoder whose continuous latents the diffusion model denoises.

Two architectures behind one API, chosen by ``architecture`` in the config:
- ``"seanet"``: a SEANet encoder and decoder (the ``encodec`` package's modules) with no
  quantiser, convolving at the sample rate (the first shipped codec);
- ``"stft"``: a Vocos-style pair working at the frame rate (:mod:`foley.models.stft_codec`): an
  encoder over STFT frames and a ConvNeXt decoder predicting STFT magnitude and phase, inverted by
  overlap-add; far cheaper per training step.
Either way: 16 kHz mono audio in, ``latent_dim`` channels at ``sample_rate / hop_length`` = 50
frames per second out.
The latents handed to the rest of the system are normalised per channel,
``(raw - latent_mean) / latent_std``, with the statistics measured on training audio after
training and stored in the config (:meth:`FoleyCodec.set_latent_stats`), so that diffusion sees
roughly unit-scale latents and ``from_pretrained`` restores them with no extra file.

Shapes: waves ``(batch, num_samples)`` float in [-1, 1]; latents
``(batch, latent_frames, latent_dim)`` with ``latent_frames = ceil(num_samples / hop_length)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from foley.errors import InputError, ModelMismatchError


def _seanet(**kwargs) -> tuple[nn.Module, nn.Module]:
    from encodec.modules import SEANetDecoder, SEANetEncoder

    with warnings.catch_warnings():
        # encodec builds its convolutions with torch.nn.utils.weight_norm (deprecated, still fine)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        return SEANetEncoder(**kwargs), SEANetDecoder(**kwargs)


class FoleyCodec(ModelMixin, ConfigMixin):
    """SEANet autoencoder with continuous, normalised latents.

    Args:
        sample_rate: audio rate in Hz (16 kHz in this project).
        ratios: decoder up-sampling ratios (the encoder uses them reversed); their product is
            the hop, ``cfg.hop_length`` (320 samples = 20 ms at 16 kHz).
        latent_dim: latent channels.
        n_filters: SEANet base width (channels at full rate; doubled at each down-sampling).
        n_residual_layers: residual blocks per resolution.
        lstm_layers: LSTM layers at the bottleneck (0 for none).
        architecture: ``"seanet"`` (the arguments above) or ``"stft"`` (the ones below).
        stft_dim, stft_layers, stft_mult: width, ConvNeXt blocks and MLP ratio of each stack of
            the ``"stft"`` architecture; its STFT window is ``4 * hop``.
        latent_mean, latent_std: per-channel statistics of the raw latents (``latent_dim``
            floats each); ``None`` means 0 and 1 (an untrained or freshly trained codec).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 16_000,
        ratios: Sequence[int] = (8, 5, 4, 2),
        latent_dim: int = 64,
        n_filters: int = 32,
        n_residual_layers: int = 1,
        lstm_layers: int = 2,
        latent_mean: Sequence[float] | None = None,
        latent_std: Sequence[float] | None = None,
        architecture: str = "seanet",
        stft_dim: int = 256,
        stft_layers: int = 6,
        stft_mult: int = 3,
    ) -> None:
        super().__init__()
        if latent_dim < 1 or n_filters < 1:
            raise ValueError("latent_dim and n_filters must be positive")
        if architecture == "seanet":
            self.encoder, self.decoder = _seanet(
                channels=1,
                dimension=latent_dim,
                n_filters=n_filters,
                n_residual_layers=n_residual_layers,
                ratios=list(ratios),
                lstm=lstm_layers,
            )
            self._init_variance_preserving()
        elif architecture == "stft":
            from foley.models.stft_codec import STFTDecoder, STFTEncoder

            hop = int(np.prod(ratios))
            sizes = dict(latent_dim=latent_dim, dim=stft_dim, layers=stft_layers, mult=stft_mult)
            self.encoder = STFTEncoder(hop, 4 * hop, **sizes)
            self.decoder = STFTDecoder(hop, 4 * hop, **sizes)
        else:
            raise ModelMismatchError(
                f"unknown codec architecture {architecture!r} (expected 'seanet' or 'stft')"
            )
        mean, std = self._check_stats(latent_mean, latent_std, latent_dim)
        # Not saved in the weights: the config is the one place these live.
        self.register_buffer("_latent_mean", mean, persistent=False)
        self.register_buffer("_latent_std", std, persistent=False)

    @torch.no_grad()
    def _init_variance_preserving(self) -> None:
        """Re-draw every convolution as N(0, 1 / fan_in) (torch's default shrinks the signal by
        about 1/sqrt(3) per layer: through SEANet's ~15 layers an untrained encoder's latents
        barely depend on quiet input, and training sits a long time at "output the mean")."""
        for module in self.modules():
            if not isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                continue
            v = getattr(module, "weight_v", None)
            v = module.weight if v is None else v
            k, stride = module.kernel_size[0], module.stride[0]
            if isinstance(module, nn.Conv1d):
                fan_in = v.shape[1] * k
            else:  # (in, out, k): each output sample sees in * k / stride weights
                fan_in = max(1, v.shape[0] * k // stride)
            v.normal_(0.0, fan_in**-0.5)
            g = getattr(module, "weight_g", None)
            if g is not None:  # weight_norm: keep weight == v at init
                g.copy_(torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True))
            if module.bias is not None:
                module.bias.zero_()

    # ---- sizes -----------------------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        """Samples per latent frame (320)."""
        return int(np.prod(self.config.ratios))

    @property
    def latent_rate(self) -> float:
        """Latent frames per second (50.0)."""
        return self.config.sample_rate / self.hop_length

    def num_latents(self, num_samples: int) -> int:
        return math.ceil(num_samples / self.hop_length)

    # ---- normalisation ---------------------------------------------------------------------
    @staticmethod
    def _check_stats(mean, std, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        mean_t = torch.zeros(latent_dim) if mean is None else torch.tensor(list(mean))
        std_t = torch.ones(latent_dim) if std is None else torch.tensor(list(std))
        if mean_t.shape != (latent_dim,) or std_t.shape != (latent_dim,):
            raise ModelMismatchError(
                f"latent statistics must have {latent_dim} values each "
                f"(got {mean_t.numel()} and {std_t.numel()})"
            )
        if not bool(torch.all(std_t > 0)):
            raise ValueError("latent_std must be positive")
        return mean_t.float(), std_t.float()

    def set_latent_stats(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Record per-channel statistics of raw latents in the config (saved with the model)."""
        mean_t, std_t = self._check_stats(mean, std, self.config.latent_dim)
        self.register_to_config(
            latent_mean=[float(v) for v in mean], latent_std=[float(v) for v in std]
        )
        self._latent_mean.copy_(mean_t.to(self._latent_mean.device))
        self._latent_std.copy_(std_t.to(self._latent_std.device))

    @torch.no_grad()
    def measure_latent_stats(
        self, waves: Iterable[torch.Tensor], min_std: float = 1e-3
    ) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of raw latents over batches of waves ``(batch, N)``."""
        total = torch.zeros(self.config.latent_dim, dtype=torch.float64)
        total_sq = torch.zeros_like(total)
        count = 0
        for wave in waves:
            z = self.encode_raw(wave).double().cpu()  # (batch, frames, latent_dim)
            z = z.reshape(-1, z.shape[-1])
            total += z.sum(0)
            total_sq += z.square().sum(0)
            count += z.shape[0]
        if count == 0:
            raise InputError("no audio to measure the latent statistics on")
        mean = total / count
        std = (total_sq / count - mean.square()).clamp_min(0).sqrt().clamp_min(min_std)
        return mean.tolist(), std.tolist()

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw latents -> unit-scale latents (last axis is the channel)."""
        return (raw - self._latent_mean.to(raw.dtype)) / self._latent_std.to(raw.dtype)

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        return latents * self._latent_std.to(latents.dtype) + self._latent_mean.to(latents.dtype)

    # ---- encode / decode -------------------------------------------------------------------
    def _as_batch(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        wave = torch.as_tensor(wave)
        if wave.dim() != 2:
            raise InputError(
                f"the codec takes audio as (batch, num_samples), got shape {tuple(wave.shape)}"
            )
        if wave.shape[-1] == 0:
            raise InputError("the audio has no samples")
        return wave.to(device=self.device, dtype=self.dtype)

    def _as_latents(self, latents: torch.Tensor) -> torch.Tensor:
        latents = torch.as_tensor(latents).to(device=self.device, dtype=self.dtype)
        if latents.dim() != 3 or latents.shape[-1] != self.config.latent_dim:
            raise ModelMismatchError(
                f"latents must be (batch, frames, {self.config.latent_dim}), "
                f"got shape {tuple(latents.shape)}"
            )
        return latents

    def encode_raw(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Un-normalised latents ``(batch, ceil(N / hop), latent_dim)`` of waves ``(batch, N)``.

        The wave is zero-padded on the right to a whole number of hops first.
        """
        wave = self._as_batch(wave)
        n = wave.shape[-1]
        pad = self.num_latents(n) * self.hop_length - n
        x = nn.functional.pad(wave, (0, pad)).unsqueeze(1)  # (batch, 1, frames * hop)
        z = self.encoder(x)  # (batch, latent_dim, frames)
        return z.transpose(1, 2)

    def decode_raw(self, raw: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        """Raw latents ``(batch, frames, latent_dim)`` -> waves ``(batch, num_samples)``."""
        raw = self._as_latents(raw)
        frames = raw.shape[1]
        full = frames * self.hop_length
        if num_samples is None:
            num_samples = full
        if not 0 < num_samples <= full:
            raise InputError(
                f"num_samples must be in 1..{full} for {frames} latent frames, got {num_samples}"
            )
        y = self.decoder(raw.transpose(1, 2))  # (batch, 1, frames * hop)
        return y[:, 0, :num_samples]

    def encode(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Waves ``(batch, N)`` -> unit-scale latents ``(batch, ceil(N / 320), latent_dim)``."""
        return self.normalize(self.encode_raw(wave))

    def decode(self, latents: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        """Unit-scale latents ``(batch, frames, latent_dim)`` -> waves ``(batch, num_samples)``.

        ``num_samples`` defaults to ``frames * 320``; pass the original length to get it back.
        """
        return self.decode_raw(self.denormalize(self._as_latents(latents)), num_samples)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction for training: ``(recon (batch, N), raw latents (batch, frames, dim))``."""
        raw = self.encode_raw(wave)
        return self.decode_raw(raw, wave.shape[-1]), raw
