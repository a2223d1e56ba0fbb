"""Teacher-forced sync curves: the denoiser trains on its clip's own audio curves and reads the
sync encoder's predictions at inference through the same clean onset bumps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from foley.config import AVConfig
from foley.models.denoiser import FoleyDenoiser, clean_onset_curve
from foley.models.sync import curve_onsets, sync_targets
from tests.test_sync import _clicks

CFG = AVConfig()


def test_clean_onset_curve_redraws_peaks_as_unit_bumps():
    """A blurred, low prediction (peak 0.6 at frame 30, a bump under threshold at 70) becomes
    one unit bump at frame 30 of the sync targets' width; nothing at 70."""
    t = torch.arange(100, dtype=torch.float32)
    blurred = 0.6 * torch.exp(-0.5 * ((t - 30) / 3.0) ** 2) + 0.4 * torch.exp(
        -0.5 * ((t - 70) / 3.0) ** 2
    )
    clean = clean_onset_curve(blurred[None])[0]
    assert clean.argmax() == 30 and clean[30] == pytest.approx(1.0)
    assert clean[29] == pytest.approx(np.exp(-0.5), abs=1e-6)  # sigma: one latent frame
    assert clean[60:].max() == 0.0 and clean[:25].max() == 0.0


def test_clean_onset_curve_keeps_the_audio_targets_onsets():
    """The sync targets of a clip with clicks at 0.5 s, 1.3 s and 2.2 s, re-drawn: the same
    onsets (within one latent frame), so teacher forcing and inference agree."""
    wave = _clicks([0.5, 1.3, 2.2])
    target = torch.from_numpy(sync_targets(wave, CFG)[:, 0])
    clean = clean_onset_curve(target[None])[0].numpy()
    before, after = curve_onsets(target.numpy(), CFG), curve_onsets(clean, CFG)
    assert len(before) == 3 and len(after) == 3
    assert np.abs(before - after).max() <= 0.02 + 1e-9
    assert clean.max() == pytest.approx(1.0)


def test_plateau_and_close_peaks_give_one_bump():
    x = torch.zeros(1, 40)
    x[0, 10:13] = 0.9  # a plateau: one peak (its last frame)
    x[0, 25], x[0, 27] = 0.7, 0.8  # two peaks 40 ms apart: the stronger one
    peaks = (clean_onset_curve(x)[0] == 1.0).nonzero().flatten().tolist()
    assert peaks == [12, 27]


def test_peaks_denoiser_reads_blurred_and_clean_curves_alike(tmp_path):
    """With curve_input='peaks' a blurred prediction and the clean bump at its peak give the
    same output; with 'raw' they differ. The setting survives save/load."""
    torch.manual_seed(0)
    kw = dict(latent_dim=8, video_dim=12, hidden_dim=16, num_layers=1, num_heads=4,
              latents_per_frame=CFG.latents_per_frame, curve_dim=2)  # fmt: skip
    L = CFG.latents_per_clip
    t = torch.arange(L, dtype=torch.float32)
    blurred, clean = torch.zeros(1, L, 2), torch.zeros(1, L, 2)
    blurred[0, :, 0] = 0.7 * torch.exp(-0.5 * ((t - 100) / 3.0) ** 2)
    clean[0, :, 0] = torch.exp(-0.5 * (t - 100) ** 2)
    blurred[0, :, 1] = clean[0, :, 1] = 0.3
    x, video = torch.randn(1, L, 8), torch.randn(1, CFG.frames_per_clip, 12)
    outs = {}
    for mode in ("raw", "peaks"):
        den = FoleyDenoiser(**kw, curve_input=mode).eval()
        torch.nn.init.normal_(den.proj_out.weight, std=0.1)
        with torch.no_grad():
            outs[mode] = [den(x, 500.0, video, None, sync_curves=c) for c in (blurred, clean)]
    assert (outs["raw"][0] - outs["raw"][1]).abs().max() > 1e-4
    assert torch.allclose(outs["peaks"][0], outs["peaks"][1], atol=1e-6)
    den.save_pretrained(tmp_path / "den")
    assert FoleyDenoiser.from_pretrained(tmp_path / "den").config.curve_input == "peaks"
    with pytest.raises(ValueError, match="curve_input"):
        FoleyDenoiser(**{**kw, "curve_input": "sharp"})


def test_feature_dataset_gives_teacher_curves_at_the_asked_rate():
    """teacher=1: always the audio curves; 0.5: about half the items; 0: the predictions."""
    from training.train_denoiser import FeatureDataset

    class Feats:  # the two arrays FeatureDataset reads for curves, plus what it always reads
        def __init__(self, n):
            self.sync_curves = np.zeros((n, 10, 2), np.float16)
            self.latents = np.zeros((n, 10, 4), np.float16)
            self.video_feats = np.zeros((n, 3, 5), np.float16)

        def __len__(self):
            return len(self.latents)

        def neighbours(self, i):
            return []

    n = 200
    teacher = np.ones((n, 10, 2), np.float32)
    rates = {}
    for p in (0.0, 0.5, 1.0):
        ds = FeatureDataset(Feats(n), 0, True, True, teacher_curves=teacher, teacher=p)
        rates[p] = np.mean([float(ds[i]["curves"].mean()) for i in range(n)])
    assert rates[0.0] == 0.0 and rates[1.0] == 1.0 and 0.4 < rates[0.5] < 0.6


