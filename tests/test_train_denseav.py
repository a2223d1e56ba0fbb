"""``foley train denseav``: trains on a tiny FoleyWorld set (no masks read), exports the model,
and a second run with more steps resumes from the checkpoint."""

from __future__ import annotations

import json

import pytest

from foley.cli.main import main as foley_main
from foley.models.denseav import DenseAVModel

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_export_and_resume(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    argv = ["make-dataset", "--videos", "3", "--clips-per-video", "2", "--out", str(data)]
    assert foley_main([*argv, "--quiet", "--val-fraction", "0.34"]) == 0
    for path in data.rglob("*.gt.npz"):  # the trainer must not need the ground truth
        path.unlink()
    train = ["train", "denseav", str(data), "-o", str(out), "--dim", "4", "--heads", "2"]
    train += ["--input-size", "32", "--batch-size", "2", "--frames-per-clip", "2"]
    assert foley_main([*train, "--steps", "2", "--val-every", "2"]) == 0
    model = DenseAVModel.from_pretrained(out / "model")
    assert model.config.heads == 2 and model.config.dim == 4
    # the stored inputs a step reads: one feature store per split (the CNN's raw frames here)
    assert (out / "cache" / "train-cnn-32" / "visual.npy").is_file()
    assert foley_main([*train, "--steps", "4", "--val-every", "2"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in rows if "loss" in r]
    assert logged == [2, 4]  # steps 3-4 continued from the step-2 checkpoint
    assert all("val_top1" in r for r in rows if "loss" not in r)


def test_video_batches_share_videos():
    """``--clips-per-video``: B/K videos x K clips, distinct and sorted; short videos topped up."""
    import numpy as np

    from training.train_denseav import draw_video_batch

    videos = np.repeat(np.arange(6), 5)  # 6 videos x 5 clips
    for seed in range(5):
        idx = draw_video_batch(np.random.default_rng(seed), videos, 8, 4)
        assert len(set(idx.tolist())) == 8 and np.all(np.diff(idx) > 0)
        assert sorted(np.bincount(videos[idx], minlength=6).tolist())[-2:] == [4, 4]
    short = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2])  # video 0 has 2 clips
    for seed in range(5):
        idx = draw_video_batch(np.random.default_rng(seed), short, 8, 4)
        assert len(set(idx.tolist())) == 8
    assert len(draw_video_batch(np.random.default_rng(0), short, 16, 4)) == 10  # all there is


def test_augment_shifts_level_and_time_together():
    import math

    import numpy as np
    import torch

    from training.train_denseav import augment

    g = torch.Generator().manual_seed(0)
    visual, mel = torch.randn(3, 5, 14, 14, generator=g), torch.randn(3, 4, 40, generator=g)
    voiced = torch.zeros(3, 5, dtype=torch.bool)
    voiced[:, 0] = True
    v, m, s = augment(np.random.default_rng(1), visual, mel, voiced, time_stride=8)
    assert v.shape == visual.shape and m.shape == mel.shape and s.shape == voiced.shape
    again = augment(np.random.default_rng(1), visual, mel, voiced, time_stride=8)
    assert all(torch.equal(a, b) for a, b in zip((v, m, s), again))  # deterministic
    for i in range(3):
        k = int(s[i].float().argmax())  # the voiced step moved by k steps, the mel by 8 k frames
        back = m[i].roll(-8 * k, -1) - mel[i]
        gain_db = float(back.mean()) * 50.0 / math.log(10.0)
        assert torch.allclose(back, back.mean().expand_as(back), atol=1e-5) and abs(gain_db) <= 6
        # the shifted map is a window of the edge-padded map: its centre keeps the content
        assert any(
            torch.equal(v[i, :, 3:11, 3:11], visual[i, :, 3 + dy : 11 + dy, 3 + dx : 11 + dx])
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )
    same = augment(np.random.default_rng(1), visual, mel, voiced, shift=0, gain_db=0)
    assert torch.equal(same[0], visual)


def test_train_by_video_with_augmentation(tmp_path):
    """``--clips-per-video``, ``--augment``, the centring options and ``--select nce`` with
    ``--patience``: the run validates within and across videos and stops early."""
    data, out = tmp_path / "data", tmp_path / "run"
    argv = ["make-dataset", "--videos", "4", "--clips-per-video", "2", "--out", str(data)]
    assert foley_main([*argv, "--quiet", "--val-fraction", "0.25", "--test-fraction", "0"]) == 0
    train = ["train", "denseav", str(data), "-o", str(out), "--dim", "4", "--input-size", "32"]
    train += ["--batch-size", "4", "--frames-per-clip", "2", "--clips-per-video", "2"]
    train += ["--augment", "--center-audio", "--center-visual", "--select", "nce"]
    assert foley_main([*train, "--patience", "1", "--steps", "8", "--val-every", "1"]) == 0
    model = DenseAVModel.from_pretrained(out / "model")
    assert model.config.center_audio and model.config.center_visual
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in rows if "val_nce" in r]
    assert {"val_top1_within", "val_nce_within", "val_top1_across", "val_nce_across"} <= set(
        vals[0]
    )
    assert len(vals) >= 2
    best = min(range(len(vals)), key=lambda i: vals[i]["val_nce"])
    if len(vals) < 8:  # stopped early: one validation after the best without improvement
        assert best == len(vals) - 2


