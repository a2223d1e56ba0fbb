"""Ambient level: dBFS of the quietest 0.5 s window (Action2Sound's ambient metric)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.audio import dbfs
from foley.metrics.audio import ambient_level_db

SR = 16_000


def _bed(seconds: float, db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(int(seconds * SR))
    return (noise / np.sqrt(np.mean(noise**2)) * 10 ** (db / 20)).astype(np.float32)


def test_reads_the_bed_under_loud_actions() -> None:
    wave = _bed(3.0, -40.0)
    for onset in (0.2, 1.4, 2.5):  # loud bursts, 0.3 s each, gaps > 0.5 s between
        i = int(onset * SR)
        wave[i : i + int(0.3 * SR)] += 0.5 * np.sin(np.arange(int(0.3 * SR)) * 0.3)
    assert dbfs(wave) > -20.0  # the whole clip is dominated by the actions
    assert ambient_level_db(wave, SR) == pytest.approx(-40.0, abs=0.3)


def test_tracks_the_bed_level_and_silence() -> None:
    levels = [ambient_level_db(_bed(2.0, db), SR) for db in (-60.0, -45.0, -30.0)]
    assert levels == pytest.approx([-60.0, -45.0, -30.0], abs=0.3)
    assert ambient_level_db(np.zeros(SR * 2, np.float32), SR) == -100.0
    # one silent 0.5 s stretch in a loud clip is what counts
    wave = _bed(2.0, -20.0)
    wave[SR // 2 : SR] = 0.0
    assert ambient_level_db(wave, SR) == -100.0


def test_short_batched_and_torch_inputs() -> None:
    short = _bed(0.3, -35.0)  # shorter than the window: measured whole
    assert ambient_level_db(short, SR) == pytest.approx(dbfs(short), abs=1e-6)
    batch = np.stack([_bed(1.0, -50.0), _bed(1.0, -25.0, seed=1)])
    out = ambient_level_db(torch.from_numpy(batch), SR)
    assert out.shape == (2,)
    assert out == pytest.approx([-50.0, -25.0], abs=0.3)
    with pytest.raises(ValueError):
        ambient_level_db(np.zeros((2, 2, 10)), SR)
