"""AVS (TPAVI): metrics on hand-made masks, factorised attention, training, save/load, pictures."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from foley.config import DEFAULT_CONFIG
from foley.metrics.avs import (
    AVSScores,
    alignment_score,
    alignment_with_ground_truth,
    f_curves,
    j_and_f,
    mask_iou,
    shuffle_in_time,
)
from foley.models.avs import TPAVI, AVSModel, avs_loss, labelled_frames
from tests.tiny import AVS_TINY

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = AVS_TINY


# ---- metrics on hand-made masks --------------------------------------------------------------
def _square(size, top, left, side):
    m = np.zeros((size, size), bool)
    m[top : top + side, left : left + side] = True
    return m


def test_j_known_answers():
    gt = _square(8, 2, 2, 4)  # 16 pixels
    pred = _square(8, 0, 0, 4).astype(np.float32)  # 16 pixels, 4 shared
    assert float(mask_iou(pred, gt)) == pytest.approx(4 / 28, abs=1e-6)
    assert float(mask_iou(gt.astype(np.float32), gt)) == pytest.approx(1.0, abs=1e-6)
    # empty ground truth: scored on the background (3 false-positive pixels out of 64)
    empty = np.zeros((8, 8), bool)
    fp = np.zeros((8, 8), np.float32)
    fp[0, :3] = 0.9
    assert float(mask_iou(fp, empty)) == pytest.approx(61 / 64, abs=1e-6)
    assert float(mask_iou(np.zeros((8, 8)), empty)) == pytest.approx(1.0, abs=1e-6)
    # probabilities are thresholded at 0.5 (strictly above)
    half = gt.astype(np.float32) * 0.5
    assert float(mask_iou(half, gt)) == pytest.approx(0.0, abs=1e-6)
    # per-frame values, J is their mean
    both = mask_iou(np.stack([pred, fp]), np.stack([gt, empty]))
    assert both.shape == (2,)
    scores = j_and_f(np.stack([pred, fp]), np.stack([gt, empty]))
    assert scores["J"] == pytest.approx((4 / 28 + 61 / 64) / 2, abs=1e-6)
    assert scores["J_object"] == pytest.approx(4 / 28, abs=1e-6)
    assert scores["J_empty"] == pytest.approx(61 / 64, abs=1e-6)


def test_f_measure_known_answer():
    gt = np.zeros((8, 8), bool)
    gt[0, :4] = True  # 4 object pixels
    probs = np.zeros((8, 8), np.float32)
    probs[0, :2] = 0.9  # two true positives, confident
    probs[1, :2] = 0.6  # two false positives, less confident
    # thresholds in (0.6, 0.9]: P = 1, R = 0.5 -> F = 1.3 * 0.5 / (0.3 + 0.5) = 0.8125 (the max)
    assert j_and_f(probs, gt)["F"] == pytest.approx(0.8125, abs=1e-6)
    # a perfect binary prediction scores 1; frames with empty ground truth are left out of F
    scores = AVSScores()
    scores.update(np.stack([gt, np.ones((8, 8))]).astype(np.float32), np.stack([gt, gt * False]))
    assert scores.compute()["F"] == pytest.approx(1.0, abs=1e-6)
    curve, n = f_curves(np.ones((8, 8)), np.zeros((8, 8), bool))
    assert n == 0 and float(curve.sum()) == 0.0


def test_shuffle_in_time_keeps_blocks():
    gen = torch.Generator().manual_seed(0)
    wave = torch.arange(10.0).repeat_interleave(4)[None]  # 10 blocks of 4 samples
    out = shuffle_in_time(wave, 4, gen)
    assert not torch.equal(out, wave)
    assert torch.equal(out.sort().values, wave.sort().values)
    assert torch.equal(out.reshape(10, 4).std(1), torch.zeros(10))  # blocks stay whole


# ---- TPAVI: factorised == naive --------------------------------------------------------------
def naive_tpavi(block: TPAVI, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """AVSBench's TPAVI as written: audio broadcast to (B, C, T, H, W), THW x THW attention."""
    b, c, t, h, w = x.shape
    a = block.align_channel(audio)  # (B, T, C)
    a_map = a.transpose(1, 2)[..., None, None].expand(b, c, t, h, w)
    g = block.g(x).flatten(2).transpose(1, 2)  # (B, THW, I)
    theta = block.theta(x).flatten(2).transpose(1, 2)
    phi = block.phi(a_map).flatten(2)  # (B, I, THW)
    f = theta @ phi  # (B, THW, THW)
    f = f.softmax(-1) if block.mode == "embedded" else f / f.shape[-1]
    y = (f @ g).transpose(1, 2).reshape(b, -1, t, h, w)
    if block.frame_local:  # each pixel times its own frame's audio, channel by channel
        y = y + block.theta(x) * block.phi(a_map)
    z = block.w_z(y) + x
    return block.norm(z.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


@pytest.mark.parametrize("mode,frame_local", [("dot", False), ("embedded", False), ("dot", True)])
def test_factorised_tpavi_equals_naive(mode, frame_local):
    torch.manual_seed(0)
    block = TPAVI(channels=6, audio_dim=5, mode=mode, frame_local=frame_local).double()
    torch.nn.init.normal_(block.w_z.weight)  # leave the identity start, or y would not count
    x = torch.randn(2, 6, 3, 4, 5, dtype=torch.float64)
    audio = torch.randn(2, 3, 5, dtype=torch.float64)
    z, a = block(x, audio)
    assert a.shape == (2, 3, 6)
    ref = naive_tpavi(block, x, audio)
    assert torch.allclose(z, ref, atol=1e-10)
    assert (z - block.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)).abs().max() > 1e-3


