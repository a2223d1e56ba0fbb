"""The time/shape contract: derived lengths and immutability."""

import dataclasses

import pytest

from foley.config import DEFAULT_CONFIG, AVConfig


def test_default_lengths():
    cfg = DEFAULT_CONFIG
    assert cfg.samples_per_clip == 48_000
    assert cfg.frames_per_clip == 48
    assert cfg.latent_rate == 50
    assert cfg.latents_per_clip == 150
    assert cfg.latents_per_frame == pytest.approx(3.125)
    assert cfg.samples_per_frame == 1000
    assert cfg.mel_frames_per_clip == 301
    assert cfg.num_latents(48_001) == 151


def test_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_CONFIG.fps = 25  # type: ignore[misc]
    with pytest.raises(ValueError):
        AVConfig(hop_length=333)
    assert AVConfig(clip_seconds=8.0).latents_per_clip == 400
