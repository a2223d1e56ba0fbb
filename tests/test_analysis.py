"""foley.analysis.write_overlay: the one overlay writer (PNG strip or MP4 with the audio)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from foley.analysis import write_overlay
from foley.config import AVConfig
from foley.io import load_audio, load_video

CFG = AVConfig(clip_seconds=1.0, fps=8.0, frame_size=32)


def _inputs():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)  # one more than the masks
    masks = np.zeros((11, 32, 32), np.float32)
    masks[:, 8:16, 8:16] = 1.0
    audio = 0.3 * np.sin(np.arange(CFG.num_samples(2.0)) / 5).astype(np.float32)
    return frames, masks, audio


def test_png_strip_is_upscaled_to_the_minimum_size(tmp_path):
    frames, masks, _ = _inputs()
    small = Image.open(write_overlay(tmp_path / "a.png", frames, masks, None, CFG))
    big = Image.open(write_overlay(tmp_path / "b.png", frames, masks, None, CFG, min_size=64))
    assert (small.size[1], big.size[1]) == (32, 64)  # one row of frames, 2x larger


def test_mp4_has_the_masked_frames_and_the_audio_cut_to_them(tmp_path):
    frames, masks, audio = _inputs()
    path = write_overlay(tmp_path / "o.mp4", frames, masks, audio, CFG)
    video = load_video(path, CFG)
    assert abs(len(video.frames) - len(masks)) <= 1
    seconds = load_audio(path, CFG.sample_rate).size / CFG.sample_rate
    assert abs(seconds - len(masks) / CFG.fps) < 0.2  # cut to the frames, not 2 s
