"""Sounding-object masks drawn over video frames: a PNG strip and a short MP4.

Frames are ``(T, H, W, 3)`` uint8 (as :func:`foley.io.load_video` gives them); masks are
``(T, H, W)``, either bool or probabilities in [0, 1] (drawn with their value as opacity).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from foley.errors import InputError

PRED_COLOUR = (255, 235, 0)
GT_COLOUR = (40, 200, 255)


def _check(frames: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    masks = np.asarray(masks, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"frames must be (T, H, W, 3) uint8, got {frames.shape}")
    if masks.shape != frames.shape[:3]:
        raise InputError(f"masks {masks.shape} do not match frames {frames.shape[:3]}")
    return frames.astype(np.uint8), np.clip(masks, 0.0, 1.0)


def _edges(mask: np.ndarray) -> np.ndarray:
    """(..., H, W) bool -> pixels of the mask that touch a pixel outside it."""
    m = mask > 0.5
    inner = m.copy()
    inner[..., 1:, :] &= m[..., :-1, :]
    inner[..., :-1, :] &= m[..., 1:, :]
    inner[..., :, 1:] &= m[..., :, :-1]
    inner[..., :, :-1] &= m[..., :, 1:]
    return m & ~inner


def overlay_masks(
    frames: np.ndarray,
    masks: np.ndarray,
    colour: tuple[int, int, int] = PRED_COLOUR,
    alpha: float = 0.5,
    outline: bool = True,
) -> np.ndarray:
    """Tint each frame where the mask is on: frames (T, H, W, 3) uint8, masks (T, H, W) -> uint8.

    Opacity is ``alpha * mask`` per pixel (so probabilities fade in); the 0.5 contour is drawn
    at full strength when ``outline``.
    """
    frames, masks = _check(frames, masks)
    tint = np.asarray(colour, np.float32)
    weight = (alpha * masks)[..., None]
    if outline:
        weight = np.where(_edges(masks)[..., None], 1.0, weight)
    out = frames.astype(np.float32) * (1.0 - weight) + tint * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _pick(num_frames: int, count: int) -> np.ndarray:
    count = max(1, min(count, num_frames))
    return np.unique(np.linspace(0, num_frames - 1, count).round().astype(int))


def save_overlay_strip(
    path: str | os.PathLike,
    frames: np.ndarray,
    masks: np.ndarray,
    *,
    gt_masks: np.ndarray | None = None,
    num: int = 8,
    gap: int = 2,
) -> Path:
    """A PNG of ``num`` evenly spaced frames side by side with the mask drawn on them.

    With ``gt_masks`` a second row shows the ground truth (another colour).  Returns the path.
    """
    from PIL import Image

    frames, masks = _check(frames, masks)
    idx = _pick(len(frames), num)
    rows = [overlay_masks(frames[idx], masks[idx])]
    if gt_masks is not None:
        _, gt = _check(frames, gt_masks)
        rows.append(overlay_masks(frames[idx], gt[idx], colour=GT_COLOUR))
    h, w = frames.shape[1:3]
    canvas = np.full(
        (len(rows) * h + (len(rows) - 1) * gap, len(idx) * w + (len(idx) - 1) * gap, 3),
        255,
        np.uint8,
    )
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = img
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(p, optimize=True)
    return p


def save_overlay_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    masks: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
) -> Path:
    """An MP4 of the frames with the masks drawn on them (and the audio, if given)."""
    from foley.io import write_video

    return write_video(
        path, overlay_masks(frames, masks), fps, audio=audio, sample_rate=sample_rate
    )
