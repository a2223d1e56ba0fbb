"""Sync shaping: the decoded audio's loudness made to follow the sync curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.config import AVConfig
from foley.errors import InputError
from foley.metrics.onsets import detect_onsets, match_onsets
from foley.models.sync import SyncModel
from foley.models.video_encoder import VideoEncoder
from foley.pipelines.shaping import (
    MODE_SETTINGS,
    PEAK_LIMIT,
    shape_to_curves,
    shaping_gain,
    shaping_settings,
)

CFG = AVConfig()


def curves_with_onsets(times: list[float], n: int | None = None) -> np.ndarray:
    """(num_latents, 2) curves: an onset bump and a decaying level at each of ``times``."""
    n = n or CFG.latents_per_clip
    t = (np.arange(n) + 0.5) * CFG.hop_length / CFG.sample_rate
    onset = np.zeros(n)
    level = np.zeros(n)
    for t0 in times:
        onset = np.maximum(onset, np.exp(-0.5 * ((t - t0) / 0.02) ** 2))
        level = np.maximum(level, np.where(t >= t0, 0.6 * np.exp(-(t - t0) / 0.2), 0.0))
    return np.stack([onset, level], 1).astype(np.float32)


def quietest_db(wave: np.ndarray, window_s: float = 0.5) -> float:
    w = int(window_s * CFG.sample_rate)
    frames = wave[: wave.size // w * w].reshape(-1, w)
    return float(10 * np.log10(np.mean(frames**2, 1).min() + 1e-12))


def noise(seconds: float, db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * CFG.sample_rate)) * 10 ** (db / 20)).astype(
        np.float32
    )


@pytest.mark.parametrize("mode", ["ambient_joint", "action_focused"])
def test_shaping_puts_onsets_where_the_curves_say(mode):
    bed = noise(CFG.clip_seconds, -30)  # a flat bed: no onset of its own
    truth = np.array([0.7, 1.6, 2.4])
    assert len(detect_onsets(bed, CFG)) == 0
    shaped = shape_to_curves(bed, curves_with_onsets(list(truth)), cfg=CFG, **MODE_SETTINGS[mode])
    found = detect_onsets(shaped, CFG)
    assert match_onsets(found, truth).f1 == 1.0, found
    # a contact the video shows elsewhere: the same audio shaped to other times misses these
    other = shape_to_curves(bed, curves_with_onsets([0.3, 1.1]), cfg=CFG, **MODE_SETTINGS[mode])
    assert match_onsets(detect_onsets(other, CFG), truth).f1 == 0.0


def test_a_sound_the_video_does_not_show_is_turned_down():
    wave = noise(CFG.clip_seconds, -40)
    burst = slice(int(0.5 * CFG.sample_rate), int(0.7 * CFG.sample_rate))
    wave[burst] *= 30  # a loud event at 0.5-0.7 s
    gain = shaping_gain(wave, curves_with_onsets([2.0]), cfg=CFG, **MODE_SETTINGS["action_focused"])
    at_burst = gain[burst].mean()
    at_contact = gain[int(2.02 * CFG.sample_rate) : int(2.1 * CFG.sample_rate)].mean()
    assert 20 * np.log10(at_contact / at_burst) > 15  # of the 30 dB it may cut


def test_ambient_joint_keeps_the_floor_action_focused_lowers_it():
    bed = noise(CFG.clip_seconds, -35)
    curves = curves_with_onsets([1.0])
    joint = shape_to_curves(bed, curves, cfg=CFG, **MODE_SETTINGS["ambient_joint"])
    focused = shape_to_curves(bed, curves, cfg=CFG, **MODE_SETTINGS["action_focused"])
    assert abs(quietest_db(joint) - quietest_db(bed)) < 3.0
    assert quietest_db(focused) < quietest_db(joint) - 8.0


def test_shaping_never_clips_and_zero_strength_is_identity():
    loud = noise(CFG.clip_seconds, -6).clip(-0.9, 0.9)
    curves = curves_with_onsets([0.5, 1.5])
    shaped = shape_to_curves(loud, curves, cfg=CFG, **MODE_SETTINGS["ambient_joint"])
    assert np.abs(shaped).max() <= PEAK_LIMIT + 1e-6
    assert np.array_equal(shape_to_curves(loud, curves, strength=0.0, cfg=CFG), loud)
    assert (
        shaping_settings("action_focused", 2.0)["strength"]
        == 2 * (MODE_SETTINGS["action_focused"]["strength"])
    )
    with pytest.raises(ValueError, match="curves"):
        shaping_gain(loud, curves[:, :1], cfg=CFG)


def _tiny_pipeline(video_encoder, curve_dim: int = 0, sync=None):
    from tests.tiny import tiny_pipeline

    return tiny_pipeline(cfg=CFG, video_encoder=video_encoder, curve_dim=curve_dim, sync=sync)


def _tiny_sync() -> SyncModel:
    return SyncModel(
        dim=12, channels=(4, 8), input_size=32, latents_per_frame=CFG.latents_per_frame, head_dim=8
    )


def test_pipeline_shapes_by_default_with_a_sync_model_and_round_trips_it(tmp_path):
    from foley.pipelines.foley_pipeline import FoleyPipeline

    video = np.random.default_rng(0).integers(0, 255, (48, 112, 112, 3), dtype=np.uint8)
    pipe = _tiny_pipeline(VideoEncoder(dim=12, channels=(4, 8)), sync=_tiny_sync())
    assert pipe.has_sync_curves

    def run(p, **kw):
        gen = torch.Generator().manual_seed(0)
        return p(video, mode="no_condition", num_inference_steps=2, generator=gen, **kw).audios[0]

    raw, default, strong = run(pipe, sync_shaping=0), run(pipe), run(pipe, sync_shaping=2.0)
    assert raw.shape == default.shape == (CFG.samples_per_clip,)
    # shaping is the sync model's curves applied to the same decoded audio, window by window
    from foley.io import frames_to_tensor

    x = frames_to_tensor(video)[None]
    curves = pipe._encode_video(x, CFG.latents_per_clip)[1][0].detach().numpy()
    expected = shape_to_curves(raw, curves, cfg=CFG, **shaping_settings("no_condition"))
    assert np.allclose(default, expected, atol=1e-6)
    ratio = default[np.abs(raw) > 1e-4] / raw[np.abs(raw) > 1e-4]
    assert (ratio > 0).all() and ratio.max() / ratio.min() > 1.2
    assert not np.allclose(default, strong)

    pipe.save_pretrained(tmp_path / "p")
    assert (tmp_path / "p" / "sync" / "config.json").is_file()
    again = FoleyPipeline.from_pretrained(tmp_path / "p")
    again.set_progress_bar_config(disable=True)
    assert isinstance(again.sync, SyncModel)
    assert np.allclose(run(again), default, atol=1e-5)


def test_pipeline_returns_the_unshaped_audio_of_the_same_denoising():
    """return_unshaped: the audio before shaping beside the shaped one, window by window and
    crossfaded like it, equal to a sync_shaping=0 call; nothing extra by default."""
    video = np.random.default_rng(1).integers(0, 255, (80, 112, 112, 3), dtype=np.uint8)
    pipe = _tiny_pipeline(VideoEncoder(dim=12, channels=(4, 8)), sync=_tiny_sync())

    def run(**kw):
        gen = torch.Generator().manual_seed(0)
        return pipe(video, mode="ambient_joint", condition_audio=np.zeros(CFG.samples_per_clip),
                    num_inference_steps=2, generator=gen, **kw)  # fmt: skip

    both, raw, shaped = run(return_unshaped=True), run(sync_shaping=0), run()
    assert raw.audios[0].shape == (5 * CFG.sample_rate,)  # two windows, crossfaded
    np.testing.assert_array_equal(both.unshaped_audios[0], raw.audios[0])
    np.testing.assert_array_equal(both.audios[0], shaped.audios[0])
    assert not np.allclose(both.audios[0], both.unshaped_audios[0])
    assert shaped.unshaped_audios is None
    off = run(sync_shaping=0, return_unshaped=True)
    np.testing.assert_array_equal(off.unshaped_audios[0], off.audios[0])


def test_shaping_without_a_sync_model_is_a_one_line_error():
    pipe = _tiny_pipeline(VideoEncoder(dim=12, channels=(4, 8)))
    video = np.zeros((16, 112, 112, 3), np.uint8)
    assert not pipe.has_sync_curves
    out = pipe(video, mode="no_condition", num_inference_steps=1)  # default: no shaping
    assert np.isfinite(out.audios[0]).all()
    with pytest.raises(InputError, match="sync_shaping") as err:
        pipe(video, mode="no_condition", num_inference_steps=1, sync_shaping=1.0)
    assert "\n" not in str(err.value)
    synced = _tiny_pipeline(_tiny_sync(), curve_dim=2)
    for bad in (-1.0, float("nan"), 99.0):
        with pytest.raises(InputError, match="sync_shaping"):
            synced(video, mode="no_condition", num_inference_steps=1, sync_shaping=bad)


def test_a_sync_model_beside_a_sync_encoder_times_the_denoiser():
    """With a ``sync`` model beside a sync video encoder, the denoiser (and shaping) get the sync
    model's curves and still the encoder's features: a better-timed sync model plugs in."""
    from foley.io import frames_to_tensor

    encoder, other = _tiny_sync(), _tiny_sync()
    torch.manual_seed(1)
    for p in other.parameters():  # a different timing model
        p.data.add_(torch.randn_like(p) * 0.5)
    video = np.random.default_rng(0).integers(0, 255, (48, 112, 112, 3), dtype=np.uint8)
    x = frames_to_tensor(video)[None]
    plain = _tiny_pipeline(encoder, curve_dim=2)
    beside = _tiny_pipeline(encoder, curve_dim=2, sync=other)
    beside.denoiser.load_state_dict(plain.denoiser.state_dict())
    feats, curves = beside._encode_video(x, CFG.latents_per_clip, with_curves=False)
    own_feats, own_curves = encoder.encode(x, CFG.latents_per_clip)
    assert torch.equal(feats, own_feats)
    assert torch.equal(curves, other.encode(x, CFG.latents_per_clip)[1])
    assert not torch.allclose(curves, own_curves)

    def run(p):
        gen = torch.Generator().manual_seed(0)
        out = p(video, mode="no_condition", num_inference_steps=2, generator=gen, sync_shaping=0)
        return out.audios[0]

    assert not np.allclose(run(plain), run(beside))  # the curves reach the denoiser
