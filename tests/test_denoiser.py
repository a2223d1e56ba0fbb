"""FoleyDenoiser: shapes, conditioning paths, null tokens, locality of the video stream."""

from __future__ import annotations

import pytest
import torch

from foley.config import DEFAULT_CONFIG
from foley.models.denoiser import FoleyDenoiser, resample_to_latent_rate

CFG = DEFAULT_CONFIG
L, T = CFG.latents_per_clip, CFG.frames_per_clip  # 150 latent frames, 48 video frames


def tiny(**kw) -> FoleyDenoiser:
    torch.manual_seed(0)
    args = dict(latent_dim=8, video_dim=12, hidden_dim=16, num_layers=2, num_heads=4, ff_mult=2)
    args.update(kw)
    model = FoleyDenoiser(**args, latents_per_frame=CFG.latents_per_frame).eval()
    # adaLN-Zero starts as the identity: give every zero-initialised layer random weights so
    # that the tests see the conditioning paths at work
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "modulation" in name or "proj_out" in name:
                p.normal_(0, 0.2)
    return model


def inputs(batch: int = 2):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(batch, L, 8, generator=g),
        torch.randn(batch, T, 12, generator=g),
        torch.randn(batch, L, 8, generator=g),
    )


def test_shapes_and_finite():
    model = tiny()
    x, v, c = inputs()
    out = model(x, torch.tensor([10.0, 900.0]), v, c)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # other lengths work too (positions are computed, not tabled)
    out = model(x[:, :60], 500, v[:, :20], c[:, :30])
    assert out.shape == (2, 60, 8)


def test_resample_to_latent_rate_is_linear_in_time():
    # features that are a linear ramp in frame time stay a ramp at the latent rate
    t = torch.arange(T, dtype=torch.float32)
    feats = t.view(1, T, 1)
    out = resample_to_latent_rate(feats, L, CFG.latents_per_frame)[0, :, 0]
    expect = ((torch.arange(L) + 0.5) / CFG.latents_per_frame - 0.5).clamp(0, T - 1)
    torch.testing.assert_close(out, expect)
    assert out.shape == (L,)


def test_condition_and_video_change_the_output():
    model = tiny()
    x, v, c = inputs()
    base = model(x, 500, v, c)
    assert not torch.allclose(base, model(x, 500, v, c * 0.0 + 1.0), atol=1e-5)
    assert not torch.allclose(base, model(x, 500, v.flip(1), c), atol=1e-5)
    assert not torch.allclose(base, model(x, 100, v, c), atol=1e-5)


