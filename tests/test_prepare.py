"""``foley prepare``: a generated folder of odd files becomes an Ego4D-Sounds-format dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from foley.cli.main import main
from foley.data.ego4d import ClipDataset, read_metadata
from foley.data.prepare import MANIFEST, clip_windows, parse_srt, prepare_folder, video_uid
from foley.errors import InputError
from foley.io import load_audio, write_video
from tests.media import counter_frames


def _tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def _stereo_video(path: Path, seconds: float, fps: float, rate: int) -> None:
    """An mp4 with stereo AAC at ``rate`` (write_video writes mono, so by hand)."""
    frames = counter_frames(int(seconds * fps), 72, 96)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=int(fps))
        vs.width, vs.height, vs.pix_fmt = 96, 72, "yuv420p"
        aus = c.add_stream("aac", rate=rate, layout="stereo")
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        wave = _tone(seconds, rate, 2).T.copy()  # (2, N)
        for s in range(0, wave.shape[1], 1024):
            fr = av.AudioFrame.from_ndarray(wave[:, s : s + 1024].reshape(1, -1), "flt", "stereo")
            fr.sample_rate = rate
            for p in aus.encode(fr):
                c.mux(p)
        for stream in (vs, aus):
            for p in stream.encode(None):
                c.mux(p)


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prepare_src") / "my footage"
    (root / "kitchen").mkdir(parents=True)
    fps, rate = 25.0, 44_100
    # a 7 s video at 25 fps with 44.1 kHz mono sound and an .srt
    write_video(root / "kitchen" / "chop onions.mp4", counter_frames(175, 72, 96), fps,
                _tone(7.0, 16_000), 16_000)  # fmt: skip
    (root / "kitchen" / "chop onions.srt").write_text(
        "1\n00:00:00,000 --> 00:00:02,500\nI chop the onion\n\n"
        "2\n00:00:04,000 --> 00:00:06,000\nI <i>scrape</i> the board\n"
    )
    _stereo_video(root / "kitchen" / "tür öffnen.mp4", 4.0, 30.0, rate)  # stereo, non-ASCII
    (root / "kitchen" / "tür öffnen.txt").write_text("open the door\n")
    write_video(root / "long take.mp4", counter_frames(16 * 20, 72, 96), 16.0,
                _tone(20.0, 16_000, freq=220.0), 16_000)  # fmt: skip
    write_video(root / "silent.mp4", counter_frames(32, 72, 96), 16.0)  # no audio track
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    sf.write(root / "glass_break-01.wav", _tone(1.2, 48_000, 2, 880.0), 48_000)  # short stereo
    sf.write(root / "rain loop.flac", _tone(6.5, 22_050, 1, 300.0), 22_050)
    (root / "notes.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def prepared(src, tmp_path_factory) -> tuple[Path, list[str], str]:
    out = tmp_path_factory.mktemp("prepared") / "data"
    before = _tree_digest(src)
    lines: list[str] = []
    report = prepare_folder(src, out, progress=False, log=lines.append)
    assert _tree_digest(src) == before  # SRC is never modified
    return out, lines, report.summary()


def test_clips_splits_and_skips(prepared):
    out, lines, summary = prepared
    skips = {line.split(":")[0]: line for line in lines if line.startswith("skipped")}
    assert set(skips) == {"skipped silent.mp4", "skipped corrupt.mp4", "skipped notes.json"}
    assert "no audio track" in skips["skipped silent.mp4"]
    assert all("\n" not in line for line in lines)
    manifest = json.loads((out / MANIFEST).read_text())
    files = manifest["files"]
    assert files["long take.mp4"]["kind"] == "video"
    assert len(files["long take.mp4"]["clips"]) == 6  # 20 s, 3 s clips, 3 s hop
    assert len(files["kitchen/chop onions.mp4"]["clips"]) == 2
    assert files["glass_break-01.wav"]["kind"] == "audio"
    assert all(np.isfinite(c["ambient_db"]) for e in files.values() for c in e.get("clips", []))
    video_rows = [r for s in ("train", "val", "test") for r in read_metadata(out / f"{s}.tsv")]
    audio_rows = [
        r for s in ("train", "val", "test") for r in read_metadata(out / f"{s}_audio.tsv")
    ]
    assert len(video_rows) == 6 + 2 + 1 and len(audio_rows) == 1 + 2
    assert all(r.clip_file.endswith(".mp4") for r in video_rows)
    assert all(r.clip_file.endswith(".flac") for r in audio_rows)
    by_uid: dict[str, set[str]] = {}  # splits are by source file
    for s in ("train", "val", "test"):
        for r in read_metadata(out / f"{s}.tsv"):
            by_uid.setdefault(r.video_uid, set()).add(s)
    assert all(len(v) == 1 for v in by_uid.values())
    assert "9 train" not in summary and "skipped 3" in summary


def test_narration_from_sidecars_and_names(prepared):
    out, _, _ = prepared
    rows = {(r.video_uid, r.narration_ind): r for s in ("train", "val", "test")
            for name in (s, f"{s}_audio") for r in read_metadata(out / f"{name}.tsv")}  # fmt: skip
    onion = video_uid("kitchen/chop onions.mp4")
    assert rows[(onion, 0)].clip_text == "I chop the onion"
    assert rows[(onion, 1)].clip_text == "I scrape the board"  # tags stripped, by time
    assert rows[(video_uid("kitchen/tür öffnen.mp4"), 0)].clip_text == "open the door"
    assert rows[(video_uid("glass_break-01.wav"), 0)].clip_text == "glass break"
    assert video_uid("kitchen/tür öffnen.mp4").isascii()


def test_clips_decode_at_the_contract(prepared):
    out, _, _ = prepared
    for split in ("train", "val", "test"):
        ds = ClipDataset(out, split)
        for i in range(len(ds)):
            item = ds[i]
            assert item["frames"].shape == (48, 3, 112, 112)
            assert item["audio"].shape == (48_000,)
            assert float(item["audio"].abs().max()) > 0.1
    glass = out / video_uid("glass_break-01.wav") / f"{video_uid('glass_break-01.wav')}_0000.flac"
    wave = load_audio(glass)
    assert abs(wave.size - 1.2 * 16_000) < 20  # a short sound stays whole, at 16 kHz mono


def test_rerun_resumes_and_new_files_join(prepared, src, tmp_path):
    out, _, _ = prepared
    clip = next(out.glob("*/*.mp4"))
    mtime = clip.stat().st_mtime_ns
    lines: list[str] = []
    report = prepare_folder(src, out, progress=False, log=lines.append)
    assert report.prepared == [] and len(report.reused) == 5
    assert clip.stat().st_mtime_ns == mtime  # nothing redone
    assert sum(1 for line in lines if line.startswith("skipped")) == 3


def test_refusals(src, tmp_path):
    with pytest.raises(InputError, match="outside SRC"):
        prepare_folder(src, src / "data", progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a prepared folder"):
        prepare_folder(src, tmp_path / "busy", progress=False)
    assert (tmp_path / "busy" / "mine.txt").read_text() == "keep me"


def test_cli_one_line_error(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no such folder" in err and len(err.splitlines()) == 1


def test_windows_and_srt():
    assert clip_windows(20.0, 3.0, 3.0) == [0, 3, 6, 9, 12, 15]
    assert clip_windows(7.0, 3.0, 1.5) == [0, 1.5, 3.0]
    assert clip_windows(1.0, 3.0, 3.0) == [0.0]
    cues = parse_srt("1\r\n00:01:02,5 --> 00:01:03,250\r\nhello\r\nthere\r\n")
    assert cues == [(62.5, 63.25, "hello there")]
