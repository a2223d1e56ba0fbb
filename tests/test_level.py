"""Action-focused loudness (foley.pipelines.level): measured, matched, calibrated, applied."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.config import AVConfig
from foley.pipelines.level import (
    MAX_GAIN_DB,
    PEAK,
    SILENT_DB,
    action_level_of,
    loud_level_db,
    match_level,
)

SR = 16000
CFG = AVConfig(clip_seconds=2.0, max_video_seconds=20.0)


def clicks(n: int, db: float, every_s: float = 0.25, length_s: float = 0.04) -> np.ndarray:
    """A click train: ``length_s`` bursts of a square wave at ``db`` RMS dBFS, silence between."""
    wave = np.zeros(n, np.float32)
    amp = 10 ** (db / 20)
    step, size = int(every_s * SR), int(length_s * SR)
    for start in range(0, n - size, step):
        wave[start : start + size] = amp * np.where(np.arange(size) % 2, 1.0, -1.0)
    return wave


def test_loud_level_reads_the_contacts_not_the_silence_between():
    wave = clicks(2 * SR, -20.0)  # 16 % of the frames hold a click
    assert loud_level_db(wave, SR) == pytest.approx(-20.0, abs=0.1)
    assert loud_level_db(np.zeros(SR, np.float32), SR) == SILENT_DB
    assert loud_level_db(np.zeros(0, np.float32), SR) == SILENT_DB


def test_match_level_gains_to_the_target_within_limits():
    quiet = clicks(2 * SR, -45.0)
    out = match_level(quiet, -25.0, SR)
    assert loud_level_db(out, SR) == pytest.approx(-25.0, abs=0.1)
    assert out.dtype == np.float32 and out.shape == quiet.shape
    # a gain above MAX_GAIN_DB is clipped to it
    very_quiet = clicks(2 * SR, -70.0)
    assert loud_level_db(match_level(very_quiet, -20.0, SR), SR) == pytest.approx(
        -70.0 + MAX_GAIN_DB, abs=0.1
    )
    # a target that would clip is held at the peak limit
    loud = match_level(clicks(2 * SR, -6.0), 0.0, SR)
    assert np.abs(loud).max() == pytest.approx(PEAK, abs=1e-6)
    silence = np.zeros(SR, np.float32)
    assert np.array_equal(match_level(silence, -20.0, SR), silence)


def test_action_level_is_the_median_of_the_training_action_tracks(tmp_path):
    from foley.data.foleyworld import FoleyWorldSettings, generate_dataset
    from foley.errors import InputError

    settings = FoleyWorldSettings(videos=6, clips_per_video=2, seed=0)
    generate_dataset(tmp_path / "fw", settings, CFG, progress=False)
    from foley.data.ego4d import load_ground_truth, read_metadata

    records = read_metadata(tmp_path / "fw" / "train.tsv")
    levels = [
        loud_level_db(load_ground_truth(r.gt_path(tmp_path / "fw"))["action"], SR) for r in records
    ]
    levels = [x for x in levels if x > SILENT_DB]
    assert len(levels) >= 2 and action_level_of(tmp_path / "fw") == pytest.approx(np.median(levels))
    with pytest.raises(InputError, match="nope.tsv: no such metadata file"):
        action_level_of(tmp_path / "fw", "nope")


def test_action_focused_output_is_levelled_and_ambient_joint_is_not(tmp_path):
    from foley.pipelines.foley_pipeline import FoleyPipeline
    from tests.tiny import tiny_pipeline

    torch.manual_seed(0)
    base = tiny_pipeline(cfg=CFG)
    pipe = FoleyPipeline.from_pipe(base, action_level_db=-18.0)
    pipe.save_pretrained(tmp_path / "p")
    pipe = FoleyPipeline.from_pretrained(tmp_path / "p")
    pipe.set_progress_bar_config(disable=True)
    base.set_progress_bar_config(disable=True)
    video = np.random.default_rng(0).integers(0, 255, (48, 112, 112, 3), dtype=np.uint8)
    cond = clicks(2 * SR, -50.0)

    def run(p, mode, **kw):
        out = p(video, mode=mode, condition_audio=cond, num_inference_steps=2,
                generator=torch.Generator().manual_seed(0), **kw)  # fmt: skip
        return out.audios[0]

    raw = run(base, "action_focused")
    levelled = run(pipe, "action_focused")
    assert loud_level_db(raw, SR) != pytest.approx(-18.0, abs=1.0)  # else the test shows nothing
    expected = match_level(raw, -18.0, SR)
    np.testing.assert_allclose(levelled, expected, rtol=1e-5, atol=1e-6)
    assert np.array_equal(run(pipe, "action_focused", match_action_level=False), raw)
    assert np.array_equal(run(pipe, "ambient_joint"), run(base, "ambient_joint"))
