"""Audio-only files cut short or damaged: what decodes is kept, with the warning videos give
("decoded X s of Y s"); whole files give none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from foley.errors import InputError
from foley.io import load_audio, read_audio

SUBTYPES = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS"}


def _noise_file(folder: Path, suffix: str, seconds: float = 4.0, rate: int = 16000) -> Path:
    """Noise (many Ogg pages, no long runs a codec squeezes away) as ``full<suffix>``."""
    wave = 0.2 * np.random.default_rng(0).standard_normal(int(seconds * rate))
    path = folder / f"full{suffix}"
    sf.write(str(path), wave.astype(np.float32), rate, subtype=SUBTYPES[suffix])
    return path


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    cut = path.with_name(f"cut{path.suffix}")
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_a_cut_file_keeps_what_decoded_and_says_how_much(tmp_path, suffix):
    full = _noise_file(tmp_path, suffix)
    whole = read_audio(full)
    assert whole.warnings == [] and whole.wave.size == 4 * 16000
    audio = read_audio(_cut(full, 0.5))
    assert 1.0 < audio.wave.size / 16000 < 2.5
    assert len(audio.warnings) >= 1 and "of 4.0 s" in audio.warnings[-1], audio.warnings
    assert "looks truncated" in audio.warnings[-1]
    np.testing.assert_allclose(audio.wave[:8000], whole.wave[:8000], atol=1e-6)
    assert load_audio(_cut(full, 0.5)).size == audio.wave.size  # the wave without warnings


def test_a_cut_ogg_warns_that_its_stream_has_no_end(tmp_path):
    full = _noise_file(tmp_path, ".ogg")
    assert read_audio(full).warnings == []
    audio = read_audio(_cut(full, 0.9))
    assert 1.0 < audio.wave.size / 16000 < 4.0
    assert len(audio.warnings) == 1 and "no end" in audio.warnings[0], audio.warnings


def test_a_file_cut_before_any_sound_is_a_one_line_error(tmp_path):
    full = _noise_file(tmp_path, ".flac")
    with pytest.raises(InputError) as err:
        read_audio(_cut(full, 0.002))
    assert "cut.flac" in str(err.value) and "\n" not in str(err.value)


def test_a_cut_mp3_decodes_what_is_there_without_a_false_warning(tmp_path):
    import av

    path = tmp_path / "full.mp3"
    wave = 0.2 * np.random.default_rng(1).standard_normal(16000 * 4).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libmp3lame", rate=16000, layout="mono")
        for lo in range(0, wave.size, 1152):
            frame = av.AudioFrame.from_ndarray(wave[None, lo : lo + 1152], "flt", "mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert read_audio(path).warnings == []
    # mp3 declares no length either; its duration is estimated from the size, so a cut mp3
    # is one ffmpeg believes shorter: no false warning, and the part that is there decodes
    cut = read_audio(_cut(path, 0.5))
    assert 1.0 < cut.wave.size / 16000 < 2.5


def test_prepare_notes_a_truncated_sound(tmp_path):
    from foley.data.prepare import prepare_folder

    src = tmp_path / "src"
    src.mkdir()
    full = _noise_file(src, ".flac", seconds=8.0)
    _cut(full, 0.5).rename(src / "knock.flac")
    full.unlink()
    lines: list[str] = []
    prepare_folder(src, tmp_path / "data", progress=False, log=lines.append)
    notes = [line for line in lines if line.startswith("note knock.flac")]
    assert len(notes) == 1 and "of 8.0 s" in notes[0], lines