# ---- the model -------------------------------------------------------------------------------
def toy_batch(batch: int, frames: int, size: int = 32, seconds: float = 0.5, seed: int = 0):
    """Two squares; the one that sounds (low tone: left, high tone: right) is the mask."""
    g = torch.Generator().manual_seed(seed)
    sr = DEFAULT_CONFIG.sample_rate
    n = int(seconds * sr)
    t = torch.arange(n) / sr
    img = torch.full((batch, frames, 3, size, size), 0.2)
    img[..., 0, 4:14, 4:14] = 0.9
    img[..., 2, 4:14, 18:28] = 0.9
    masks = torch.zeros(batch, frames, size, size, dtype=torch.bool)
    side = torch.randint(0, 2, (batch,), generator=g)
    wave = torch.zeros(batch, n)
    for i in range(batch):
        freq = 300.0 if side[i] == 0 else 3000.0
        wave[i] = 0.5 * torch.sin(2 * torch.pi * freq * t)
        masks[i, :, 4:14, 4:14] = side[i] == 0
        masks[i, :, 4:14, 18:28] = side[i] == 1
    return img, wave, masks


def test_forward_shapes_and_input_errors():
    torch.manual_seed(0)
    model = AVSModel(**TINY).eval()
    frames, wave, _ = toy_batch(2, 3)
    logits = model(frames, wave)
    assert logits.shape == (2, 3, 32, 32)
    out = model(frames, wave, return_features=True)
    assert len(out.audio_features) == len(out.visual_maps) == 2
    assert out.audio_features[0].shape == (2, 3, 8)
    from foley.errors import InputError

    with pytest.raises(InputError):
        model(frames[0], wave)
    with pytest.raises(InputError):
        model(frames, wave[:1])
    with pytest.raises(InputError, match="audio_window"):
        AVSModel(**{**TINY, "audio_window": 0})
    # TPAVI starts as the identity; once its output weights are not zero the audio counts
    assert torch.allclose(logits, model(frames, torch.zeros_like(wave)))
    for block in model.tpavi:
        torch.nn.init.normal_(block.w_z.weight)
    logits = model(frames, wave)
    assert not torch.allclose(logits, model(frames, torch.zeros_like(wave)))


