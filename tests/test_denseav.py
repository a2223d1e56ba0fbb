"""DenseAV: the vectorised similarity aggregation, learning, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.analysis import sound_heatmaps
from foley.errors import InputError
from foley.models.denseav import DenseAVModel, aggregate, denseav_loss, similarity_volume
from tests.tiny import DENSEAV_TINY, TINY_CONFIG


def test_aggregation_equals_naive_loop():
    g = torch.Generator().manual_seed(0)
    A, V, K, D, h, w, T = 3, 4, 2, 5, 3, 2, 6
    audio = torch.randn(A, K, D, T, generator=g)
    visual = torch.randn(V, K, D, h, w, generator=g)
    voiced = torch.rand(A, T, generator=g) > 0.4
    voiced[:, 0] = True
    fast = aggregate(similarity_volume(audio, visual), voiced)
    naive = torch.zeros(A, V)
    for a in range(A):
        for v in range(V):
            best = -float("inf")
            for k in range(K):
                steps = []
                for t in range(T):
                    if not voiced[a, t]:
                        continue
                    peak = max(
                        float(audio[a, k, :, t] @ visual[v, k, :, i, j])
                        for i in range(h)
                        for j in range(w)
                    )
                    steps.append(peak)
                best = max(best, sum(steps) / len(steps))
            naive[a, v] = best
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)


def _toy_batch(cfg, n: int, rng: np.random.Generator):
    """Clips whose sound pitch names the colour of a square at a random place."""
    size, samples = cfg.frame_size, cfg.samples_per_clip
    frames = torch.full((n, 3, size, size), 0.2)
    t = torch.arange(samples) / cfg.sample_rate
    waves = torch.zeros(n, samples)
    for i in range(n):
        c = int(rng.integers(3))
        y, x = rng.integers(0, size - 12, 2)
        frames[i, c, y : y + 12, x : x + 12] = 1.0
        waves[i] = 0.3 * torch.sin(2 * np.pi * (400.0 * 2**c) * t)
    return frames, waves


def test_tiny_model_loss_falls():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = DenseAVModel(**DENSEAV_TINY, av_config=TINY_CONFIG.to_dict())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    frames, waves = _toy_batch(TINY_CONFIG, 6, rng)
    first = denseav_loss(model, frames, waves)[0].detach()
    for _ in range(40):
        loss, parts = denseav_loss(model, frames, waves)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = denseav_loss(model, frames, waves)[0].detach()
    assert set(parts) == {"nce", "neg", "silence", "tv", "calib", "heads"}
    # 3 colours in 6 clips: same-colour pairs stay indistinguishable, so ln 2 is the floor
    # (with per-head L2 normalisation and the 2-D log-mel CNN it stayed at ln 6, a collapse)
    assert float(last) < 0.5 * float(first)
    # the trained heatmaps point at the square whose colour the sound names
    model.eval()
    inside = []
    for i in range(frames.shape[0]):
        maps, _ = model.heatmaps(frames[i : i + 1], waves[i])
        square = frames[i].max(0).values > 0.5
        inside.append(float(maps[0][square].mean() - maps[0][~square].mean()))
    assert np.mean(inside) > 0.2


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = DenseAVModel(**DENSEAV_TINY, av_config=TINY_CONFIG.to_dict()).eval()
    frames, waves = _toy_batch(TINY_CONFIG, 2, np.random.default_rng(1))
    model.save_pretrained(tmp_path / "denseav")
    loaded = DenseAVModel.from_pretrained(tmp_path / "denseav").eval()
    with torch.no_grad():
        torch.testing.assert_close(model(frames, waves), loaded(frames, waves))
    maps, peak = loaded.heatmaps(frames, waves[0])
    assert maps.shape == (2, TINY_CONFIG.frame_size, TINY_CONFIG.frame_size)
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    assert peak.shape == (2,)


def test_sound_heatmaps_and_alignment_score():
    torch.manual_seed(2)
    cfg = TINY_CONFIG
    model = DenseAVModel(**DENSEAV_TINY, av_config=cfg.to_dict()).eval()
    frames, waves = _toy_batch(cfg, 1, np.random.default_rng(2))
    video = frames.expand(cfg.frames_per_clip, -1, -1, -1)
    maps, score = sound_heatmaps(model, video, waves[0].numpy(), cfg, num_shuffles=4)
    assert maps.shape == (cfg.frames_per_clip, cfg.frame_size, cfg.frame_size)
    assert maps.dtype == np.float32 and 0.0 <= maps.min() and maps.max() <= 1.0
    assert score in {0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0}
    again = sound_heatmaps(model, video, waves[0].numpy(), cfg, num_shuffles=4)
    assert again[1] == score and np.array_equal(again[0], maps)
    with pytest.raises(InputError):
        sound_heatmaps(model, video[0], waves[0].numpy(), cfg)


@pytest.mark.parametrize("visual", ["cnn", "efficientnet"])
def test_stored_inputs_round_trip_and_step(tmp_path, visual):
    """Inputs stored once give the same loss and gradients as features computed on the fly."""
    from foley.data.ego4d import ClipDataset
    from foley.data.foleyworld import FoleyWorldSettings, generate_dataset
    from training.train_denseav import StoredClips, build_features, step_loss

    data = tmp_path / "data"
    generate_dataset(data, FoleyWorldSettings(videos=3, clips_per_video=2, seed=5), progress=False)
    torch.manual_seed(3)
    model = DenseAVModel(**{**DENSEAV_TINY, "visual": visual})
    store = build_features(model, data, "train", tmp_path / "cache", frames_per_clip=2)
    stamp = (store.path / "visual.npy").stat().st_mtime_ns
    again = build_features(model, data, "train", tmp_path / "cache", frames_per_clip=2)
    assert again.path == store.path and (again.path / "visual.npy").stat().st_mtime_ns == stamp
    clips = StoredClips(again)
    ds = ClipDataset(data, "train", model.av)
    n = len(ds)
    assert len(clips) == n >= 2 and again.meta["clips"] == [r.clip_stem for r in ds.records]
    decoded = [ds.load_clip(i) for i in range(n)]
    pick = again.meta["frames"][1]
    frames = torch.stack([torch.from_numpy(f[pick]).permute(2, 0, 1) for f, _ in decoded]) / 255.0
    waves = torch.from_numpy(np.stack([w for _, w in decoded]))

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    stored_loss, _ = step_loss(model, *clips.batch(range(n), [1] * n))
    stored = grads(stored_loss)
    fly_loss, _ = denseav_loss(model, frames, waves)
    fly = grads(fly_loss)
    # the stored maps and log-mels are float16: equal to that precision
    torch.testing.assert_close(stored_loss, fly_loss, rtol=2e-3, atol=2e-3)
    assert len(stored) == len(fly)
    for a, b in zip(stored, fly):
        torch.testing.assert_close(a, b, rtol=0.05, atol=2e-3)


def test_centring_removes_what_is_constant():
    """``center_visual``: a per-channel constant over space (a uniform background) changes
    nothing; ``center_audio``: nor does a per-band constant over time (a steady bed). Both are
    saved in the config; a config without them loads with both off."""
    torch.manual_seed(4)
    model = DenseAVModel(**DENSEAV_TINY, center_audio=True, center_visual=True).eval()
    g = torch.Generator().manual_seed(4)
    frames = torch.rand(2, 3, 32, 32, generator=g)
    mel = torch.randn(2, model.av.n_mels, 40, generator=g)
    with torch.no_grad():
        x = model.backbone(model.visual_input(frames))  # the maps the centring sees
        model.backbone = torch.nn.Identity()  # project_visual on maps from here on
        bias = torch.randn(1, x.shape[1], 1, 1, generator=g)
        torch.testing.assert_close(model.project_visual(x + bias), model.project_visual(x))
        band = torch.randn(1, model.av.n_mels, 1, generator=g)
        torch.testing.assert_close(model.project_audio(mel + band), model.project_audio(mel))
    plain = DenseAVModel(**DENSEAV_TINY)
    assert not plain.config.center_audio and not plain.config.center_visual
    assert not plain.config.visual_gate


def test_visual_gate_silences_the_background():
    """``visual_gate``: features scaled by each position's distance from the frame's mean map,
    relative to the farthest: zero where the map equals its mean, unit length at the farthest."""
    torch.manual_seed(5)
    model = DenseAVModel(**{**DENSEAV_TINY, "visual": "efficientnet"}, visual_gate=True).eval()
    x = torch.zeros(1, 112, 6, 6)  # a uniform "background" with one different position
    x[0, :, 2, 3] = torch.randn(112, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        norms = model.project_visual(x).norm(dim=2)  # (1, heads, 6, 6)
    assert torch.allclose(norms[0, :, 2, 3], torch.ones(2), atol=1e-5)
    background = norms[0].clone()
    background[:, 2, 3] = 0.0
    # the background is 1/35 of the way to the odd position from the mean (the mean moved)
    assert float(background.max()) < 0.05


def test_dev_ap_heatmaps_equal_the_models(tmp_path, capsys):
    """``benchmarks/denseav_dev_ap.py``: heatmaps from the stored maps equal
    ``DenseAVModel.heatmaps`` on the decoded frames (to float16), and every row is printed."""
    from benchmarks.denseav_dev_ap import build_cache, heatmaps, main
    from foley.config import DEFAULT_CONFIG as CFG
    from foley.data.ego4d import load_ground_truth, read_metadata, split_path
    from foley.data.foleyworld import FoleyWorldSettings, generate_dataset
    from foley.io import frames_to_tensor, load_video

    data = tmp_path / "data"
    generate_dataset(data, FoleyWorldSettings(videos=3, clips_per_video=2, seed=7), progress=False)
    cache = tmp_path / "dev.npz"
    build_cache(str(data), "train", cache, frame_stride=8, limit=2)
    z = dict(np.load(cache))
    assert len(z["mel"]) == 2 and len(z["clip"]) == len(z["masks"]) >= 1
    torch.manual_seed(6)
    model = DenseAVModel(**{**DENSEAV_TINY, "visual": "efficientnet", "input_size": 112}).eval()
    model.load_backbone_weights()
    c = int(z["clip"][0])
    rec = read_metadata(split_path(data, "train"))[c]
    video = load_video(rec.clip_path(data), CFG)
    frames = frames_to_tensor(video.frames)
    masks = load_ground_truth(rec.gt_path(data))["masks"][: frames.shape[0]]
    picked = [k for k in range(0, masks.shape[0], 8) if masks[k].any()]
    wave = np.zeros(CFG.samples_per_clip, np.float32)
    n = min(wave.size, video.audio.size)
    wave[:n] = video.audio[:n]
    theirs, _ = model.heatmaps(frames[picked], torch.from_numpy(wave))
    ours = heatmaps(model, z["maps"][z["clip"] == c], z["mel"][c], z["wave"][c])
    np.testing.assert_allclose(ours, theirs.numpy(), atol=0.03)
    model.save_pretrained(tmp_path / "model")
    assert main([str(tmp_path / "model"), "--data", str(data), "--cache", str(cache)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 4 and rows[2].startswith("| saliency") and str(tmp_path) in rows[3]
