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
