"""Spectrogram pictures: one clip with its onsets marked, or a grid of clips (eval examples).

matplotlib with the Agg backend (no display); every picture is a PNG file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from foley.audio import log_mel
from foley.config import DEFAULT_CONFIG, AVConfig


def _mel_db(wave: np.ndarray, cfg: AVConfig) -> np.ndarray:
    x = torch.as_tensor(np.asarray(wave, np.float32).reshape(1, -1))
    if x.shape[1] < 2:
        x = torch.zeros(1, cfg.mel_hop_length * 2)
    mel = log_mel(x, cfg)[0].numpy()  # natural log of power
    return 10.0 * mel / np.log(10.0)  # dB


def _draw(ax, wave, sr, cfg, onsets, reference, title, vmin=-100.0, vmax=0.0):
    db = _mel_db(wave, cfg)
    seconds = len(wave) / sr
    ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        extent=(0, seconds, 0, db.shape[0]),
        vmin=vmin,
        vmax=vmax,
        cmap="magma",
        interpolation="nearest",
    )
    for t in reference if reference is not None else []:
        ax.axvline(t, color="#3ec1ff", lw=1.2, ls="--")
    for t in onsets if onsets is not None else []:
        ax.axvline(t, color="#7cff6b", lw=1.0)
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_yticks([])
    ax.tick_params(labelsize=7)


def spectrogram_png(
    wave: np.ndarray,
    sample_rate: int,
    path: str | Path,
    onsets: Sequence[float] | None = None,
    title: str | None = None,
    *,
    reference_onsets: Sequence[float] | None = None,
    cfg: AVConfig = DEFAULT_CONFIG,
    size: tuple[float, float] = (8.0, 2.4),
) -> Path:
    """Mel spectrogram (dB) with detected onsets (green) and reference onsets (blue dashes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=100)
    _draw(ax, wave, sample_rate, cfg, onsets, reference_onsets, title)
    ax.set_xlabel("seconds", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def spectrogram_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    row_titles: Sequence[str],
    col_titles: Sequence[str],
    sample_rate: int,
    path: str | Path,
    *,
    onsets: Sequence[Sequence[Sequence[float] | None]] | None = None,
    cfg: AVConfig = DEFAULT_CONFIG,
) -> Path:
    """A grid of spectrograms: ``rows[i][j]`` is example ``i`` under column ``j`` (None: blank)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(2.2 * n_cols, 1.5 * n_rows + 0.4), dpi=100, squeeze=False
    )
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            wave = row[j] if j < len(row) else None
            if wave is None:
                ax.axis("off")
                continue
            marks = onsets[i][j] if onsets is not None else None
            _draw(ax, wave, sample_rate, cfg, marks, None, col_titles[j] if i == 0 else None)
            if j == 0:
                ax.set_ylabel(row_titles[i], fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
