"""Action-focused loudness: generated contacts brought to the level actions have in training.

The denoiser hears a quiet conditioning clip in action-focused mode and follows its loudness
down: measured on 48 fresh FoleyWorld clips (session 6), its contacts came out 12-17 dB under
the ground-truth action track. A pipeline saved with ``action_level_db`` (the median
:func:`loud_level_db` of its training data's action-only tracks, :func:`action_level_of`)
gains each action-focused soundtrack so that its loud part sits at that level.

:func:`loud_level_db` is the level of the loudest tenth of 20 ms frames: the contacts of an
action track (it ignores the silence between them), and of a generated one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FRAME_S = 0.02
TOP_FRACTION = 0.1
MIN_GAIN_DB, MAX_GAIN_DB = -12.0, 24.0  # never more than that, whatever the measurement
PEAK = 0.98  # the gained audio is scaled down to this peak if it would exceed it
SILENT_DB = -100.0


def loud_level_db(wave: np.ndarray, sample_rate: int) -> float:
    """RMS dBFS of the loudest ``TOP_FRACTION`` of ``FRAME_S`` frames of ``wave`` (at least
    one frame); ``SILENT_DB`` for silence or an empty wave."""
    wave = np.asarray(wave, np.float64).reshape(-1)
    hop = max(1, int(round(FRAME_S * sample_rate)))
    n = wave.size // hop
    if n == 0:
        return SILENT_DB
    power = np.mean(wave[: n * hop].reshape(n, hop) ** 2, axis=1)
    top = np.sort(power)[-max(1, int(np.ceil(TOP_FRACTION * n))) :]
    mean = float(top.mean())
    return SILENT_DB if mean <= 10 ** (SILENT_DB / 10) else 10 * np.log10(mean)


def match_level(wave: np.ndarray, target_db: float, sample_rate: int) -> np.ndarray:
    """``wave`` gained so that :func:`loud_level_db` is ``target_db`` (gain clipped to
    ``[MIN_GAIN_DB, MAX_GAIN_DB]``, then scaled down to ``PEAK`` if it would clip); silence is
    returned unchanged."""
    wave = np.asarray(wave, np.float32)
    level = loud_level_db(wave, sample_rate)
    if level <= SILENT_DB:
        return wave
    gain_db = float(np.clip(target_db - level, MIN_GAIN_DB, MAX_GAIN_DB))
    out = wave * np.float32(10 ** (gain_db / 20))
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > PEAK:
        out = out * np.float32(PEAK / peak)
    return out.astype(np.float32)


def action_level_of(
    data_dir: str | Path, split: str = "train", max_clips: int = 400, sample_rate: int = 16000
) -> float:
    """The median :func:`loud_level_db` of the action-only ground truth of up to ``max_clips``
    clips of a FoleyWorld ``split`` (clips spread over the split; clips without ground truth or
    with a silent action track are left out). A one-line InputError when there is no such
    clip."""
    from foley.data.ego4d import read_metadata, split_path
    from foley.errors import InputError

    records = read_metadata(split_path(data_dir, split))
    stride = max(1, len(records) // max(1, int(max_clips)))
    levels = []
    for record in records[::stride][:max_clips]:
        gt_path = record.gt_path(data_dir)
        if gt_path.is_file():
            with np.load(gt_path) as gt:
                level = loud_level_db(gt["action"], sample_rate)
            if level > SILENT_DB:
                levels.append(level)
    if not levels:
        raise InputError(f"{data_dir} {split}: no clip with an action-only track (FoleyWorld)")
    return float(np.median(levels))
