"""The bad-input corpus of issue 9, generated in a folder: videos and condition audio that every
entry point (io, FoleyPipeline, ``foley generate``, the app) must answer with a one-line error or
a correct result.

Each case says what a correct entry point does with it: ``"error"`` (refuse with a one-line
:class:`foley.errors.InputError` whose text contains ``message``) or ``"ok"`` (decode; the
decoded length is ``seconds``).  Files are small and cheap to make: the "huge" and "4 hours"
cases are short files whose headers claim more, so nothing large is allocated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from foley import io
from tests.media import counter_frames, make_bad_files, set_rotation


@dataclass(frozen=True)
class Case:
    path: Path
    expect: str  # "error" or "ok"
    message: str = ""  # for "error": a fragment of the one-line message
    seconds: float = 0.0  # for "ok": the decoded duration


# ---- mp4 / avi header surgery ------------------------------------------------------------------
def _find_after(data: bytes | bytearray, tag: bytes, start: int = 0) -> int:
    i = data.find(tag, start)
    assert i > 0, f"no {tag!r} box"
    return i


def claim_duration(path: Path, seconds: float) -> None:
    """Patch an mp4 (version-0 boxes) to claim ``seconds``: headers and sample durations.

    Demuxers trust the sample tables (stts) over the header durations, so both are stretched:
    the few frames of the file end up ``seconds / num_frames`` apart.
    """
    data = bytearray(path.read_bytes())
    u32 = lambda at: struct.unpack(">I", data[at : at + 4])[0]  # noqa: E731
    put = lambda at, v: data.__setitem__(slice(at, at + 4), struct.pack(">I", int(v)))  # noqa: E731
    movie_scale = u32(_find_after(data, b"mvhd") + 16)
    put(_find_after(data, b"mvhd") + 20, seconds * movie_scale)
    i = data.find(b"tkhd")
    while i > 0:
        put(i + 24, seconds * movie_scale)
        i = data.find(b"tkhd", i + 4)
    i = data.find(b"mdhd")
    while i > 0:  # each track's mdhd precedes its stts
        scale = u32(i + 16)
        put(i + 20, seconds * scale)
        j = _find_after(data, b"stts", i)
        entries = [(u32(j + 12 + 8 * k), j + 16 + 8 * k) for k in range(u32(j + 8))]
        total = sum(count for count, _ in entries)
        for _, at in entries:
            put(at, np.ceil(seconds * scale / total))
        i = data.find(b"mdhd", i + 4)
    i = data.find(b"elst")  # an edit list would cap the presentation: stretch it too
    while i > 0:
        for k in range(u32(i + 8) if data[i + 4] == 0 else 0):
            put(i + 12 + 12 * k, seconds * movie_scale)
        i = data.find(b"elst", i + 4)
    path.write_bytes(bytes(data))


def write_raw_avi(path: Path, num_frames: int = 8, size: int = 16, fps: int = 8) -> Path:
    """An AVI of uncompressed frames: its picture size lives only in the header."""
    import av

    with av.open(str(path), "w", format="avi") as c:
        stream = c.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "bgr24"
        for i in range(num_frames):
            img = np.full((size, size, 3), 20 * i % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return path


def claim_avi_size(path: Path, width: int, height: int) -> None:
    """Patch the AVI main header and BITMAPINFOHEADER to claim ``width`` x ``height``."""
    data = bytearray(path.read_bytes())
    i = _find_after(data, b"avih") + 8 + 32
    data[i : i + 8] = struct.pack("<Ii", width, height)
    i = _find_after(data, b"strf") + 8 + 4
    data[i : i + 8] = struct.pack("<ii", width, -height)  # negative: top-down rows
    path.write_bytes(bytes(data))


def write_frames(
    path: Path, num_frames: int, fps: float, size: int = 48, width: int | None = None, **kw
) -> Path:
    frames = counter_frames(num_frames, size, width or size)
    return io.write_video(path, frames, fps, **kw)


def write_wave(path: Path, wave: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    import soundfile as sf

    sf.write(str(path), wave, sample_rate, subtype=subtype)
    return path


# ---- the corpus --------------------------------------------------------------------------------
def make_bad_videos(folder: Path) -> dict[str, Case]:
    """Videos: name -> :class:`Case` (what a correct entry point does with the file)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = make_bad_files(folder / "base")
    cases = {
        "zero_bytes": Case(base["zero_bytes"], "error", "empty (0 bytes)"),
        "text_as_mp4": Case(base["text_as_mp4"], "error", "not a readable video"),
        "truncated": Case(base["truncated"], "error", ""),
        "audio_only_wav": Case(base["audio_only"], "error", "no video stream"),
        "audio_only_mp4": Case(base["audio_only_m4a"], "error", "no video stream"),
        "no_frames": Case(base["no_frames"], "error", ""),
    }
    zero = write_raw_avi(folder / "zero_size.avi")
    claim_avi_size(zero, 0, 0)
    cases["zero_size"] = Case(zero, "error", "no picture size")
    huge = write_raw_avi(folder / "huge.avi")
    claim_avi_size(huge, 16_000, 16_000)  # 256 Mpx (768 MB a frame): refused before decoding
    cases["huge"] = Case(huge, "error", "above the limit")
    lying = write_raw_avi(folder / "size_lie.avi")
    claim_avi_size(lying, 64, 64)  # frames smaller than the header says
    cases["size_lie"] = Case(lying, "error", "cannot be decoded")
    long = write_frames(folder / "four_hours.mp4", 16, 16.0, audio=np.zeros(16000, np.float32))
    claim_duration(long, 4 * 3600.0)
    cases["four_hours"] = Case(long, "error", "14400.0 s long")

    rotated = write_frames(folder / "rotated.mp4", 16, 8.0, size=48, width=64)
    set_rotation(rotated, 90)
    cases["rotated"] = Case(rotated, "ok", seconds=2.0)
    times = np.cumsum(np.r_[0.0, np.tile([0.05, 0.15, 0.1], 7)])[:20]  # jittery 5..20 fps
    vfr = write_frames(folder / "vfr.mp4", 20, 10.0, frame_times=times)
    cases["vfr"] = Case(vfr, "ok", seconds=float(times[-1] + 0.1))
    cases["fps_1"] = Case(write_frames(folder / "fps1.mp4", 3, 1.0), "ok", seconds=3.0)
    cases["fps_240"] = Case(
        write_frames(folder / "fps240.mp4", 240, 240.0, size=32), "ok", seconds=1.0
    )
    cases["fps_29.97"] = Case(
        write_frames(folder / "ntsc.mp4", 30, float(Fraction(30000, 1001))), "ok", seconds=1.001
    )
    cases["odd_size"] = Case(
        io.write_video(folder / "odd.mp4", counter_frames(8, 7, 13), 8.0), "ok", seconds=1.0
    )
    return cases


