"""Spectrogram pictures are written and show the sound where it is."""

import numpy as np
from PIL import Image

from foley.viz.spectrogram import spectrogram_grid, spectrogram_png


def test_spectrogram_png_marks_onsets(tmp_path):
    wave = np.zeros(48_000, np.float32)
    wave[24_000:28_000] = np.random.default_rng(0).normal(0, 0.3, 4000)
    quiet = spectrogram_png(wave * 0, 16_000, tmp_path / "q.png")
    loud = spectrogram_png(wave, 16_000, tmp_path / "s.png", onsets=[1.5], title="t")
    a = np.asarray(Image.open(quiet).convert("L"), np.float64)
    b = np.asarray(Image.open(loud).convert("L"), np.float64)
    assert a.shape == b.shape and a.shape[0] > 100
    # the burst in the middle is brighter than silence
    mid = slice(b.shape[1] // 2 - 20, b.shape[1] // 2 + 20)
    assert b[:, mid].mean() > a[:, mid].mean() + 5


def test_spectrogram_grid(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[rng.normal(0, 0.1, 16000).astype(np.float32), None] for _ in range(2)]
    path = spectrogram_grid(rows, ["a", "b"], ["gt", "model"], 16_000, tmp_path / "g.png")
    assert Image.open(path).size[0] > 200
