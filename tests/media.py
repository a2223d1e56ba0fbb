"""Generated media for tests: videos with known content, and the bad files io must refuse."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from foley import io


def counter_frames(num_frames: int, height: int = 96, width: int = 128) -> np.ndarray:
    """Frame ``i`` is a flat grey of level ``(i * 7) % 200 + 20``: the index is readable back."""
    levels = (np.arange(num_frames) * 7) % 200 + 20
    return np.broadcast_to(
        levels[:, None, None, None].astype(np.uint8), (num_frames, height, width, 3)
    ).copy()


def frame_level(frame: np.ndarray) -> float:
    return float(frame.astype(np.float64).mean())


def impulse_audio(seconds: float, at: float, sample_rate: int = 16_000) -> np.ndarray:
    wave = np.zeros(int(seconds * sample_rate), np.float32)
    i = int(at * sample_rate)
    wave[i : i + 40] = 0.8
    return wave


def set_rotation(path: Path, degrees_clockwise: int) -> None:
    """Patch the mp4 track header's display matrix (what phones write for portrait video)."""
    data = bytearray(path.read_bytes())
    i = data.find(b"tkhd")
    assert i > 0 and data[i + 4] == 0, "expected a version-0 tkhd box"
    off = i + 4 + 40
    one, w = 0x10000, 0x40000000
    matrices = {
        90: (0, one, 0, -one, 0, 0, 0, 0, w),
        180: (-one, 0, 0, 0, -one, 0, 0, 0, w),
        270: (0, -one, 0, one, 0, 0, 0, 0, w),
    }
    data[off : off + 36] = struct.pack(">9i", *matrices[degrees_clockwise])
    path.write_bytes(bytes(data))


def make_bad_files(folder: Path) -> dict[str, Path]:
    """The bad-input corpus of the io layer: name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    out["zero_bytes"] = folder / "empty.mp4"
    out["zero_bytes"].write_bytes(b"")
    out["text_as_mp4"] = folder / "notes.mp4"
    out["text_as_mp4"].write_text("this is not a video\n" * 20)
    good = io.write_video(folder / "good.mp4", counter_frames(32), 16, audio=np.zeros(32000))
    data = good.read_bytes()
    out["truncated"] = folder / "truncated.mp4"
    out["truncated"].write_bytes(data[: len(data) // 3])
    out["audio_only"] = folder / "audio_only.wav"
    io.save_audio(out["audio_only"], np.zeros(16000, np.float32))
    out["audio_only_m4a"] = folder / "audio_only.mp4"
    _write_audio_only_mp4(out["audio_only_m4a"])
    out["no_frames"] = folder / "no_frames.mp4"
    _write_video_without_frames(out["no_frames"])
    return out


def _write_video_without_frames(path: Path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("libx264", rate=16)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()


def _write_audio_only_mp4(path: Path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=16000)
        stream.layout = "mono"
        io._encode_audio(c, stream, np.zeros(16000, np.float32), 16000)


def prepared_footage(root: Path, videos: int = 4, val_fraction: float = 0.25) -> Path:
    """``root/data``: a ``foley prepare`` folder of ``videos`` 2 s clips (counter frames at
    16 fps, 32 x 32, seeded noise audio) written into ``root/footage``, with a val split."""
    from foley.data.prepare import prepare_folder

    src = root / "footage"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(videos):
        wave = (0.2 * rng.standard_normal(16_000 * 2)).astype(np.float32)
        io.write_video(src / f"take {i}.mp4", counter_frames(16 * 2, 32, 32), 16.0, wave, 16_000)
    data = root / "data"
    prepare_folder(
        src, data, val_fraction=val_fraction, test_fraction=0.0, progress=False, log=print
    )
    return data
