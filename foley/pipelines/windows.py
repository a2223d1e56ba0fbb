"""Long videos as overlapping clip-length windows, and the crossfade that joins their audio.

The denoiser is trained on ``cfg.clip_seconds`` clips; a longer video is cut into windows of
``cfg.frames_per_clip`` frames that overlap by at least ``overlap_frames``, spread evenly so the
last one ends on the last frame. Their audio is joined with a crossfade centred in each overlap.

Which crossfade keeps the level constant depends on how alike the two windows are: equal-power
(sin/cos) gains suit uncorrelated signals (independent noise, ambience) but raise correlated ones
by up to 3 dB mid-seam; linear gains suit correlated signals (both windows see the same frames
and condition, so their action sounds line up) but dip 3 dB on uncorrelated ones. The default,
``"adaptive"``, measures the correlation ``rho`` of the two windows over the crossfade and
normalises linear gains ``a, b`` by ``sqrt(a^2 + b^2 + 2 rho a b)``: linear at rho = 1,
equal-power-like at rho = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CROSSFADES = ("adaptive", "equal_power", "linear")


@dataclass(frozen=True)
class WindowPlan:
    """Where each window of one video starts, in video frames and in audio samples."""

    start_frames: tuple[int, ...]
    start_samples: tuple[int, ...]
    window_samples: int  # audio samples one window covers
    num_samples: int  # samples of the whole output (the video's length)
    crossfade_samples: int  # nominal crossfade length at every seam

    @property
    def seams(self) -> list[int]:
        """Sample index of the centre of each crossfade (len = windows - 1)."""
        return [
            (self.start_samples[k] + self.start_samples[k - 1] + self.window_samples) // 2
            for k in range(1, len(self.start_samples))
        ]


def plan_windows(
    num_frames: int,
    window_frames: int,
    overlap_frames: int,
    samples_per_frame: float,
    num_samples: int,
) -> WindowPlan:
    """Evenly spaced windows covering ``num_frames`` frames (at least one window).

    Consecutive windows overlap by at least ``overlap_frames`` (the stride is at most
    ``window_frames - overlap_frames``). ``overlap_frames`` must be at most a third of a window,
    so that no three windows share a crossfade.
    """
    if not 0 <= overlap_frames <= window_frames // 3:
        raise ValueError("overlap must be between 0 and a third of a window")
    stride = window_frames - overlap_frames
    span = max(0, num_frames - window_frames)
    count = 1 if span == 0 else math.ceil(span / stride) + 1
    starts = [round(k * span / (count - 1)) for k in range(count)] if count > 1 else [0]
    window_samples = round(window_frames * samples_per_frame)
    return WindowPlan(
        start_frames=tuple(starts),
        start_samples=tuple(round(s * samples_per_frame) for s in starts),
        window_samples=window_samples,
        num_samples=num_samples,
        crossfade_samples=round(overlap_frames * samples_per_frame),
    )


def crossfade_gains(
    length: int, kind: str, prev: np.ndarray | None = None, nxt: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(fade-out gain of the earlier window, fade-in gain of the later one), ``length`` each.

    ``prev``/``nxt``: the two windows' audio over the crossfade (needed by ``"adaptive"``).
    """
    x = (np.arange(length, dtype=np.float64) + 0.5) / max(length, 1)
    if kind == "equal_power":
        return np.cos(0.5 * np.pi * x), np.sin(0.5 * np.pi * x)
    if kind == "linear":
        return 1.0 - x, x
    if kind == "adaptive":
        rho = 0.0
        if prev is not None and nxt is not None and length:
            denom = np.sqrt(np.dot(prev, prev) * np.dot(nxt, nxt))
            rho = float(np.clip(np.dot(prev, nxt) / denom, 0.0, 1.0)) if denom > 0 else 1.0
        a, b = 1.0 - x, x
        norm = np.sqrt(a * a + b * b + 2.0 * rho * a * b)
        return a / norm, b / norm
    raise ValueError(f"crossfade must be one of {CROSSFADES}, not {kind!r}")


def stitch(waves: np.ndarray, plan: WindowPlan, crossfade: str = "adaptive") -> np.ndarray:
    """Join window audio into one track of ``plan.num_samples`` samples.

    waves: (num_windows, window_samples) float32. Returns (num_samples,) float32. Each seam is a
    crossfade of ``min(plan.crossfade_samples, actual overlap)`` samples centred in the overlap.
    """
    n = len(plan.start_samples)
    if waves.shape[0] != n:
        raise ValueError(f"expected {n} windows, got {waves.shape[0]}")
    total = max(plan.num_samples, plan.start_samples[-1] + plan.window_samples)
    out = np.zeros(total, dtype=np.float64)
    gains = [np.ones(plan.window_samples) for _ in range(n)]
    for k in range(1, n):
        a_prev = plan.start_samples[k - 1]
        a_k = plan.start_samples[k]
        overlap = a_prev + plan.window_samples - a_k
        length = min(plan.crossfade_samples, overlap)
        lo = a_k + (overlap - length) // 2  # global start of the crossfade
        p0, k0 = lo - a_prev, lo - a_k  # crossfade start inside each window
        fade_out, fade_in = crossfade_gains(
            length,
            crossfade,
            waves[k - 1][p0 : p0 + length].astype(np.float64),
            waves[k][k0 : k0 + length].astype(np.float64),
        )
        g_prev, g_k = gains[k - 1], gains[k]
        g_prev[p0 : p0 + length] *= fade_out
        g_prev[p0 + length :] = 0.0
        g_k[:k0] = 0.0
        g_k[k0 : k0 + length] *= fade_in
    for k, start in enumerate(plan.start_samples):
        out[start : start + plan.window_samples] += waves[k] * gains[k]
    return out[: plan.num_samples].astype(np.float32)
