"""The bad-input corpus (tests/bad_inputs.py) through every entry point: foley.io, FoleyPipeline,
``foley generate`` and the app's API.  Each answers with a one-line error or a correct result,
within a time bound (a hang fails the test), and the app keeps serving afterwards.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from foley.errors import InputError
from foley.io import load_audio, load_video, probe_video, save_audio
from tests.app_fixtures import CFG, tiny_pipeline, write_clip
from tests.bad_inputs import make_bad_audio, make_bad_videos
from tests.media import frame_level

VIDEO_CASES = [
    "zero_bytes", "text_as_mp4", "truncated", "audio_only_wav", "audio_only_mp4", "no_frames",
    "zero_size", "huge", "size_lie", "four_hours", "rotated", "vfr", "fps_1", "fps_240",
    "fps_29.97", "odd_size",
]  # fmt: skip
AUDIO_CASES = [
    "sr_8000", "sr_44100", "sr_96000", "stereo", "6_channels", "flac_mono", "nan", "inf",
    "no_samples", "zero_bytes", "text_as_wav",
]  # fmt: skip
LIMIT_S = 60  # no single call may take longer (a hang fails instead of blocking the run)


@contextmanager
def deadline(seconds: int = LIMIT_S):
    """Fail with TimeoutError if the block runs longer than ``seconds`` (main thread, Unix)."""

    def expired(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad_inputs")
    videos, audio = make_bad_videos(root / "videos"), make_bad_audio(root / "audio")
    assert set(videos) == set(VIDEO_CASES) and set(audio) == set(AUDIO_CASES)
    good = write_clip(root / "good.mp4", seconds=1.5)
    ambience = save_audio(
        root / "ambience.wav", 0.05 * np.random.default_rng(0).standard_normal(16000)
    )
    return {"root": root, "videos": videos, "audio": audio, "good": good, "ambience": ambience}


def check_error(err: BaseException, case) -> str:
    text = str(err)
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    assert case.message in text, text
    return text


# ---- foley.io ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VIDEO_CASES)
def test_io_load_video(corpus, name):
    case = corpus["videos"][name]
    if case.expect == "error":
        with deadline(), pytest.raises(InputError) as err:
            load_video(case.path)
        assert case.path.name in check_error(err.value, case)
        return
    with deadline():
        video = load_video(case.path)
    fps = video.fps
    assert video.frames.dtype == np.uint8 and video.frames.shape[1:] == (112, 112, 3)
    assert video.duration == pytest.approx(case.seconds, abs=1e-3)
    assert video.num_frames == int(np.floor(case.seconds * fps + 1e-6))
    info = probe_video(case.path)
    if name == "rotated":  # stored 64 x 48, shown rotated a quarter turn
        assert info.rotation in (90, 270) and video.source_size == (48, 64)
    if name in ("fps_1", "fps_240"):  # frame k shows the source frame on screen at k / fps
        src_fps = 1.0 if name == "fps_1" else 240.0
        for k in range(video.num_frames):
            i = int(np.floor(k / fps * src_fps + 1e-6))
            assert abs(frame_level(video.frames[k]) - ((i * 7) % 200 + 20)) < 4, (k, i)


@pytest.mark.parametrize("name", AUDIO_CASES)
def test_io_load_audio(corpus, name):
    case = corpus["audio"][name]
    if case.expect == "error":
        with deadline(), pytest.raises(InputError) as err:
            load_audio(case.path)
        check_error(err.value, case)
        return
    with deadline():
        wave = load_audio(case.path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert wave.size == round(case.seconds * 16_000)
    assert np.isfinite(wave).all() and 0.05 < np.abs(wave).max() <= 1.0


# ---- FoleyPipeline -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    pipe = tiny_pipeline(with_mc3=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _generate(pipe, video, **kw):
    kw.setdefault("mode", "no_condition")
    with deadline():
        return pipe(video, num_inference_steps=1, generator=torch.Generator().manual_seed(0), **kw)


@pytest.mark.parametrize("name", VIDEO_CASES)
def test_pipeline_video(corpus, pipe, name):
    case = corpus["videos"][name]
    if case.expect == "error":
        with pytest.raises(InputError) as err:
            _generate(pipe, case.path)
        check_error(err.value, case)
        return
    audio = _generate(pipe, case.path).audios[0]
    assert audio.size == CFG.num_samples(case.seconds)
    assert np.isfinite(audio).all()


@pytest.mark.parametrize("name", AUDIO_CASES)
def test_pipeline_condition_audio(corpus, pipe, name):
    case = corpus["audio"][name]
    run = lambda cond: _generate(pipe, corpus["good"], mode="ambient_joint", condition_audio=cond)  # noqa: E731
    if case.expect == "error":
        with pytest.raises(InputError) as err:
            run(case.path)
        check_error(err.value, case)
        return
    out = run(case.path)
    assert out.audios[0].size == CFG.num_samples(1.5) and np.isfinite(out.audios[0]).all()
    assert out.condition_ids[0] == "user"


def test_pipeline_array_inputs(corpus, pipe):
    """Arrays given directly: non-finite, empty or multi-channel audio, and bad frames."""
    good = corpus["good"]
    tone = 0.3 * np.sin(np.arange(16000) / 7.0).astype(np.float32)
    for bad in (
        np.full(8000, np.nan, np.float32),
        np.array([0.1, np.inf], np.float32),
        np.zeros(0),
    ):
        with pytest.raises(InputError, match="empty or has NaN"):
            _generate(pipe, good, mode="ambient_joint", condition_audio=bad)
    with pytest.raises(InputError, match="mono"):  # (N, 2) would be interleaved, not mixed
        _generate(pipe, good, mode="ambient_joint", condition_audio=np.stack([tone, tone], 1))
    out = _generate(pipe, good, mode="ambient_joint", condition_audio=tone[None, :])  # (1, N)
    assert np.isfinite(out.audios[0]).all()
    for frames, message in (
        (np.zeros((0, 32, 32, 3), np.uint8), "no frames"),
        (np.zeros((8, 32, 32), np.uint8), "uint8"),
        (np.zeros((8, 64, 64, 3), np.uint8), "32x32"),
        (torch.full((8, 3, 32, 32), float("nan")), "NaN"),
    ):
        with pytest.raises(InputError, match=message):
            _generate(pipe, frames)


# ---- foley generate ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(corpus, pipe) -> Path:
    path = corpus["root"] / "model"
    pipe.save_pretrained(path)
    return path


def _cli(capsys, *argv) -> tuple[int, str]:
    from foley.cli.main import main

    with deadline():
        rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip()


def _cli_generate(capsys, model_dir, video, out, *extra):
    args = ["generate", video, "-o", out, "--model", model_dir, "--steps", "1", "--quiet"]
    return _cli(capsys, *args, "--device", "cpu", *extra)


@pytest.mark.parametrize("name", VIDEO_CASES)
def test_cli_generate_video(corpus, model_dir, tmp_path, capsys, name):
    case = corpus["videos"][name]
    out = tmp_path / "out.mp4"
    rc, err = _cli_generate(capsys, model_dir, case.path, out, "--mode", "no_condition")
    if case.expect == "error":
        assert rc == 1 and len(err.splitlines()) == 1, err
        assert err.startswith("foley generate: error:") and case.message in err
        assert not out.exists()
        return
    assert rc == 0, err
    info = probe_video(out)
    assert info.has_audio
    assert load_audio(out).size == pytest.approx(CFG.num_samples(case.seconds), abs=400)


@pytest.mark.parametrize("name", AUDIO_CASES)
def test_cli_generate_condition_audio(corpus, model_dir, tmp_path, capsys, name):
    case = corpus["audio"][name]
    out = tmp_path / "out.mp4"
    rc, err = _cli_generate(
        capsys, model_dir, corpus["good"], out, "--mode", "ambient_joint",
        "--condition-audio", case.path,
    )  # fmt: skip
    if case.expect == "error":
        assert rc == 1 and len(err.splitlines()) == 1 and case.message in err, err
        assert not out.exists()
    else:
        assert rc == 0 and probe_video(out).has_audio, err


def test_cli_folder_with_bad_files_keeps_going(corpus, model_dir, tmp_path, capsys):
    """A folder run reports each bad video on one line and still writes the good ones."""
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("text_as_mp4", "zero_bytes", "four_hours", "vfr"):
        src = corpus["videos"][name].path
        shutil.copy(src, folder / f"{name}{src.suffix}")
    rc, err = _cli_generate(capsys, model_dir, folder, tmp_path / "out", "--mode", "no_condition")
    assert rc == 1
    lines = err.splitlines()
    assert len(lines) == 3 and all(line.startswith("foley generate: ") for line in lines), err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["vfr.mp4"]


# ---- the app's API -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(corpus, model_dir):
    pytest.importorskip("gradio")
    from gradio_client import Client

    from app.service import Limits, load_models
    from app.ui import build_ui, launch
    from tests.test_app import free_port

    limits = Limits(max_video_seconds=4.0, max_upload_mb=2.0, avs_shuffles=2, max_candidates=2)
    demo = build_ui(lambda: load_models(model_dir, device="cpu"), limits=limits)
    url = launch(demo, port=free_port(), block=False, quiet=True)
    assert url.startswith("http://127.0.0.1:")
    client = Client(url, verbose=False, download_files=str(corpus["root"] / "downloads"))
    yield client
    demo.close()


HEADER_ONLY_PASSES = {"huge", "size_lie"}  # refused by /generate (decoding), not by the probe
APP_OK_VIDEOS = {"rotated", "vfr", "fps_240"}  # the other good cases: io, pipeline and CLI tests
APP_OK_AUDIO = {"sr_8000", "6_channels"}


def _app_generate(client, video, condition):
    from gradio_client import handle_file

    job = client.submit(
        handle_file(str(video)), "ambient_joint", 1, 1.0, 0, 1, handle_file(str(condition)), -45.0,
        api_name="/generate",
    )  # fmt: skip
    return job.result(timeout=LIMIT_S)


def _app_check(client, video):
    from gradio_client import handle_file

    return client.submit(handle_file(str(video)), api_name="/check_video").result(timeout=LIMIT_S)


def _app_error(call, case) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        call()
    check_error(err.value, case)


def test_app_api(served, corpus):
    """Every case through /check_video and /generate; the app answers each and keeps serving."""
    client, videos, audio = served, corpus["videos"], corpus["audio"]
    for name, case in videos.items():
        if case.expect == "error":
            # /check_video reads the header only: it may pass a file that decoding refuses
            if name not in HEADER_ONLY_PASSES:
                _app_error(lambda c=case: _app_check(client, c.path), case)
            _app_error(lambda c=case: _app_generate(client, c.path, corpus["ambience"]), case)
        elif name in APP_OK_VIDEOS:
            assert _app_check(client, case.path).startswith(case.path.name), name
            result = _app_generate(client, case.path, corpus["ambience"])
            assert load_audio(result[1]).size == pytest.approx(
                CFG.num_samples(case.seconds), abs=CFG.samples_per_frame
            ), name
    for name, case in audio.items():
        if case.expect == "error":
            _app_error(lambda c=case: _app_generate(client, corpus["good"], c.path), case)
        elif name in APP_OK_AUDIO:
            details = _app_generate(client, corpus["good"], case.path)[3]
            assert details["condition"]["id"] == "uploaded", name
    # still serving
    result = _app_generate(client, corpus["good"], corpus["ambience"])
    assert np.isfinite(load_audio(result[1])).all()
