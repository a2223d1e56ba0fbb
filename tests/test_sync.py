"""The sync encoder: frame differences in the video encoder, audio-derived targets, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.config import AVConfig
from foley.models.sync import SyncModel, curve_onsets, sync_loss, sync_targets
from foley.models.video_encoder import VideoEncoder

CFG = AVConfig()


def _clicks(times, seconds=3.0, sr=16_000, noise_db=-60.0):
    rng = np.random.default_rng(0)
    wave = rng.normal(0, 10 ** (noise_db / 20), int(seconds * sr)).astype(np.float32)
    for t in times:
        i = int(t * sr)
        n = 800
        wave[i : i + n] += 0.5 * np.exp(-np.arange(n) / 150) * rng.normal(0, 1, n)
    return wave


def test_frame_diff_sees_motion_and_static_frames_look_alike():
    torch.manual_seed(0)
    enc = VideoEncoder(
        dim=16,
        channels=(8, 8),
        temporal_mixer="none",
        frame_diff=True,
        input_size=32,
        pool="meanmax",
    ).eval()
    static = torch.rand(1, 1, 3, 64, 64).expand(1, 6, 3, 64, 64).clone()
    moving = static.clone()
    moving[0, 3:, :, 10:20, 10:20] = 1.0  # a square appears at frame 3
    with torch.no_grad():
        f_static = enc.frame_features(static)[0]
        f_moving = enc.frame_features(moving)[0]
    assert f_static.shape == (6, 16)
    # no motion: every frame is the same input (diff 0), so the same feature
    assert torch.allclose(f_static[0], f_static[5], atol=1e-5)
    # the frame where the square appears differs from the next one (same picture, no diff)
    assert (f_moving[3] - f_moving[4]).abs().max() > 1e-3
    assert torch.allclose(f_moving[4], f_moving[5], atol=1e-5)


def test_sync_targets_mark_onsets_and_loudness():
    times = [0.5, 1.3, 2.2]
    y = sync_targets(_clicks(times), CFG)
    assert y.shape == (CFG.latents_per_clip, 2)
    assert 0.0 <= y.min() and y.max() <= 1.0
    found = curve_onsets(y[:, 0], CFG, threshold=0.5)
    assert len(found) == 3 and np.abs(found - np.array(times)).max() < 0.03
    frame_s = CFG.hop_length / CFG.sample_rate
    loud = y[int(0.52 / frame_s), 1]
    quiet = y[int(1.0 / frame_s), 1]
    assert loud > 0.5 and quiet < 0.1
    silence = sync_targets(np.zeros(CFG.samples_per_clip, np.float32), CFG)
    assert silence.max() == 0.0


def test_curve_onsets_keeps_the_stronger_of_close_peaks():
    curve = np.zeros(150)
    curve[[20, 21, 22]] = [0.6, 0.4, 0.9]  # 40 ms apart: one onset, at the 0.9 peak
    curve[100] = 0.7
    curve[120] = 0.3  # below threshold
    got = curve_onsets(curve, CFG, threshold=0.5)
    frame_s = CFG.hop_length / CFG.sample_rate
    assert np.allclose(got, (np.array([22, 100]) + 0.5) * frame_s)


def test_tiny_sync_model_learns_when_a_flash_sounds(tmp_path):
    """Clips where a bright square flashes on at a random frame and a click sounds then: a few
    dozen steps and the model's onset curve peaks at the flash, which a static model cannot."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = AVConfig(clip_seconds=1.0)
    frames_n, lat_n = cfg.frames_per_clip, cfg.latents_per_clip

    def batch(n):
        x = torch.full((n, frames_n, 3, 32, 32), 0.2)
        ys = []
        for b in range(n):
            k = int(rng.integers(2, frames_n - 2))
            x[b, k:, :, 8:24, 8:24] = 0.9
            ys.append(sync_targets(_clicks([k / cfg.fps], seconds=1.0), cfg))
        return x, torch.from_numpy(np.stack(ys))

    model = SyncModel(
        dim=16,
        channels=(8, 16),
        input_size=None,
        latents_per_frame=cfg.latents_per_frame,
        head_dim=16,
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x_val, y_val = batch(8)
    with torch.no_grad():
        before = float(sync_loss(model(x_val, lat_n), y_val))
    for _ in range(60):
        x, y = batch(8)
        loss = sync_loss(model(x, lat_n), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(sync_loss(model(x_val, lat_n), y_val))
        peak = model(x_val, lat_n)[..., 0].argmax(1)
    assert after < 0.7 * before
    true_peak = y_val[..., 0].argmax(1)
    assert (peak - true_peak).abs().float().median() <= 3  # within 60 ms

    model.save_pretrained(tmp_path / "sync")
    again = SyncModel.from_pretrained(tmp_path / "sync")
    with torch.no_grad():
        assert torch.allclose(again(x_val, lat_n), model(x_val, lat_n), atol=1e-5)
    model.encoder.save_pretrained(tmp_path / "enc")
    enc = VideoEncoder.from_pretrained(tmp_path / "enc")
    assert enc.config.frame_diff and enc.config.pool == "meanmax"


def test_denoiser_uses_sync_curves_only_with_the_video():
    from tests.tiny import tiny_denoiser

    torch.manual_seed(0)
    den = tiny_denoiser(CFG, curve_dim=2).eval()
    L = CFG.latents_per_clip
    x = torch.randn(2, L, 8)
    video = torch.randn(2, CFG.frames_per_clip, 12)
    flat, peaky = torch.zeros(2, L, 2), torch.zeros(2, L, 2)
    peaky[:, 40:44, 0] = 1.0
    with torch.no_grad():
        a = den(x, 500.0, video, None, sync_curves=flat)
        b = den(x, 500.0, video, None, sync_curves=peaky)
        keep = torch.tensor([True, False])
        c = den(x, 500.0, video, None, video_keep=keep, sync_curves=flat)
        d = den(x, 500.0, video, None, video_keep=keep, sync_curves=peaky)
    assert (a - b).abs().max() > 1e-4  # the curves move the prediction
    assert (c[0] - d[0]).abs().max() > 1e-4 and torch.allclose(c[1], d[1])  # dropped: ignored
    with pytest.raises(ValueError, match="sync_curves"):
        den(x, 500.0, video, None)


def test_pipeline_with_a_sync_encoder_generates_and_round_trips(tmp_path):
    from foley.pipelines.foley_pipeline import FoleyPipeline
    from tests.tiny import tiny_pipeline

    torch.manual_seed(0)
    sync = SyncModel(
        dim=12, channels=(4, 8), input_size=32, latents_per_frame=CFG.latents_per_frame, head_dim=8
    )
    pipe = tiny_pipeline(cfg=CFG, video_encoder=sync, curve_dim=2)
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (40, 112, 112, 3), dtype=np.uint8)  # 2.5 s at 16 fps

    def run(p):
        out = p(
            video,
            mode="no_condition",
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(0),
        )
        return out.audios[0]

    audio = run(pipe)
    assert audio.shape == (40_000,) and np.isfinite(audio).all()
    pipe.save_pretrained(tmp_path / "p")
    again = FoleyPipeline.from_pretrained(tmp_path / "p")
    again.set_progress_bar_config(disable=True)
    assert isinstance(again.video_encoder, SyncModel)
    assert np.allclose(run(again), audio, atol=1e-5)

    # a saved default shaping factor: a call that does not choose one uses it, and it survives
    # save/load; without it, shaping defaults to 1 with a sync model
    assert again.resolve_sync_shaping(None) == 1.0
    off = FoleyPipeline.from_pipe(again, sync_shaping_default=0.0)
    off.save_pretrained(tmp_path / "off")
    loaded = FoleyPipeline.from_pretrained(tmp_path / "off")
    assert loaded.resolve_sync_shaping(None) == 0.0 and loaded.resolve_sync_shaping(0.5) == 0.5
    loaded.set_progress_bar_config(disable=True)
    unshaped = loaded(video, mode="no_condition", num_inference_steps=2, sync_shaping=0.0,
                      generator=torch.Generator().manual_seed(0)).audios[0]  # fmt: skip
    assert np.array_equal(run(loaded), unshaped)


def test_curve_denoiser_without_a_sync_encoder_is_a_one_line_error():
    from foley.errors import ModelMismatchError
    from tests.tiny import tiny_pipeline

    pipe = tiny_pipeline(cfg=CFG, curve_dim=2)
    video = np.zeros((20, 112, 112, 3), np.uint8)
    with pytest.raises(ModelMismatchError, match="SyncModel") as err:
        pipe(video, mode="no_condition", num_inference_steps=1)
    assert "\n" not in str(err.value)


def test_saved_default_steps_and_shaping_reach_every_caller(tmp_path):
    """A model shipped for few steps with shaping off: calls, the eval and the app's requests
    that name neither use the saved defaults; a pipeline saved without them keeps 25 steps."""
    from app.service import FoleyService
    from foley.errors import InputError
    from foley.pipelines.foley_pipeline import DEFAULT_STEPS, FoleyPipeline
    from tests.tiny import tiny_pipeline

    torch.manual_seed(0)
    sync = SyncModel(
        dim=12, channels=(4, 8), input_size=32, latents_per_frame=CFG.latents_per_frame, head_dim=8
    )
    pipe = tiny_pipeline(cfg=CFG, video_encoder=sync, curve_dim=2)
    assert pipe.default_num_inference_steps == DEFAULT_STEPS == 25
    few = FoleyPipeline.from_pipe(pipe, default_steps=3, sync_shaping_default=0.0)
    few.save_pretrained(tmp_path / "few")
    loaded = FoleyPipeline.from_pretrained(tmp_path / "few")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.default_num_inference_steps == 3
    video = np.random.default_rng(1).integers(0, 255, (20, 112, 112, 3), dtype=np.uint8)

    def run(p, **kw):
        out = p(video, mode="no_condition", generator=torch.Generator().manual_seed(0), **kw)
        return out.audios[0]

    default = run(loaded)
    assert np.array_equal(default, run(loaded, num_inference_steps=3, sync_shaping=0.0))
    assert not np.array_equal(default, run(loaded, num_inference_steps=2, sync_shaping=0.0))

    service = FoleyService(loaded)
    assert service.default_steps == 3 and service.default_shaping == 0.0
    request = service._request_pipeline(None)  # what one app request generates with
    assert request.default_num_inference_steps == 3 and request.resolve_sync_shaping(None) == 0.0

    with pytest.raises(InputError, match="default_steps"):
        FoleyPipeline.from_pipe(pipe, default_steps=0)


def test_saved_default_guidance_per_mode_reaches_every_caller(tmp_path):
    """A model saved with a guidance for one mode uses it in that mode when a call names none
    (3 in the others); the app's requests and the eval's settings follow it."""
    from app.service import FoleyService
    from foley.errors import InputError
    from foley.evaluation.report import format_guidance, guidance_setting
    from foley.pipelines.foley_pipeline import DEFAULT_GUIDANCE, FoleyPipeline
    from tests.tiny import tiny_pipeline

    torch.manual_seed(0)
    pipe = tiny_pipeline(cfg=CFG)
    assert pipe.default_guidance_scale("no_condition") == DEFAULT_GUIDANCE == 3.0
    guided = FoleyPipeline.from_pipe(pipe, default_guidance={"no_condition": 5.0})
    guided.save_pretrained(tmp_path / "g")
    loaded = FoleyPipeline.from_pretrained(tmp_path / "g")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.default_guidance_scale("no_condition") == 5.0
    assert loaded.default_guidance_scale("ambient_joint") == 3.0
    video = np.random.default_rng(1).integers(0, 255, (20, 112, 112, 3), dtype=np.uint8)

    def run(**kw):
        out = loaded(
            video, mode="no_condition", num_inference_steps=2,
            generator=torch.Generator().manual_seed(0), **kw,
        )  # fmt: skip
        return out.audios[0]

    default = run()
    assert np.array_equal(default, run(guidance_scale=5.0))
    assert not np.array_equal(default, run(guidance_scale=3.0))

    service = FoleyService(loaded)
    assert service.default_guidance("no_condition") == 5.0
    assert service.default_guidance("ambient_joint") == 3.0
    request = service._request_pipeline(None)
    assert request.default_guidance_scale("no_condition") == 5.0
    setting = guidance_setting(loaded, None, ("ambient_joint", "no_condition"))
    assert setting == {"ambient_joint": 3.0, "no_condition": 5.0}
    assert format_guidance(setting) == "ambient_joint 3, no_condition 5"
    assert guidance_setting(loaded, 2.0, ("no_condition",)) == 2.0
    with pytest.raises(InputError, match="default_guidance"):
        FoleyPipeline.from_pipe(pipe, default_guidance={"loud": 2.0})
