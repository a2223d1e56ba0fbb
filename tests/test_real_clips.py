"""``benchmarks/real_clips.py``: the real-footage picture, on stand-in videos and a tiny model."""

from __future__ import annotations

import numpy as np

from benchmarks import real_clips
from foley import io
from tests.media import counter_frames
from tests.tiny import tiny_pipeline


def test_picture_and_table_for_each_clip_model_and_mode(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    rng = np.random.default_rng(0)
    for name in real_clips.VIDEOS:  # stand-ins under the real names (2 s, 32 px)
        wave = (0.1 * rng.standard_normal(32_000)).astype(np.float32)
        io.write_video(videos / name, counter_frames(32, 32, 32), 16.0, wave, 16_000)
    tiny_pipeline().save_pretrained(tmp_path / "tiny")
    out = tmp_path / "pic.png"
    argv = ["--videos", str(videos), "--model", str(tmp_path / "tiny"), "--name", "tiny",
            "--modes", "no_condition", "--seconds", "1", "--out", str(out)]  # fmt: skip
    assert real_clips.main(argv) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| real: ")]
    assert [r.split("|")[1].strip() for r in rows] == ["real: cup.mp4", "real: box.mp4"]
    assert "onsets: tiny, no_condition" in printed
    from PIL import Image

    width, height = Image.open(out).size
    assert width > 3 * height / 2 > 0  # two clip rows, three columns (frames, own, tiny)