def make_bad_audio(folder: Path) -> dict[str, Case]:
    """Condition audio: name -> :class:`Case` (``seconds`` is the decoded length at 16 kHz)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = lambda sr, s: np.arange(int(sr * s)) / sr  # noqa: E731
    tone = lambda sr, s: 0.3 * np.sin(2 * np.pi * 440 * t(sr, s))  # noqa: E731
    cases = {}
    for sr in (8_000, 44_100, 96_000):
        path = write_wave(folder / f"sr{sr}.wav", tone(sr, 1.5), sr)
        cases[f"sr_{sr}"] = Case(path, "ok", seconds=1.5)
    stereo = np.stack([tone(22_050, 1.0), -tone(22_050, 1.0) * 0.5], axis=1)
    cases["stereo"] = Case(write_wave(folder / "stereo.wav", stereo, 22_050), "ok", seconds=1.0)
    six = np.stack([tone(48_000, 1.0) * (k + 1) / 8 for k in range(6)], axis=1)
    cases["6_channels"] = Case(write_wave(folder / "surround.wav", six, 48_000), "ok", seconds=1.0)
    cases["flac_mono"] = Case(
        write_wave(folder / "mono.flac", tone(16_000, 0.5), 16_000), "ok", seconds=0.5
    )
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        wave = tone(16_000, 1.0).astype(np.float32)
        wave[100:110] = value
        path = write_wave(folder / f"{name}.wav", wave, 16_000, subtype="FLOAT")
        cases[name] = Case(path, "error", "NaN or infinite")
    cases["no_samples"] = Case(
        write_wave(folder / "no_samples.wav", np.zeros(0, np.float32), 16_000),
        "error",
        "no samples",
    )
    cases["zero_bytes"] = Case(folder / "empty.wav", "error", "empty (0 bytes)")
    cases["zero_bytes"].path.write_bytes(b"")
    cases["text_as_wav"] = Case(folder / "notes.wav", "error", "not a readable audio")
    cases["text_as_wav"].path.write_text("RIFF? no.\n" * 30)
    return cases
