"""FoleyPipeline's optional AVS component: masks and alignment score with the generated audio.

Tiny real pipeline (tests/test_pipeline.py's builder) and a tiny real AVSModel (random weights).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from foley.config import AVConfig
from foley.errors import InputError
from foley.io import load_video, write_video
from foley.metrics.avs import alignment_score, predict_probs
from foley.models.avs import AVSModel
from foley.pipelines.foley_pipeline import FoleyPipeline
from tests.test_pipeline import CFG, make_pipeline, moving_square
from tests.tiny import AVS_TINY


def tiny_avs(seed: int = 1, cfg=CFG) -> AVSModel:
    """A tiny AVSModel whose masks depend on the audio.

    TPAVI's output convolution starts at zero (the block is the identity at init, as in
    AVSBench); small random weights there let an untrained model respond to the audio.
    """
    torch.manual_seed(seed)
    avs = AVSModel(**AVS_TINY, av_config=cfg.to_dict())
    with torch.no_grad():
        for name, p in avs.named_parameters():
            if "w_z" in name:
                p.normal_(0, 0.5)
    return avs.eval()


@pytest.fixture(scope="module")
def pipe() -> FoleyPipeline:
    return make_pipeline().set_avs(tiny_avs())


def gen(pipe, video, seed=0, **kw):
    kw.setdefault("num_inference_steps", 2)
    kw.setdefault("mode", "no_condition")
    return pipe(video, generator=torch.Generator().manual_seed(seed), **kw)


def test_masks_cover_every_input_frame_and_match_the_avs_model(pipe):
    # 20 frames at 8 fps = 2.5 s: two full 1 s AVS windows and a padded half one
    videos = [moving_square(20, size=32), moving_square(5, size=32, seed=1)]
    out = gen(pipe, videos, return_masks=True, mask_shuffles=2)
    assert [m.shape for m in out.masks] == [(20, 32, 32), (5, 32, 32)]
    for m, score in zip(out.masks, out.alignment_scores):
        assert m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0 and m.std() > 0
        assert isinstance(score, float) and 0.0 <= score <= 1.0
    # the first window equals the AVS model run by hand on the frames and the generated audio
    frames = torch.from_numpy(videos[0][:8]).permute(0, 3, 1, 2).float()[None] / 255.0
    wave = torch.from_numpy(out.audios[0][: CFG.samples_per_clip])[None]
    by_hand = predict_probs(pipe.avs, frames, wave)[0].numpy()
    np.testing.assert_allclose(out.masks[0][:8], by_hand, atol=1e-5)
    # the score is the mean of the windows' scores (the last one padded with silence)
    x = torch.from_numpy(np.concatenate([videos[0], videos[0][-1:].repeat(4, 0)]))
    x = x.permute(0, 3, 1, 2).float().reshape(3, 8, 3, 32, 32) / 255.0
    w = np.zeros(3 * CFG.samples_per_clip, np.float32)
    w[: out.audios[0].size] = out.audios[0]
    expected = alignment_score(pipe.avs, x, torch.from_numpy(w).reshape(3, -1), num_shuffles=2)
    assert out.alignment_scores[0] == pytest.approx(float(expected.mean()), abs=1e-6)
    # masks depend on the audio: the same frames with silence give other masks
    silent, _ = pipe.sounding_masks(videos[0], np.zeros(out.audios[0].size), num_shuffles=2)
    assert np.abs(silent - out.masks[0]).max() > 1e-4
    # without return_masks, nothing is added
    plain = gen(pipe, videos[0])
    assert plain.masks is None and plain.alignment_scores is None
    np.testing.assert_allclose(plain.audios[0], out.audios[0], rtol=1e-3, atol=1e-3)


def test_masks_of_a_video_file_at_the_pipeline_frame_size(pipe, tmp_path):
    path = write_video(tmp_path / "in.mp4", moving_square(23, size=48), fps=10.0)
    num_frames = len(load_video(path, CFG, with_audio=False).frames)
    out = gen(pipe, path, return_masks=True, mask_shuffles=1)
    assert out.masks[0].shape == (num_frames, CFG.frame_size, CFG.frame_size)
    # max_seconds keeps the first frames only, with the same masks there
    masks, score = pipe.sounding_masks(path, out.audios[0], num_shuffles=1, max_seconds=1.0)
    assert masks.shape == (CFG.num_frames(1.0), 32, 32) and 0.0 <= score <= 1.0
    np.testing.assert_allclose(masks, out.masks[0][: len(masks)], atol=1e-5)


def test_avs_model_at_another_frame_size(pipe):
    """An AVS model of another frame size gets frames resized; masks come back at 32 x 32."""
    other = make_pipeline().set_avs(tiny_avs(cfg=AVConfig(**{**CFG.to_dict(), "frame_size": 48})))
    masks, score = other.sounding_masks(moving_square(9, size=32), np.zeros(18000), num_shuffles=1)
    assert masks.shape == (9, 32, 32) and 0.0 <= masks.min() <= masks.max() <= 1.0


def test_without_an_avs_model_return_masks_is_a_one_line_error(pipe):
    bare = make_pipeline()
    assert bare.avs is None
    for call in (
        lambda: gen(bare, moving_square(8, size=32), return_masks=True),
        lambda: bare.sounding_masks(moving_square(8, size=32), np.zeros(16000)),
    ):
        with pytest.raises(InputError, match="AVS model") as err:
            call()
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(InputError, match="output_type='np'"):
        gen(pipe, moving_square(8, size=32), return_masks=True, output_type="latent")
    with pytest.raises(InputError, match="finite"):
        pipe.sounding_masks(moving_square(8, size=32), np.full(16000, np.nan))
    with pytest.raises(InputError, match="mask_shuffles"):
        gen(pipe, moving_square(8, size=32), return_masks=True, mask_shuffles=0)
    # the bare pipeline still generates
    assert gen(bare, moving_square(8, size=32)).audios[0].shape == (16000,)


def test_save_load_round_trip_keeps_the_avs_model(pipe, tmp_path):
    frames = moving_square(12, size=32)
    before = gen(pipe, frames, return_masks=True, mask_shuffles=2)
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["avs"] == ["foley.models.avs", "AVSModel"]
    loaded = FoleyPipeline.from_pretrained(tmp_path / "p")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.avs, AVSModel) and not loaded.avs.training
    after = gen(loaded, frames, return_masks=True, mask_shuffles=2)
    np.testing.assert_allclose(after.masks[0], before.masks[0], atol=1e-5)
    assert after.alignment_scores == pytest.approx(before.alignment_scores)
    # avs=None leaves it out
    assert FoleyPipeline.from_pretrained(tmp_path / "p", avs=None).avs is None


def test_optional_components_are_the_listed_ones_and_from_pipe_adds_one(tmp_path):
    """diffusers' optional components: a folder is never sniffed; ``from_pipe`` shares the
    components and adds one, and saving lists it in model_index.json."""
    make_pipeline().save_pretrained(tmp_path / "m")
    avs = tiny_avs(seed=5)
    avs.save_pretrained(tmp_path / "m" / "avs")  # a folder model_index.json does not list
    listed = json.loads((tmp_path / "m" / "model_index.json").read_text()).get("avs")
    assert listed in (None, [None, None])
    loaded = FoleyPipeline.from_pretrained(tmp_path / "m")
    assert loaded.avs is None and "avs" in loaded._optional_components
    with_avs = FoleyPipeline.from_pipe(loaded, avs=avs)
    assert with_avs.avs is avs and with_avs.codec is loaded.codec
    assert set(with_avs.components) >= {"codec", "video_encoder", "denoiser", "avs", "sync"}
    with_avs.save_pretrained(tmp_path / "m2")
    listed = json.loads((tmp_path / "m2" / "model_index.json").read_text())["avs"]
    assert listed == ["foley.models.avs", "AVSModel"]
    again = FoleyPipeline.from_pretrained(tmp_path / "m2")
    torch.testing.assert_close(
        again.avs.state_dict()["head.1.weight"], avs.state_dict()["head.1.weight"]
    )


def test_cli_generate_masks(pipe, tmp_path, capsys):
    from PIL import Image

    from foley.cli.main import main
    from foley.io import probe_video, save_audio

    model = tmp_path / "model"
    pipe.save_pretrained(model)
    src = write_video(tmp_path / "in.mp4", moving_square(20, size=48), fps=10.0)
    cond = save_audio(tmp_path / "cond.wav", 0.1 * np.sin(np.arange(16000) / 3.0))
    common = ["--model", str(model), "--condition-audio", str(cond), "--steps", "2", "--quiet"]
    num_frames = len(load_video(src, CFG, with_audio=False).frames)

    png, mp4 = tmp_path / "masks.png", tmp_path / "masks.mp4"
    assert (
        main(["generate", str(src), "-o", str(tmp_path / "a.mp4"), "--masks", str(png)] + common)
        == 0
    )
    assert "alignment score" in capsys.readouterr().out
    strip = np.asarray(Image.open(png))
    assert strip.shape[0] == CFG.frame_size and strip.shape[1] > 4 * CFG.frame_size
    assert (
        main(["generate", str(src), "-o", str(tmp_path / "b.mp4"), "--masks", str(mp4)] + common)
        == 0
    )
    info = probe_video(mp4)
    assert info.has_audio and abs(info.num_frames - num_frames) <= 1

    # a folder in: a folder of mp4 overlays
    (tmp_path / "many").mkdir()
    write_video(tmp_path / "many" / "x.mp4", moving_square(12, size=48), fps=8.0)
    folder = ["generate", str(tmp_path / "many"), "-o", str(tmp_path / "out")]
    assert main(folder + ["--masks", str(tmp_path / "overlays")] + common) == 0
    assert [p.name for p in (tmp_path / "overlays").iterdir()] == ["x.mp4"]

    # a bad suffix, and a model without AVS: one line, exit code 1
    capsys.readouterr()
    assert (
        main(["generate", str(src), "-o", str(tmp_path / "c.mp4"), "--masks", "m.gif"] + common)
        == 1
    )
    assert "--masks" in capsys.readouterr().err
    make_pipeline().save_pretrained(tmp_path / "bare")
    bare = ["--model", str(tmp_path / "bare"), "--overwrite"] + common[2:]  # masks.png exists
    assert (
        main(["generate", str(src), "-o", str(tmp_path / "d.mp4"), "--masks", str(png)] + bare) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "AVS model" in err[0]
