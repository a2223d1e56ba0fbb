"""The app's "where the sound comes from" panel: DenseAV heatmaps of the generated soundtrack
and of the upload's own soundtrack (tiny real models, FoleyWorld data in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gradio")

from app.service import FoleyService, Limits, Models, load_models  # noqa: E402
from app.ui import _heatmap_md  # noqa: E402
from foley.io import load_video, write_video  # noqa: E402
from foley.models.denseav import DenseAVModel  # noqa: E402
from tests.app_fixtures import CFG, make_world  # noqa: E402
from tests.tiny import DENSEAV_TINY  # noqa: E402

LIMITS = Limits(max_video_seconds=3.0, max_upload_mb=2.0, avs_shuffles=2, max_candidates=1)


def test_heatmaps_of_generated_and_own_soundtrack(tmp_path):
    world = make_world(tmp_path)
    pipe = load_models(world["model"]).pipeline
    torch.manual_seed(0)
    pipe.set_denseav(DenseAVModel(**DENSEAV_TINY, av_config=CFG.to_dict()).eval())
    service = FoleyService(Models(pipeline=pipe, avs=pipe.avs), limits=LIMITS)
    silent = service.generate(world["clip"], "ambient_joint", steps=2, guidance=2.0)
    assert silent.heatmap is not None and silent.own_heatmap is None  # no audio track
    assert 0.0 <= silent.heatmap.score <= 1.0
    assert Path(silent.heatmap.strip_path).is_file() and Path(silent.heatmap.video_path).is_file()
    assert silent.details()["denseav_score"] == round(silent.heatmap.score, 3)
    # an upload with its own soundtrack gets a second overlay
    video = load_video(world["clip"], CFG, with_audio=False)
    t = np.arange(int(2.0 * CFG.sample_rate)) / CFG.sample_rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    voiced = write_video(tmp_path / "voiced.mp4", video.frames, CFG.fps, tone, CFG.sample_rate)
    result = service.generate(voiced, "ambient_joint", steps=2, guidance=2.0)
    assert result.own_heatmap is not None and Path(result.own_heatmap.strip_path).is_file()
    assert "own soundtrack" in _heatmap_md(result)
    assert result.details()["denseav_score_own_audio"] == round(result.own_heatmap.score, 3)
