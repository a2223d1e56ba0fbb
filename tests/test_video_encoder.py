"""VideoEncoder: shapes, temporal locality, save/load, pluggable transformers backbone."""

from __future__ import annotations

import json

import pytest
import torch

from foley.errors import InputError
from foley.models.video_encoder import VideoEncoder

TINY = dict(dim=16, channels=(8, 16), temporal_layers=1)


def _frames(batch: int = 2, t: int = 6, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, t, 3, size, size, generator=g)


@pytest.mark.parametrize("mixer", ["conv", "transformer", "none"])
def test_one_feature_per_frame(mixer: str) -> None:
    torch.manual_seed(0)
    enc = VideoEncoder(**TINY, temporal_mixer=mixer).eval()
    out = enc(_frames())
    assert out.shape == (2, 6, 16)
    assert torch.isfinite(out).all()
    # non-square and 112x112 frames work too
    assert enc(torch.rand(1, 3, 3, 112, 112)).shape == (1, 3, 16)
    assert enc(torch.rand(1, 3, 3, 48, 64)).shape == (1, 3, 16)


def test_conv_mixer_is_local_in_time() -> None:
    """Changing the last frame leaves features of frames outside the receptive field unchanged."""
    torch.manual_seed(0)
    enc = VideoEncoder(**TINY, temporal_kernel=3).eval()  # 1 layer, kernel 3: +-1 frame
    x = _frames(1, 8)
    y = x.clone()
    y[:, -1] = torch.rand_like(y[:, -1])
    with torch.no_grad():
        a, b = enc(x), enc(y)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)
    assert not torch.allclose(a[:, 6:], b[:, 6:], atol=1e-4)


def test_frames_of_a_batch_are_independent() -> None:
    torch.manual_seed(0)
    enc = VideoEncoder(**TINY).eval()
    x = _frames(3, 4)
    with torch.no_grad():
        full = enc(x)
        single = enc(x[1:2])
    assert torch.allclose(full[1:2], single, atol=1e-5)


def test_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    enc = VideoEncoder(**TINY, temporal_mixer="transformer").eval()
    enc.save_pretrained(tmp_path / "enc")
    back = VideoEncoder.from_pretrained(tmp_path / "enc").eval()
    x = _frames()
    with torch.no_grad():
        assert torch.allclose(enc(x), back(x), atol=1e-6)


def test_bad_shapes_and_options() -> None:
    enc = VideoEncoder(**TINY)
    with pytest.raises(ValueError, match="batch, T, 3, H, W"):
        enc(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="temporal_mixer"):
        VideoEncoder(**TINY, temporal_mixer="lstm")
    with pytest.raises(ValueError, match="odd"):
        VideoEncoder(**TINY, temporal_kernel=4)
    with pytest.raises(InputError, match="config.json"):
        VideoEncoder(**TINY, backbone_path="/nonexistent/backbone")


@pytest.fixture
def tiny_vit(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    path = tmp_path / "vit"
    ViTModel(cfg).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
    )
    return path


def test_transformers_backbone(tiny_vit, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    enc = VideoEncoder(dim=16, backbone_path=str(tiny_vit), temporal_layers=1).eval()
    x = _frames(2, 3, size=64)  # resized to the backbone's 32x32
    with torch.no_grad():
        out = enc(x)
    assert out.shape == (2, 3, 16)
    # the frozen backbone is not part of our weights, nor trainable
    assert not any(k.startswith("_backbone") or "encoder.layer" in k for k in enc.state_dict())
    assert all(p.requires_grad for p in enc.parameters())
    assert sum(p.numel() for p in enc.parameters()) < 5_000
    # gradients reach the projection through the frozen backbone's features
    enc(x).sum().backward()
    assert enc.frame_net.weight.grad is not None

    enc.save_pretrained(tmp_path / "enc")
    saved = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert saved["backbone_path"] == str(tiny_vit)
    back = VideoEncoder.from_pretrained(tmp_path / "enc").eval()
    with torch.no_grad():
        assert torch.allclose(back(x), out, atol=1e-5)
