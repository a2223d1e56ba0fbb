"""FoleyPipeline's optional DenseAV component: heatmaps and alignment score of the generated
audio, and saving/loading it with the pipeline (tiny real pipeline, tiny real DenseAVModel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.analysis import sound_heatmaps
from foley.errors import InputError
from foley.models.denseav import DenseAVModel
from foley.pipelines.foley_pipeline import FoleyPipeline
from tests.test_pipeline import CFG, make_pipeline, moving_square
from tests.tiny import DENSEAV_TINY


@pytest.fixture(scope="module")
def pipe() -> FoleyPipeline:
    torch.manual_seed(3)
    return make_pipeline().set_denseav(DenseAVModel(**DENSEAV_TINY, av_config=CFG.to_dict()))


def test_heatmaps_of_the_generated_audio(pipe, tmp_path):
    frames = moving_square(CFG.frames_per_clip, size=CFG.frame_size)
    kw = dict(num_inference_steps=2, mode="no_condition", mask_shuffles=2)
    out = pipe(frames, generator=torch.Generator().manual_seed(0), return_heatmaps=True, **kw)
    (heat,), (score,) = out.heatmaps, out.heatmap_scores
    assert heat.shape == (frames.shape[0], CFG.frame_size, CFG.frame_size)
    assert 0.0 <= score <= 1.0 and out.masks is None
    expect, s = sound_heatmaps(
        pipe.denseav, pipe._prepare_video(frames).frames, out.audios[0], CFG, num_shuffles=2
    )
    np.testing.assert_allclose(heat, expect, atol=1e-6)
    assert s == score
    pipe.save_pretrained(tmp_path / "p")
    loaded = FoleyPipeline.from_pretrained(tmp_path / "p")
    assert isinstance(loaded.denseav, DenseAVModel)
    again, _ = loaded.sound_heatmaps(frames, out.audios[0], num_shuffles=2)
    np.testing.assert_allclose(again, heat, atol=1e-6)


def test_without_denseav_return_heatmaps_is_a_one_line_error(pipe):
    bare = make_pipeline()
    with pytest.raises(InputError, match="DenseAV"):
        bare(moving_square(8, size=32), mode="no_condition", return_heatmaps=True)
    with pytest.raises(InputError, match="output_type"):
        pipe(
            moving_square(8, size=32),
            mode="no_condition",
            return_heatmaps=True,
            output_type="latent",
        )
