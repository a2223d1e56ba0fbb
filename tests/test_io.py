"""foley.io: decoding at the contract's rate and size, muxing, and refusing bad files."""

from __future__ import annotations

import numpy as np
import pytest

from foley import io
from foley.config import AVConfig
from foley.errors import InputError
from tests.media import (
    counter_frames,
    frame_level,
    impulse_audio,
    make_bad_files,
    set_rotation,
)

CFG = AVConfig()


@pytest.mark.parametrize("fps", [30000 / 1001, 25.0, 1.0, 60.0])
def test_any_frame_rate_maps_to_contract_clock(tmp_path, fps):
    seconds = 3.0 if fps >= 1 else 4.0
    n = max(2, int(round(seconds * fps)))
    frames = counter_frames(n)
    path = io.write_video(tmp_path / "v.mp4", frames, fps)
    video = io.load_video(path, CFG, with_audio=False)
    assert video.fps == CFG.fps
    assert video.frames.shape[1:] == (CFG.frame_size, CFG.frame_size, 3)
    assert video.num_frames == pytest.approx(n / fps * CFG.fps, abs=1)
    # frame k shows the source frame on screen at time k / fps_out (sample and hold)
    for k in range(0, video.num_frames, 5):
        src = min(int(np.floor(k / CFG.fps * fps + 1e-6)), n - 1)
        expected = frame_level(frames[src])
        assert frame_level(video.frames[k]) == pytest.approx(expected, abs=4), (k, src)


def test_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.02, 0.15, n - 1))])
    frames = counter_frames(n)
    path = io.write_video(tmp_path / "vfr.mp4", frames, 30, frame_times=times)
    video = io.load_video(path, CFG, with_audio=False)
    for k in range(video.num_frames):
        t = k / CFG.fps
        src = int(np.searchsorted(times, t + 1e-6, side="right") - 1)
        assert frame_level(video.frames[k]) == pytest.approx(frame_level(frames[src]), abs=4)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, degrees):
    frames = np.zeros((8, 96, 160, 3), np.uint8)
    frames[:, :, :40, 0] = 255  # a red band on the left edge as stored
    path = io.write_video(tmp_path / "r.mp4", frames, 16)
    set_rotation(path, degrees)
    video = io.load_video(path, CFG, with_audio=False)
    red = video.frames[0, :, :, 0].astype(float)
    edges = {
        "top": red[:8].mean(),
        "right": red[:, -8:].mean(),
        "bottom": red[-8:].mean(),
        "left": red[:, :8].mean(),
    }
    # the band moves clockwise with the display rotation
    expected = {90: "top", 180: "right", 270: "bottom"}[degrees]
    assert max(edges, key=edges.get) == expected
    w, h = video.source_size
    assert (w, h) == ((96, 160) if degrees in (90, 270) else (160, 96))
    assert io.probe_video(path).rotation % 180 == degrees % 180


def test_resolution_aspect_kept_and_centre_cropped(tmp_path):
    frames = np.zeros((4, 100, 300, 3), np.uint8)
    frames[:, :, 100:200] = 200  # the centre third is bright
    path = io.write_video(tmp_path / "wide.mp4", frames, 16)
    video = io.load_video(path, CFG, with_audio=False)
    # aspect kept: the 100 px centre third scales to ~112 px, i.e. the whole crop is bright
    assert video.frames[0].mean() > 180


def test_audio_decoded_to_16k_mono_in_sync(tmp_path):
    sr = 44_100
    wave = impulse_audio(3.0, at=1.25, sample_rate=sr)
    stereo_src = tmp_path / "a.mp4"
    io.write_video(stereo_src, counter_frames(48), 16, audio=wave, sample_rate=sr)
    video = io.load_video(stereo_src, CFG)
    assert video.audio is not None and video.audio.dtype == np.float32
    assert len(video.audio) == pytest.approx(3.0 * CFG.sample_rate, abs=CFG.sample_rate * 0.01)
    onset = int(np.argmax(np.abs(video.audio))) / CFG.sample_rate
    assert onset == pytest.approx(1.25, abs=1.0 / CFG.fps)


