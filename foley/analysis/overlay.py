"""One way to write a mask overlay (the CLI's ``generate --masks`` and the app's results)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foley.config import AVConfig


def write_overlay(
    path: str | Path,
    frames: np.ndarray,
    masks: np.ndarray,
    audio: np.ndarray | None,
    cfg: AVConfig,
    *,
    min_size: int = 0,
) -> Path:
    """Masks drawn over their frames: a PNG strip (``.png``) or an MP4 with ``audio``.

    frames: uint8 (T', S, S, 3) at ``cfg.fps`` (only the first T are used); masks: (T, S, S)
    in [0, 1]; audio: (N,) at ``cfg.sample_rate`` starting with the first frame (cut to the
    frames; MP4 only). min_size: PNG frames are upscaled (pixel repeat) to at least this many
    pixels, for a strip readable on screen.
    """
    from foley.viz.masks import save_overlay_strip, save_overlay_video

    path = Path(path)
    frames = frames[: len(masks)]
    if path.suffix.lower() == ".png":
        up = max(1, int(np.ceil(min_size / frames.shape[1]))) if min_size else 1
        if up > 1:
            frames = frames.repeat(up, 1).repeat(up, 2)
            masks = masks.repeat(up, 1).repeat(up, 2)
        return Path(save_overlay_strip(path, frames, masks))
    n = cfg.num_samples(len(frames) / cfg.fps)
    wave = None if audio is None else np.asarray(audio, np.float32)[:n]
    return Path(save_overlay_video(path, frames, masks, cfg.fps, wave, cfg.sample_rate))