def test_keep_flags_equal_null_tokens_per_sample():
    model = tiny()
    x, v, c = inputs()
    keep = torch.tensor([True, False])
    mixed = model(x, 500, v, c, video_keep=keep, condition_keep=keep)
    full = model(x[:1], 500, v[:1], c[:1])
    # a dropped sample ignores its video and condition entirely
    dropped = model(
        x[1:], 500, v[1:] * 5.0, c[1:] - 3.0, video_keep=keep[1:], condition_keep=keep[1:]
    )
    torch.testing.assert_close(mixed[:1], full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mixed[1:], dropped, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(mixed[1:], model(x[1:], 500, v[1:], c[1:]), atol=1e-5)


def test_frame_sync_stream_is_local_in_time():
    """Changing one video frame moves the sync stream only at that frame's tokens."""
    model = tiny(num_layers=1)
    tokens_per_frame = CFG.latents_per_frame / model.config.patch_size  # 1.5625
    num_tokens = L // model.config.patch_size
    v = torch.randn(1, T, 12)
    v2 = v.clone()
    v2[0, 20] += 3.0
    sync = resample_to_latent_rate(model.video_sync(v), num_tokens, tokens_per_frame)
    sync2 = resample_to_latent_rate(model.video_sync(v2), num_tokens, tokens_per_frame)
    changed = torch.nonzero((sync - sync2).abs().amax(-1)[0] > 1e-6).flatten()
    # token j sits at frame (j + 0.5) / tokens_per_frame - 0.5: only tokens strictly between
    # frames 19 and 21 interpolate from frame 20
    lo, hi = (19.5 * tokens_per_frame - 0.5), (21.5 * tokens_per_frame - 0.5)
    assert changed.tolist() == [j for j in range(num_tokens) if lo < j < hi]
    # and the network output moves most where the frame is (latent frames 62..65)
    x = torch.randn(1, L, 8)
    diff = (model(x, 500, v) - model(x, 500, v2)).abs().sum(-1)[0]
    assert 55 <= int(diff.argmax()) <= 72


def test_odd_lengths_and_patch_sizes():
    for patch in (1, 2, 3):
        model = tiny(patch_size=patch)
        out = model(torch.randn(2, 151, 8), 100, torch.randn(2, 48, 12), torch.randn(2, 37, 8))
        assert out.shape == (2, 151, 8) and torch.isfinite(out).all()


def test_save_load_round_trip(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path / "d")
    loaded = FoleyDenoiser.from_pretrained(tmp_path / "d").eval()
    x, v, c = inputs()
    torch.testing.assert_close(model(x, 300, v, c), loaded(x, 300, v, c))
    assert loaded.config.latents_per_frame == pytest.approx(CFG.latents_per_frame)


def test_gradients_reach_every_parameter():
    model = tiny().train()
    x, v, c = inputs()
    keep = torch.tensor([True, False])
    out = model(x, torch.tensor([3.0, 700.0]), v, c, video_keep=keep, condition_keep=keep)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


# ---- training: features, a few steps, resume, export ------------------------------------------
def _tiny_dataset(root, cfg):
    """Two long videos x three clips in Ego4D-Sounds format (mp4 with 16 kHz audio)."""
    import numpy as np

    from foley.data.ego4d import ClipRecord, write_metadata
    from foley.io import write_video

    rng = np.random.default_rng(0)
    records = {"train": [], "val": []}
    for v, split in enumerate(["train", "train", "val"]):
        for c in range(3 if split == "train" else 2):
            frames = rng.integers(0, 255, (cfg.frames_per_clip, 40, 40, 3), dtype=np.uint8)
            audio = rng.normal(0, 0.05 * (v + 1), cfg.samples_per_clip).astype(np.float32)
            name = f"clip{c}.mp4"
            write_video(root / f"vid{v}" / name, frames, cfg.fps, audio=audio)
            records[split].append(
                ClipRecord(
                    f"vid{v}",
                    60.0,
                    "nar",
                    c,
                    10.0 * c + 1.5,
                    10.0 * c,
                    10.0 * c + 3,
                    "#C C knocks",
                    "knock",
                    "cup",
                    1.0,
                    name,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                )
            )
    for split, recs in records.items():
        write_metadata(root / f"{split}.tsv", recs)


def test_features_train_resume_export(tmp_path):
    import json

    import numpy as np

    from foley.config import AVConfig
    from foley.models.codec import FoleyCodec
    from foley.pipelines.foley_pipeline import FoleyPipeline
    from training import train_denoiser
    from training.common import read_metrics
    from training.features import SplitFeatures, extract

    cfg = AVConfig(clip_seconds=1.0, fps=8.0, frame_size=32)
    data = tmp_path / "data"
    _tiny_dataset(data, cfg)
    torch.manual_seed(0)
    FoleyCodec(latent_dim=8, n_filters=4, lstm_layers=0).save_pretrained(tmp_path / "codec")
    extract(data, tmp_path / "feat", tmp_path / "codec", ["train", "val"], cfg)
    train = SplitFeatures(tmp_path / "feat", "train")
    assert train.latents.shape == (6, cfg.latents_per_clip, 8)
    assert train.frames.shape == (6, cfg.frames_per_clip, 32, 32, 3)
    # neighbours: other clips of the same video_uid only
    assert sorted(train.neighbours(0)) == [1, 2] and sorted(train.neighbours(4)) == [3, 5]

    argv = [
        str(tmp_path / "feat"),
        "-o",
        str(tmp_path / "run"),
        "--hidden-dim",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--video-dim",
        "8",
        "--video-channels",
        "4",
        "8",
        "--batch-size",
        "2",
        "--save-every",
        "2",
        "--val-every",
        "3",
        "--val-num",
        "1",
        "--val-steps",
        "2",
        "--workers",
        "0",
        "--cpu",
    ]
    parser = __import__("argparse").ArgumentParser()
    train_denoiser.add_arguments(parser)
    assert train_denoiser.run(parser.parse_args(argv + ["--steps", "2"])) == 0
    state = json.loads(
        (tmp_path / "run/ckpt/LATEST").read_text()
        and next((tmp_path / "run/ckpt").glob("step-*/trainer_state.json")).read_text()
    )
    assert state["step"] == 2
    # resume to step 3: continues from the checkpoint, validates and exports
    assert train_denoiser.run(parser.parse_args(argv + ["--steps", "3"])) == 0
    steps = [row["step"] for row in read_metrics(tmp_path / "run") if "loss" in row]
    assert steps == [2, 3]
    val_rows = [row for row in read_metrics(tmp_path / "run") if "val_mel_l1" in row]
    assert val_rows and np.isfinite(val_rows[0]["val_mel_l1"])
    val_dir = tmp_path / "run/val/step-0000003"
    assert (val_dir / "00_generated.wav").is_file() and (val_dir / "00.png").is_file()
    pipe = FoleyPipeline.from_pretrained(tmp_path / "run/model")
    assert pipe.av_config == cfg and pipe.denoiser.config.hidden_dim == 16

    # a frozen video encoder: its features are extracted once and it ships in the pipeline
    from foley.models.video_encoder import VideoEncoder

    encoder = VideoEncoder(dim=8, channels=(4, 8))
    encoder.save_pretrained(tmp_path / "venc")
    extract(
        data,
        tmp_path / "feat2",
        tmp_path / "codec",
        ["train"],
        cfg,
        video_encoder_dir=tmp_path / "venc",
    )
    feats = SplitFeatures(tmp_path / "feat2", "train").video_feats
    with torch.no_grad():
        first = encoder(torch.from_numpy(np.array(train.frames[0])).permute(0, 3, 1, 2)[None] / 255)
    np.testing.assert_allclose(feats[0], first[0].numpy(), atol=2e-3)
    argv2 = [
        str(tmp_path / "feat2"),
        "-o",
        str(tmp_path / "run2"),
        "--hidden-dim",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--batch-size",
        "2",
        "--steps",
        "1",
        "--val-num",
        "0",
        "--workers",
        "0",
        "--cpu",
    ]
    assert train_denoiser.run(parser.parse_args(argv2)) == 0
    shipped = FoleyPipeline.from_pretrained(tmp_path / "run2/model").video_encoder
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(shipped.state_dict()[name], value)


def test_init_denoiser_widens_the_video_input_as_the_same_function(tmp_path):
    """--init-from onto wider video features (sync + EfficientNet): the extra inputs start at
    zero weight, so the widened denoiser computes what the saved one does, whatever they hold."""
    from foley.errors import ModelMismatchError
    from training.train_denoiser import _init_denoiser

    model = tiny()
    model.save_pretrained(tmp_path / "pipe" / "denoiser")
    x, v, c = inputs()
    width = model.config.video_dim
    wide = _init_denoiser(str(tmp_path / "pipe"), 0, width + 5, widen=True).eval()
    assert wide.config.video_dim == width + 5
    extra = torch.randn(*v.shape[:-1], 5)
    with torch.no_grad():
        torch.testing.assert_close(wide(x, 500, torch.cat([v, extra], -1), c), model(x, 500, v, c))
    assert _init_denoiser(str(tmp_path / "pipe"), 0, width).config.video_dim == width
    for dim, widen in ((width - 1, True), (width + 5, False)):  # narrower; other features
        with pytest.raises(ModelMismatchError, match="video features"):
            _init_denoiser(str(tmp_path / "pipe"), 0, dim, widen=widen)


def test_step_invariants_computed_once_give_the_same_prediction():
    """A sampler computes the video / condition / curve streams, the cross-attention keys and
    values and the guidance embedding once (``invariants``): bit-identical predictions."""
    model = tiny(curve_dim=2, guidance_embed=True)
    with torch.no_grad():
        model.guidance_embedding.linear_2.weight.normal_(0, 0.2)
    latents, video, cond = inputs(3)
    curves = torch.rand(3, L, 2, generator=torch.Generator().manual_seed(2))
    keep = torch.tensor([True, False, True])
    with torch.no_grad():
        inv = model.invariants(3, L, video, cond, keep, keep.flip(0), curves, 4.0)
        for t in (999.0, 500.0, 3.0):
            direct = model(latents, t, video, cond, keep, keep.flip(0), curves, guidance=4.0)
            assert torch.equal(model(latents, t, invariants=inv), direct)
        other = model(latents, 500.0, video, cond, keep, keep.flip(0), curves, guidance=2.0)
        assert not torch.allclose(model(latents, 500.0, invariants=inv), other)