def test_video_without_audio(tmp_path):
    path = io.write_video(tmp_path / "silent.mp4", counter_frames(16), 16)
    video = io.load_video(path, CFG)
    assert video.audio is None
    assert not io.probe_video(path).has_audio


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_audio_file_round_trip(tmp_path, suffix):
    t = np.arange(16000) / 16000
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = io.save_audio(tmp_path / f"tone{suffix}", wave, 16000)
    back = io.load_audio(path, 16000)
    assert back.shape[0] == pytest.approx(16000, abs=2000 if suffix == ".ogg" else 0)
    n = min(len(back), len(wave))
    tol = 0.05 if suffix == ".ogg" else 1e-3
    assert np.abs(back[:n] - wave[:n]).mean() < tol


def test_load_audio_resamples_and_downmixes(tmp_path):
    import soundfile as sf

    sr = 22_050
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.zeros_like(t)], axis=1).astype(np.float32)
    sf.write(tmp_path / "s.wav", stereo, sr)
    mono = io.load_audio(tmp_path / "s.wav", 16000)
    assert mono.shape == (16000,)
    assert np.abs(mono).max() == pytest.approx(0.5, abs=0.02)


def test_mux_replaces_audio_and_copies_video(tmp_path):
    src = io.write_video(
        tmp_path / "in.mp4", counter_frames(48), 16, audio=impulse_audio(3.0, at=0.5)
    )
    new = impulse_audio(3.0, at=2.0)
    out = io.mux_audio(src, new, 16000, tmp_path / "out.mp4")
    import av

    with av.open(str(src)) as a, av.open(str(out)) as b:
        pa = [bytes(p) for p in a.demux(a.streams.video[0]) if p.size]
        pb = [bytes(p) for p in b.demux(b.streams.video[0]) if p.size]
        assert pa == pb  # the video stream is copied, not re-encoded
        assert len(b.streams.audio) == 1
    back = io.load_video(out, CFG)
    assert int(np.argmax(np.abs(back.audio))) / 16000 == pytest.approx(2.0, abs=1 / CFG.fps)


def test_bad_files_raise_one_line_input_errors(tmp_path):
    bad = make_bad_files(tmp_path)
    for name, path in bad.items():
        with pytest.raises(InputError) as info:
            io.load_video(path, CFG)
        message = str(info.value)
        assert "\n" not in message and path.name in message, (name, message)
    with pytest.raises(InputError, match="no video stream"):
        io.load_video(bad["audio_only_m4a"], CFG)
    with pytest.raises(InputError, match="empty"):
        io.load_video(bad["zero_bytes"], CFG)
    with pytest.raises(InputError, match="no such file"):
        io.load_video(tmp_path / "missing.mp4", CFG)


def test_limits_on_length_and_resolution(tmp_path):
    path = io.write_video(tmp_path / "long.mp4", counter_frames(64), 16)
    with pytest.raises(InputError, match="limit of 2 s"):
        io.load_video(path, CFG, max_seconds=2.0)
    big = io.write_video(tmp_path / "big.mp4", counter_frames(2, 240, 320), 16)
    with pytest.raises(InputError, match="resolution 320x240"):
        io.load_video(big, CFG, max_pixels=320 * 200)


def test_audio_with_nan_is_refused(tmp_path):
    import soundfile as sf

    wave = np.zeros(1600, np.float32)
    wave[100] = np.nan
    sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        io.load_audio(tmp_path / "nan.wav")


def test_frames_to_tensor_layout():
    frames = counter_frames(3, 8, 8)
    x = io.frames_to_tensor(frames)
    assert tuple(x.shape) == (3, 3, 8, 8)
    assert float(x.max()) <= 1.0 and float(x[1, 0, 0, 0]) == pytest.approx(frames[1, 0, 0, 0] / 255)
