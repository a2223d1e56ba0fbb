"""Bounded fuzzing of foley.io with hypothesis: mutated mp4 and wav bytes.

Off by default (``-m 'not fuzz'`` in pyproject's addopts); run it with::

    pytest -m fuzz tests/test_fuzz_io.py                      # ~1-2 minutes
    FOLEY_FUZZ_EXAMPLES=2000 pytest -m fuzz tests/test_fuzz_io.py   # longer

Every mutated file must give a one-line :class:`foley.errors.InputError` or a well-formed result
(uint8 frames of the contract's shape, finite mono audio in [-1, 1]) within the per-example
deadline: never another exception, a crash or a hang.
"""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from foley.config import AVConfig  # noqa: E402
from foley.errors import InputError  # noqa: E402
from foley.io import load_audio, load_video, save_audio, write_video  # noqa: E402
from tests.media import counter_frames  # noqa: E402

pytestmark = pytest.mark.fuzz
CFG = AVConfig(clip_seconds=1.0, fps=8.0, frame_size=32, max_video_seconds=30.0)
EXAMPLES = int(os.environ.get("FOLEY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("FOLEY_FUZZ_RANDOM") is None,  # reproducible unless asked
)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("fuzz_seeds")
    rng = np.random.default_rng(0)
    mp4 = write_video(
        root / "seed.mp4", counter_frames(8, 32, 48), 8.0, audio=rng.uniform(-0.3, 0.3, 8000)
    )
    wav = save_audio(root / "seed.wav", rng.uniform(-0.3, 0.3, 4000))
    return {"mp4": mp4.read_bytes(), "wav": wav.read_bytes()}


def mutations(max_edits: int = 8):
    """(kind, position fraction, payload) edits: flip, overwrite, insert, delete, truncate."""
    edit = st.tuples(
        st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]),
        st.floats(0.0, 1.0),
        st.binary(min_size=1, max_size=16),
    )
    return st.lists(edit, min_size=1, max_size=max_edits)


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, where, payload in edits:
        if not out:
            break
        i = min(int(where * len(out)), len(out) - 1)
        if kind == "flip":
            out[i] ^= payload[0] or 0x01
        elif kind == "overwrite":
            out[i : i + len(payload)] = payload
        elif kind == "insert":
            out[i:i] = payload
        elif kind == "delete":
            del out[i : i + len(payload)]
        else:
            del out[i:]
    return bytes(out)


def check_error(err: InputError) -> None:
    text = str(err)
    assert text and len(text.splitlines()) == 1


@FUZZ
@given(edits=mutations())
def test_mutated_mp4(seeds, tmp_path_factory, edits):
    path = tmp_path_factory.mktemp("mp4") / "fuzzed.mp4"
    path.write_bytes(mutate(seeds["mp4"], edits))
    try:
        video = load_video(path, CFG)
    except InputError as err:
        check_error(err)
    else:
        assert video.frames.dtype == np.uint8 and video.frames.ndim == 4
        assert video.frames.shape[1:] == (32, 32, 3) and video.frames.shape[0] >= 1
        assert np.isfinite(video.duration) and video.duration > 0
        if video.audio is not None:
            assert np.isfinite(video.audio).all() and np.abs(video.audio).max(initial=0) <= 1
    try:
        wave = load_audio(path, CFG.sample_rate, max_seconds=30.0)
    except InputError as err:
        check_error(err)
    else:
        assert wave.dtype == np.float32 and wave.ndim == 1 and np.isfinite(wave).all()


@FUZZ
@given(edits=mutations())
def test_mutated_wav(seeds, tmp_path_factory, edits):
    path = tmp_path_factory.mktemp("wav") / "fuzzed.wav"
    path.write_bytes(mutate(seeds["wav"], edits))
    try:
        wave = load_audio(path, CFG.sample_rate, max_seconds=30.0)
    except InputError as err:
        check_error(err)
    else:
        assert wave.dtype == np.float32 and wave.ndim == 1 and wave.size > 0
        assert np.isfinite(wave).all() and np.abs(wave).max() <= 1.0


@FUZZ
@given(data=st.binary(min_size=0, max_size=2048), suffix=st.sampled_from([".mp4", ".wav", ".mov"]))
def test_random_bytes(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"random{suffix}"
    path.write_bytes(data)
    for load in (lambda: load_video(path, CFG), lambda: load_audio(path, max_seconds=30.0)):
        try:
            load()
        except InputError as err:
            check_error(err)