def test_loud_frames_follow_the_loud_steps():
    """``--frames loudest``: the picked frames are those nearest the loudest audio steps,
    ``min_gap`` apart, from the waveform alone."""
    import numpy as np

    from training.train_denseav import loud_frames

    sr, times = 16000, np.arange(48) / 16.0  # 3 s, 16 fps
    wave = np.random.default_rng(0).normal(0, 1e-3, 3 * sr)
    for at, level in ((0.5, 1.0), (0.56, 0.9), (2.0, 0.5), (1.25, 0.2)):
        wave[int(at * sr) : int(at * sr) + 400] += level  # 25 ms bursts
    assert loud_frames(wave, times, 1, sample_rate=sr).tolist() == [8]  # 0.5 s
    # 0.56 s (frame 9) is louder than 2.0 s but closer than min_gap to 0.5 s
    assert loud_frames(wave, times, 3, sample_rate=sr).tolist() == [8, 20, 32]
    assert loud_frames(wave, times, 2, sample_rate=sr, min_gap=0.0).tolist() == [8, 9]
    # coarse frames (the decoded cache's 6): each takes the loudest step nearest it
    coarse = np.array([0, 9, 19, 28, 38, 47]) / 16.0
    assert loud_frames(wave, coarse, 2, sample_rate=sr).tolist() == [1, 3]
    # too few frames min_gap apart: topped up with the next loudest (frame 3 takes every step
    # after 0.16 s, the bursts too)
    few = loud_frames(wave, times[:4], 3, sample_rate=sr, min_gap=1.0).tolist()
    assert len(set(few)) == 3 and 3 in few
    again = loud_frames(wave, times, 3, sample_rate=sr)
    assert again.tolist() == [8, 20, 32]  # deterministic


def test_loudest_store_keeps_its_own_key(tmp_path):
    """``build_features(frames="loudest")`` on a decoded cache: per clip, the frames nearest its
    loudest audio, in a store of its own (the spread store is left as it is)."""
    import numpy as np

    from foley.errors import InputError
    from training.train_denseav import build_features

    data, src = tmp_path / "data", tmp_path / "decoded" / "train"
    data.mkdir()
    src.mkdir(parents=True)
    (data / "train.tsv").write_text("")  # the store key reads only its size and time
    model = DenseAVModel(visual="cnn", input_size=32, dim=4, audio_channels=(8, 8, 8))
    S, N, sr = model.av.frame_size, model.av.samples_per_clip, model.av.sample_rate
    source = [0, 9, 19, 28, 38, 47]  # the decoded frames' indices in the clip
    frames = np.zeros((2, 6, S, S, 3), np.uint8)
    frames[:] = np.arange(6, dtype=np.uint8)[None, :, None, None, None] * 40  # frame j: 40 j
    waves = np.zeros((2, N), np.float16)
    waves[0, int(28 / 16 * sr) : int(28 / 16 * sr) + 400] = 0.5  # clip 0: loud at frame 28
    waves[0, int(9 / 16 * sr) : int(9 / 16 * sr) + 400] = 0.2  # then frame 9
    waves[1, int(47 / 16 * sr) - 400 : int(47 / 16 * sr)] = 0.5  # clip 1: at the end
    waves[1, int(19 / 16 * sr) : int(19 / 16 * sr) + 400] = 0.3
    np.save(src / "frames.npy", frames)
    np.save(src / "waves.npy", waves)
    (src / "index.json").write_text(json.dumps({"clips": ["a", "b"], "frames": source}))
    kw = dict(frames_per_clip=2, decoded=tmp_path / "decoded")
    spread = build_features(model, data, "train", tmp_path / "cache", **kw)
    loud = build_features(model, data, "train", tmp_path / "cache", frames="loudest", **kw)
    assert loud.path != spread.path and loud.settings != spread.settings
    assert loud["frame_index"].tolist() == [[9, 28], [19, 47]]
    # the stored frames are those frames (frame j of the cache is 40 j everywhere)
    assert loud["visual"][:, :, 0, 0, 0].tolist() == [[40, 120], [80, 200]]
    assert spread["visual"][:, :, 0, 0, 0].tolist() == [[0, 200], [0, 200]]
    assert "frame_index" not in spread and "frames" not in spread.settings
    with pytest.raises(InputError):
        build_features(model, data, "train", tmp_path / "cache", frames="middle", **kw)
