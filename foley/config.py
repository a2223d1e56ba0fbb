"""The time and shape contract: one frozen dataclass, every length derived from it.

Nothing else in the project recomputes a clip length, a frame count or a latent count by hand;
it asks an :class:`AVConfig` instance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class AVConfig:
    """Audio/video timing and shapes.

    Audio is mono at ``sample_rate``; video is resampled to ``fps`` and resized (aspect kept,
    then centre-cropped) to ``frame_size`` x ``frame_size``.  The codec turns ``hop_length``
    samples into one latent frame.
    """

    sample_rate: int = 16_000
    clip_seconds: float = 3.0
    fps: float = 16.0
    frame_size: int = 112
    hop_length: int = 320
    # log-mel front end shared by MC3, AVS, the codec losses and the metrics
    n_fft: int = 1024
    mel_hop_length: int = 160
    n_mels: int = 64
    # input limits (io refuses files beyond these with a one-line error)
    max_video_seconds: float = 600.0
    max_pixels: int = 4096 * 4096

    def __post_init__(self) -> None:
        if self.sample_rate % self.hop_length:
            raise ValueError("sample_rate must be a multiple of hop_length")
        if self.clip_seconds <= 0 or self.fps <= 0 or self.frame_size <= 0:
            raise ValueError("clip_seconds, fps and frame_size must be positive")

    # ---- audio -------------------------------------------------------------------------
    @property
    def samples_per_clip(self) -> int:
        return self.num_samples(self.clip_seconds)

    def num_samples(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    # ---- video -------------------------------------------------------------------------
    @property
    def frames_per_clip(self) -> int:
        return self.num_frames(self.clip_seconds)

    def num_frames(self, seconds: float) -> int:
        return int(round(seconds * self.fps))

    @property
    def samples_per_frame(self) -> float:
        """Audio samples per video frame (1000.0 at 16 kHz / 16 fps)."""
        return self.sample_rate / self.fps

    # ---- latents -----------------------------------------------------------------------
    @property
    def latent_rate(self) -> int:
        """Codec latent frames per second (50 at 16 kHz / hop 320)."""
        return self.sample_rate // self.hop_length

    @property
    def latents_per_clip(self) -> int:
        return self.num_latents(self.samples_per_clip)

    def num_latents(self, num_samples: int) -> int:
        return math.ceil(num_samples / self.hop_length)

    @property
    def latents_per_frame(self) -> float:
        """Latent frames per video frame (3.125 by default: not an integer)."""
        return self.latent_rate / self.fps

    # ---- mel ---------------------------------------------------------------------------
    @property
    def mel_frames_per_clip(self) -> int:
        return self.num_mel_frames(self.samples_per_clip)

    def num_mel_frames(self, num_samples: int) -> int:
        """Frames of a centred STFT with ``mel_hop_length``."""
        return num_samples // self.mel_hop_length + 1

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_CONFIG = AVConfig()
