"""The aisfx sound-effects embedding (ISMIR 2022, "X-Sequential-CE") from ``aisfx``'s checkpoint.

A 4-block 2-d CNN (DCASE cross-task baseline: 64-128-256-512 channels, max pooling) trained on
nine commercial sound-effects libraries; the embedding is the last block's maximum over time of
its mean over frequency, 512-d. Only ``embedding_net.*`` of the checkpoint (a tuple
``(state_dict, dataset_dict)``) is used: the classifier heads' class names are not shipped.

Front end as the package's ``preprocessing`` and ``spectrogram_librosa`` compute it, in torch:
44,100 Hz audio normalised to peak 1, STFT 2048 / hop 1024 (Hann, centred), power, 96 HTK mel
bands 0-22,050 Hz with unit-sum filters, ``log10(1e4 * x + 1)``, divided by 9.4578 (the
package's "original" min-max); blocks of 100 frames (about 2.3 s) with a hop of 50 frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from foley.metrics.networks import weight_file

SAMPLE_RATE = 44_100
N_FFT, HOP, N_MELS = 2048, 1024, 96
BLOCK_FRAMES, BLOCK_HOP = 100, 50
SPEC_MAX = 9.457798957824707  # aisfx.preprocessing.spectrogram_normalize, "original"
EMBED_DIM = 512


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.max_pool2d(x, pool) if pool > 1 else x


class AisfxEmbedding(nn.Module):
    """``forward(wave (batch, N) at 44,100 Hz)`` -> ``(batch, 512)``, the mean over its blocks."""

    def __init__(self) -> None:
        super().__init__()
        chans = (1, 64, 128, 256, 512)
        for i in range(4):
            self.add_module(f"conv_block{i + 1}", _ConvBlock(chans[i], chans[i + 1]))
        fb = torchaudio.functional.melscale_fbanks(
            N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm=None, mel_scale="htk"
        )  # (freqs, mels)
        self.register_buffer("mel_fb", fb / fb.sum(0).clamp_min(1e-10), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    @classmethod
    def from_package(cls) -> AisfxEmbedding:
        state, _datasets = torch.load(weight_file("aisfx"), map_location="cpu", weights_only=False)
        prefix = "embedding_net."
        net = cls()
        net.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        return net.eval()

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, N)`` -> normalised log-mel ``(batch, frames, 96)``."""
        peak = wave.abs().amax(-1, keepdim=True)
        x = wave / torch.where(peak > 0, peak, torch.ones_like(peak))
        spec = torch.stft(
            x, N_FFT, HOP, window=self.window, center=True, pad_mode="constant", return_complex=True
        )
        mel = (spec.abs() ** 2).transpose(1, 2) @ self.mel_fb  # (batch, frames, mels)
        return torch.log10(mel * 1e4 + 1.0) / SPEC_MAX

    def embed_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        """``(batch, 100, 96)`` spectrogram blocks -> ``(batch, 512)``."""
        x = blocks[:, None]
        for i, pool in enumerate((2, 2, 2, 1)):
            x = getattr(self, f"conv_block{i + 1}")(x, pool)
        return x.mean(3).amax(2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = self.spectrogram(wave)
        batch, frames, _ = spec.shape
        if frames < BLOCK_FRAMES:  # zero-padded to one block, as the package does
            spec = F.pad(spec, (0, 0, 0, BLOCK_FRAMES - frames))
            frames = BLOCK_FRAMES
        # block starts every 50 frames; the last block ends at the last frame (no padding)
        starts = list(range(0, frames - BLOCK_FRAMES + 1, BLOCK_HOP))
        if starts[-1] != frames - BLOCK_FRAMES:
            starts.append(frames - BLOCK_FRAMES)
        blocks = torch.stack([spec[:, s : s + BLOCK_FRAMES] for s in starts], 1)
        emb = self.embed_blocks(blocks.flatten(0, 1))  # (batch * blocks, 512)
        return emb.view(batch, len(starts), EMBED_DIM).mean(1)