def test_feature_dataset_gives_action_only_items_at_the_asked_rate():
    """action=P: about P of the items are action-focused (target and condition both from the
    action latents, the condition a neighbour's); clips without a track never are."""
    from training.train_denoiser import FeatureDataset

    class Feats:
        def __init__(self, n):
            self.latents = np.zeros((n, 10, 4), np.float16)
            self.action_latents = np.zeros((n, 10, 4), np.float16)
            for i in range(n):  # latents say which clip and which kind they are
                self.latents[i], self.action_latents[i] = i, -i - 1
            self.has_action = (np.arange(n) % 4 != 3).astype(np.uint8)
            self.video_feats = np.zeros((n, 3, 5), np.float16)

        def __len__(self):
            return len(self.latents)

        def neighbours(self, i):
            return [k for k in range(i - i % 4, i - i % 4 + 4) if k != i]  # groups of 4

    n = 400
    for p in (0.0, 0.5):
        ds = FeatureDataset(Feats(n), 0, True, False, action=p)
        kinds = []
        for i in range(n):
            item = ds[i]
            target, cond = float(item["latents"][0, 0]), float(item["condition"][0, 0])
            if target < 0:  # an action item: its own track, a tracked neighbour's track
                assert target == -i - 1 and cond < 0 and -cond - 1 in ds.feats.neighbours(i)
                assert ds.feats.has_action[int(-cond - 1)]
            else:
                assert target == i and cond >= 0 and cond in ds.feats.neighbours(i)
            kinds.append(target < 0)
        kinds = np.array(kinds)
        assert not kinds[3::4].any()  # untracked clips: never
        tracked = kinds[np.arange(n) % 4 != 3]
        assert tracked.mean() == 0.0 if p == 0 else 0.4 < tracked.mean() < 0.6


def test_write_action_latents_encodes_each_clips_ground_truth_track(tmp_path):
    """The features' action latents are the codec's latents of the .gt.npz action track beside
    each clip's video; a clip without ground truth gets zeros and flag 0; a second call keeps
    them."""
    from foley.models.codec import FoleyCodec
    from tests.test_denoiser import _tiny_dataset
    from training.features import SplitFeatures, action_track, extract, write_action_latents

    cfg = AVConfig(clip_seconds=1.0, fps=8.0, frame_size=32)
    data = tmp_path / "data"
    _tiny_dataset(data, cfg)
    torch.manual_seed(0)
    codec = FoleyCodec(latent_dim=8, n_filters=4, lstm_layers=0).eval()
    codec.save_pretrained(tmp_path / "codec")
    extract(data, tmp_path / "feat", tmp_path / "codec", ["train"], cfg)
    train = SplitFeatures(tmp_path / "feat", "train")
    rng = np.random.default_rng(0)
    tracks = {}
    for i, clip in enumerate(train.clips[:-1]):  # the last clip has no ground truth
        wave = rng.normal(0, 0.1, cfg.samples_per_clip).astype(np.float32)
        path = Path(clip["clip_path"])
        np.savez(path.with_name(path.stem + ".gt.npz"), action=wave)
        tracks[i] = wave
    assert write_action_latents(tmp_path / "feat", "train", codec) == len(train) - 1
    train = SplitFeatures(tmp_path / "feat", "train")
    assert train.has_action.tolist() == [1] * (len(train) - 1) + [0]
    assert not train.action_latents[-1].any()
    with torch.no_grad():
        want = codec.encode(torch.from_numpy(tracks[1])[None])[0, : cfg.latents_per_clip]
    np.testing.assert_allclose(train.action_latents[1], want.numpy(), atol=2e-3, rtol=2e-3)
    assert action_track(train.clips[-1], cfg) is None
    assert write_action_latents(tmp_path / "feat", "train", codec) == len(train) - 1


def test_train_denoiser_action_tracks_with_and_without_ground_truth(tmp_path, capsys):
    """--action-tracks on features without any action track trains without (one warning line);
    with tracks beside the videos it writes the action latents into the features first."""
    import argparse

    from foley.models.codec import FoleyCodec
    from tests.test_denoiser import _tiny_dataset
    from training import train_denoiser
    from training.features import SplitFeatures, extract

    cfg = AVConfig(clip_seconds=1.0, fps=8.0, frame_size=32)
    _tiny_dataset(tmp_path / "data", cfg)
    torch.manual_seed(0)
    FoleyCodec(latent_dim=8, n_filters=4, lstm_layers=0).save_pretrained(tmp_path / "codec")
    extract(tmp_path / "data", tmp_path / "feat", tmp_path / "codec", ["train"], cfg)
    parser = argparse.ArgumentParser()
    train_denoiser.add_arguments(parser)
    argv = [str(tmp_path / "feat"), "--hidden-dim", "16", "--layers", "1", "--heads", "2",
            "--video-dim", "8", "--video-channels", "4", "8", "--batch-size", "2",
            "--val-num", "0", "--workers", "0", "--cpu", "--steps", "1",
            "--action-tracks", "0.5"]  # fmt: skip
    assert train_denoiser.run(parser.parse_args(argv + ["-o", str(tmp_path / "r1")])) == 0
    assert "no training clip has an action-only track" in capsys.readouterr().err
    train = SplitFeatures(tmp_path / "feat", "train")
    assert train.has_action is not None and not train.has_action.any()

    # a new features folder whose clips have ground truth
    for clip in train.clips:
        path = Path(clip["clip_path"])
        np.savez(path.with_name(path.stem + ".gt.npz"), action=np.ones(100, np.float32) * 0.1)
    extract(tmp_path / "data", tmp_path / "feat2", tmp_path / "codec", ["train"], cfg)
    argv[0] = str(tmp_path / "feat2")
    assert train_denoiser.run(parser.parse_args(argv + ["-o", str(tmp_path / "r2")])) == 0
    assert SplitFeatures(tmp_path / "feat2", "train").has_action.all()
