"""Level metrics on waveforms.

Ambient level (Action2Sound): the energy of the quietest 0.5 s window of a clip, in dBFS.
Between action sounds only the ambience is left, so this reads the scene's background level and
ignores the actions; action-focused generation aims for a low value.
"""

from __future__ import annotations

import numpy as np
import torch

from foley.audio import dbfs

AMBIENT_WINDOW_SECONDS = 0.5
_HOP_SECONDS = 0.01
_FLOOR_DB = -100.0


def ambient_level_db(
    wave: np.ndarray | torch.Tensor,
    sample_rate: int = 16_000,
    window_seconds: float = AMBIENT_WINDOW_SECONDS,
) -> float | np.ndarray:
    """dBFS (RMS, as :func:`foley.audio.dbfs`) of the quietest ``window_seconds`` window.

    Windows slide by 10 ms.  ``wave``: ``(num_samples,)`` gives a float, ``(batch, num_samples)``
    an array ``(batch,)``.  A clip shorter than the window is measured whole; silence is -100.
    """
    x = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    x = x.astype(np.float64)
    if x.ndim == 2:
        return np.array([ambient_level_db(row, sample_rate, window_seconds) for row in x])
    if x.ndim != 1:
        raise ValueError(f"wave must be (num_samples,) or (batch, num_samples), got {x.shape}")
    win = int(round(window_seconds * sample_rate))
    if x.size <= win or win <= 0:
        return dbfs(x)
    hop = max(1, int(round(_HOP_SECONDS * sample_rate)))
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, x.size - win + 1, hop)
    energy = (csum[starts + win] - csum[starts]) / win  # mean square per window
    rms = float(np.sqrt(max(energy.min(), 0.0)))
    return max(20.0 * np.log10(rms + 1e-10), _FLOOR_DB)
