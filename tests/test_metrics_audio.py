"""Onset F1 and FD on cases with known answers."""

import numpy as np
import pytest

from foley.metrics.fd import frechet_distance, mel_stats_embedding
from foley.metrics.onsets import detect_onsets, match_onsets, onset_f1

SR = 16_000


def clicks(onsets, seconds=3.0, noise=0.003, seed=0):
    rng = np.random.default_rng(seed)
    wave = rng.normal(0, noise, int(seconds * SR)).astype(np.float32)
    t = np.arange(4000) / SR
    for o in onsets:
        i = int(o * SR)
        wave[i : i + 4000] += (0.5 * np.sin(2 * np.pi * 700 * t) * np.exp(-t * 30))[
            : len(wave) - i
        ].astype(np.float32)
    return wave


def test_detects_impacts_within_tolerance():
    ons = np.array([0.3, 0.9, 1.45, 2.2, 2.6])
    scores = onset_f1(clicks(ons), ons)
    assert scores.f1 == 1.0 and scores.matched == 5


def test_shifted_onsets_lower_f1_as_expected():
    ref = np.array([0.3, 0.9, 1.45, 2.2, 2.6])
    assert match_onsets(ref + 0.04, ref).f1 == 1.0
    assert match_onsets(ref + 0.06, ref).f1 == 0.0
    half = ref.copy()
    half[:2] += 0.2  # two of five moved out of tolerance
    assert match_onsets(half, ref).f1 == pytest.approx(0.6)
    # one-to-one: two detections near one reference count once
    assert match_onsets(np.array([0.3, 0.31]), np.array([0.3])).precision == 0.5


def test_no_onsets_in_silence_or_steady_noise():
    rng = np.random.default_rng(1)
    assert len(detect_onsets(np.zeros(SR, np.float32))) == 0
    assert len(detect_onsets(rng.normal(0, 0.01, 3 * SR).astype(np.float32))) == 0
    assert match_onsets(np.zeros(0), np.zeros(0)).f1 == 1.0
    assert match_onsets(np.array([0.5]), np.zeros(0)).f1 == 0.0


def test_fd_identical_sets_zero_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Gaussians N(0, I) vs N(m, I): FD -> |m|^2
    b = rng.normal(size=(20000, 8)) + 2.0
    c = rng.normal(size=(20000, 8))
    assert frechet_distance(c, b) == pytest.approx(32.0, rel=0.05)
    with pytest.raises(ValueError):
        frechet_distance(a, a[:, :4])


def test_mel_stats_embedding_separates_loudness():
    rng = np.random.default_rng(0)
    quiet = mel_stats_embedding(rng.normal(0, 0.01, (6, SR)).astype(np.float32))
    quiet2 = mel_stats_embedding(rng.normal(0, 0.01, (6, SR)).astype(np.float32))
    loud = mel_stats_embedding(rng.normal(0, 0.3, (6, SR)).astype(np.float32))
    assert quiet.shape == (6, 256)
    assert frechet_distance(quiet, quiet2) < 0.05 * frechet_distance(quiet, loud)