@pytest.mark.parametrize("setting", ["single", "multi"])
def test_tiny_model_loss_falls(setting):
    torch.manual_seed(0)
    model = AVSModel(**TINY)
    frames, wave, masks = toy_batch(4, 3)
    lab = labelled_frames(setting, 4, 3)
    assert int(lab.sum()) == (4 if setting == "single" else 12)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss, parts = avs_loss(model(frames, wave, return_features=True), masks, lab, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(parts["loss"])
        assert parts["avm"] >= 0
    assert losses[-1] < 0.6 * losses[0]


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = AVSModel(**TINY, input_size=24).eval()
    frames, wave, _ = toy_batch(1, 2)
    model.save_pretrained(tmp_path / "avs")
    loaded = AVSModel.from_pretrained(tmp_path / "avs").eval()
    assert loaded.config.input_size == 24 and tuple(loaded.config.stage_channels) == (8, 16)
    with torch.no_grad():
        assert torch.equal(model(frames, wave), loaded(frames, wave))


def test_alignment_scores_are_bounded():
    torch.manual_seed(0)
    model = AVSModel(**TINY).eval()
    frames, wave, masks = toy_batch(2, 3)
    a = alignment_with_ground_truth(model, frames, wave, wave, masks)
    assert set(a) == {"J", "J_true_audio", "J_shuffled_audio"}
    assert a["J"] == pytest.approx(a["J_true_audio"])
    assert all(0.0 <= v <= 1.0 for v in a.values())
    s = alignment_score(model, frames[0], wave[0], num_shuffles=3)
    assert 0.0 <= s <= 1.0


# ---- pictures ----------------------------------------------------------------------------
def test_overlay_strip_and_video(tmp_path):
    from PIL import Image

    from foley.io import load_video
    from foley.viz import overlay_masks, save_overlay_strip, save_overlay_video

    frames = np.full((6, 16, 16, 3), 100, np.uint8)
    masks = np.zeros((6, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    over = overlay_masks(frames, masks)
    assert (over[:, 0, 0] == 100).all()  # outside untouched
    assert (over[:, 8, 8] != 100).any(axis=-1).all()  # inside tinted
    png = save_overlay_strip(tmp_path / "strip.png", frames, masks, gt_masks=masks, num=4, gap=2)
    img = np.asarray(Image.open(png))
    assert img.shape == (2 * 16 + 2, 4 * 16 + 3 * 2, 3)
    mp4 = save_overlay_video(tmp_path / "over.mp4", frames, masks, fps=16)
    video = load_video(mp4, with_audio=False)
    assert video.frames.shape[0] == 6


# ---- the trainer on a tiny dataset in the Ego4D-Sounds layout ----------------------------------
def write_toy_dataset(root, num_clips: int = 3):
    """Clips in the Ego4D-Sounds layout with FoleyWorld ground truth (masks from toy_batch)."""
    from foley.data.ego4d import ClipRecord, save_ground_truth, write_metadata
    from foley.io import write_video

    cfg = DEFAULT_CONFIG
    records = []
    for i in range(num_clips):
        frames, wave, masks = toy_batch(1, cfg.frames_per_clip, 112, cfg.clip_seconds, seed=i)
        uid = f"vid{i}"
        clip = f"{uid}/clip_{i}.mp4"
        rgb = (frames[0].permute(0, 2, 3, 1) * 255).to(torch.uint8).numpy()
        write_video(root / clip, rgb, cfg.fps, audio=wave[0].numpy())
        events = [{"onset": 0.1, "offset": 2.9, "verb": "knock", "material": "wood"}]
        save_ground_truth(
            root / uid / f"clip_{i}.gt.npz",
            action=wave[0].numpy(),
            ambient=np.zeros_like(wave[0].numpy()),
            masks=masks[0].numpy(),
            events=[{**e, "visible": True} for e in events],
            ambient_type="near_silence",
            ambient_db=-70.0,
        )
        records.append(
            ClipRecord(uid, 3.0, "n", i, 1.5, 0.0, 3.0, "#C C knocks", "knock", "block", 1.0,
                       clip, 0.0, 0.0, 0.0, 0.0)
        )  # fmt: skip
    write_metadata(root / "train.tsv", records)


def run_tiny_trainer(tmp_path, *extra: str, num_clips: int | None = None) -> Path:
    """``foley train avs`` on a toy dataset with a tiny model (2 steps); returns the data dir.

    ``extra``: more command-line arguments (they may repeat a default; argparse keeps the last).
    """
    from training import train_avs

    data = tmp_path / "data"
    if not data.exists():
        write_toy_dataset(data, **({} if num_clips is None else {"num_clips": num_clips}))
    parser = argparse.ArgumentParser()
    train_avs.add_arguments(parser)
    argv = ["--data", str(data), "--out", str(tmp_path / "run"), "--steps", "2", "--cpu"]
    argv += ["--batch-size", "2", "--frames", "2", "--input-size", "32", "--stage-channels", "8,16"]
    argv += ["--channels", "8", *extra]
    assert train_avs.run(parser.parse_args(argv)) == 0
    return data


def test_trainer_runs_and_resumes(tmp_path):
    from training.common import read_metrics

    opts = ("--save-every", "1", "--log-every", "1", "--setting", "single")
    run_tiny_trainer(tmp_path, *opts)
    assert (tmp_path / "run" / "model" / "config.json").exists()
    assert (tmp_path / "run" / "ckpt" / "LATEST").read_text().strip() == "step-0000002"
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2]
    # resume: two more steps continue from step 2
    run_tiny_trainer(tmp_path, *opts, "--steps", "4")
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2, 3, 4]
    model = AVSModel.from_pretrained(tmp_path / "run" / "model")
    assert model.config.input_size == 32


# ---- motion input (frame_diff) -----------------------------------------------------------------
def moving_pair(batch: int, frames: int, size: int = 32, seed: int = 0):
    """Two identical grey squares; one of them moved since the previous frame and that one is
    the mask (the audio is the same tone for every clip).  Only the motion tells them apart.

    Returns frames, prev_frames (B, T, 3, S, S), wave (B, N) and masks (B, T, S, S).
    """
    g = torch.Generator().manual_seed(seed)
    sr = DEFAULT_CONFIG.sample_rate
    n = sr // 2
    wave = (0.5 * torch.sin(2 * torch.pi * 1000.0 * torch.arange(n) / sr)).expand(batch, n)
    img = torch.full((batch, frames, 3, size, size), 0.2)
    prev = img.clone()
    masks = torch.zeros(batch, frames, size, size, dtype=torch.bool)
    side = torch.randint(0, 2, (batch,), generator=g)
    for i in range(batch):
        for left, moving in ((4, side[i] == 0), (18, side[i] == 1)):
            img[i, :, :, 8:18, left : left + 10] = 0.8
            shift = 3 if moving else 0
            prev[i, :, :, 8 + shift : 18 + shift, left : left + 10] = 0.8
            masks[i, :, 8:18, left : left + 10] = bool(moving)
    return img, prev, wave.clone(), masks


def test_frame_differences():
    from foley.models.video_encoder import frame_differences

    frames = torch.rand(2, 4, 3, 8, 8)
    d = frame_differences(frames)
    assert torch.equal(d[:, 0], torch.zeros_like(d[:, 0]))
    assert torch.allclose(d[:, 1:], frames[:, 1:] - frames[:, :-1])
    # consecutive frames: the default predecessors are the previous frames
    prev = torch.cat([frames[:, :1], frames[:, :-1]], 1)
    assert torch.allclose(frame_differences(frames, prev), d)
    from foley.errors import InputError

    with pytest.raises(InputError):
        frame_differences(frames, prev[:, :2])


def test_frame_diff_model_sees_the_predecessor_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = AVSModel(**TINY, input_size=24, frame_diff=True).eval()
    assert model.stem[0].weight.shape[1] == 6
    frames, prev, wave, _ = moving_pair(2, 3)
    with torch.no_grad():
        logits = model(frames, wave, prev_frames=prev)
        # changing only the predecessors changes the logits
        assert not torch.allclose(logits, model(frames, wave, prev_frames=frames), atol=1e-5)
        # a static clip without predecessors = the same frames given as their own predecessors
        static = frames[:, :1].expand_as(frames).contiguous()
        assert torch.allclose(model(static, wave), model(static, wave, prev_frames=static))
    model.save_pretrained(tmp_path / "avs")
    loaded = AVSModel.from_pretrained(tmp_path / "avs").eval()
    assert loaded.config.frame_diff is True
    with torch.no_grad():
        assert torch.equal(logits, loaded(frames, wave, prev_frames=prev))
    # a model without frame_diff (every saved model before it) ignores the predecessors
    plain = AVSModel(**TINY).eval()
    assert plain.config.frame_diff is False and plain.stem[0].weight.shape[1] == 3
    with torch.no_grad():
        assert torch.equal(plain(frames, wave), plain(frames, wave, prev_frames=prev))


def test_frame_diff_model_learns_motion():
    """The moving one of two identical squares: a frame_diff model's loss falls and it draws the
    moving square far above the still one; fed no motion (each frame its own predecessor) the
    same model cannot tell them apart."""
    frames, prev, wave, masks = moving_pair(8, 2)
    still = torch.zeros_like(masks)
    still[..., 8:18, 4:14] = True
    still[..., 8:18, 18:28] = True
    still &= ~masks
    gap = {}
    for motion in (True, False):
        torch.manual_seed(0)
        model = AVSModel(**TINY, frame_diff=True)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(40):
            out = model(frames, wave, return_features=True, prev_frames=prev if motion else frames)
            loss, parts = avs_loss(out, masks, avm_weight=0.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(parts["loss"])
        assert losses[-1] < 0.6 * losses[0]
        p = torch.sigmoid(out.logits.detach())
        gap[motion] = float(p[masks].mean() - p[still].mean())
    assert gap[True] > 0.25 and gap[True] > gap[False] + 0.15, gap


def test_trainer_frame_diff_caches_predecessors(tmp_path):
    from training import train_avs

    data = run_tiny_trainer(tmp_path, "--save-every", "2", "--frame-diff", num_clips=2)
    assert AVSModel.from_pretrained(tmp_path / "run" / "model").config.frame_diff is True
    cache = tmp_path / "run" / train_avs.FEATURES_DIR
    arrays = train_avs.extract_avs_clips(data, "train", cache, predecessors=True)
    keep = arrays["frame_index"]
    assert arrays["prev_frames"].shape == arrays["frames"].shape
    # kept frame 0 is its own predecessor; the others are the frame before in the decoded clip
    assert np.array_equal(arrays["prev_frames"][:, 0], arrays["frames"][:, 0])
    from foley.data.ego4d import ClipDataset

    decoded = ClipDataset(data, "train", ground_truth=False)[1]["frames"][keep[1] - 1]
    want = (decoded.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(arrays["prev_frames"][1, 1], want)
    # the cache with predecessors also serves a request without them (not decoded again)
    stamp = (cache / "avs_train" / "manifest.json").stat().st_mtime_ns
    plain = train_avs.extract_avs_clips(data, "train", cache)
    assert (
        "prev_frames" not in plain
        and (cache / "avs_train" / "manifest.json").stat().st_mtime_ns == stamp
    )
    batch = train_avs.sample_batch(arrays, np.random.default_rng(0), 2, 3)
    assert batch["prev_frames"].shape == batch["frames"].shape
    assert "prev_frames" not in train_avs.sample_batch(plain, np.random.default_rng(0), 2, 3)


def test_sounding_masks_give_frame_diff_models_the_previous_frame():
    """Windows of a long video: a window's first frame gets the last frame of the window before
    as its predecessor (what the model would see on the whole video at once)."""
    from foley.analysis.masks import sounding_masks
    from foley.config import AVConfig

    torch.manual_seed(0)
    cfg = AVConfig(clip_seconds=0.5, frame_size=32)
    model = AVSModel(**TINY, frame_diff=True, av_config=cfg.to_dict()).eval()
    frames = torch.rand(16, 3, 32, 32)  # two windows of 8 frames at 16 fps
    wave = torch.randn(16000) * 0.1
    masks, score = sounding_masks(
        model, frames, wave.numpy(), cfg, num_shuffles=2, max_batch_windows=1
    )
    assert masks.shape == (16, 32, 32) and 0.0 <= score <= 1.0
    prev = torch.cat([frames[:1], frames[:-1]]).reshape(2, 8, 3, 32, 32)
    with torch.no_grad():
        want = torch.sigmoid(model(frames.reshape(2, 8, 3, 32, 32), wave.reshape(2, 8000), None,
                                   prev_frames=prev))  # fmt: skip
        alone = torch.sigmoid(model(frames.reshape(2, 8, 3, 32, 32), wave.reshape(2, 8000)))
    assert np.allclose(masks, want.reshape(16, 32, 32).numpy(), atol=1e-5)
    assert not np.allclose(masks[8], alone[1, 0].numpy(), atol=1e-4)  # window edge


# ---- content: the contrastive term and the content gate ---------------------------------------
def test_content_gate_starts_as_the_plain_model_and_adds_the_key_similarity(tmp_path):
    torch.manual_seed(0)
    plain = AVSModel(**TINY).eval()
    gated = AVSModel(**TINY, content_gate=True).eval()
    missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["gate_scale"] and not unexpected
    frames, wave = torch.rand(2, 3, 3, 32, 32), torch.randn(2, 8000)
    with torch.no_grad():
        assert torch.allclose(gated(frames, wave), plain(frames, wave))  # gate 0 at the start
        gated.gate_scale.fill_(2.0)
        out = gated(frames, wave, return_features=True)
        sim = gated.content_similarity(out.visual_inputs, out.audio_features, (32, 32))
        assert sim.shape == (2, 3, 32, 32) and sim.abs().max() <= 1.0 + 1e-5
        assert torch.allclose(out.logits, plain(frames, wave) + 2.0 * sim, atol=1e-5)
    gated.save_pretrained(tmp_path / "gated")
    again = AVSModel.from_pretrained(tmp_path / "gated").eval()
    assert again.config.content_gate and float(again.gate_scale) == 2.0


def test_trainer_content_options(tmp_path):
    from training.common import read_metrics

    run_tiny_trainer(
        tmp_path,
        *("--batch-size", "4", "--frames", "4", "--log-every", "1", "--content-gate"),
        *("--contrast-weight", "0.5", "--negatives", "0.5", "--negative-mix", "swap=1"),
        *("--audio-window", "24"),
    )
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2] and all("contrast" in r for r in rows)
    model = AVSModel.from_pretrained(tmp_path / "run" / "model")
    assert model.config.content_gate and model.config.audio_window == 24
