"""A tiny saved Foley model folder for the app tests (random weights, real components).

``write_model_dir(root, data)`` saves a FoleyPipeline (codec, video encoder, denoiser,
scheduler, MC3) with an ``avs/`` AVS model and an ``index/`` built from ``data`` with the saved
MC3: the layout ``foley app --model DIR`` loads.  Small contract: 1 s clips, 8 fps, 32 x 32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from app.rebuild import build_index
from foley.config import AVConfig
from foley.io import write_video
from foley.models.avs import AVSModel
from foley.models.mc3 import MC3Model
from foley.models.mc3_embed import model_id
from foley.pipelines.foley_pipeline import FoleyPipeline
from tests.tiny import AVS_TINY
from tests.tiny import tiny_pipeline as shared_tiny_pipeline

CFG = AVConfig(clip_seconds=1.0, fps=8.0, frame_size=32)


def tiny_pipeline(seed: int = 0, with_mc3: bool = True) -> FoleyPipeline:
    """The shared tiny pipeline with the app's settings: wide latents, an MC3 model."""
    return shared_tiny_pipeline(seed, cfg=CFG, codec_stats="wide", mc3=with_mc3)


def write_model_dir(root: Path, data: Path, *, avs: bool = True, index: bool = True) -> Path:
    """Save the tiny pipeline to ``root`` (+ ``avs/``, + ``retriever/index/`` built from
    ``data``)."""
    pipe = tiny_pipeline()
    if avs:  # an optional component: listed in model_index.json, saved to avs/
        torch.manual_seed(1)
        pipe.set_avs(AVSModel(**AVS_TINY, av_config=CFG.to_dict()).eval())
    pipe.save_pretrained(root)
    if index:
        mc3_dir = root / "retriever" / "mc3"
        mc3 = MC3Model.from_pretrained(mc3_dir).eval()
        build_index(data, "train", root / "retriever" / "index", mc3, model_id(mc3_dir), CFG)
    return root


def write_data(root: Path, videos: int = 4, clips_per_video: int = 2, seed: int = 3) -> Path:
    """A small FoleyWorld folder (Ego4D-Sounds format: ``train.tsv`` + clips) to index."""
    from foley.data.foleyworld.generate import generate_dataset
    from foley.data.foleyworld.scene import FoleyWorldSettings

    settings = FoleyWorldSettings(videos=videos, clips_per_video=clips_per_video, seed=seed)
    generate_dataset(root, settings, progress=False)
    return root


def write_clip(path: Path, seconds: float = 2.0, fps: float = 10.0, size: int = 64) -> Path:
    """A silent clip: a bright square that moves and flashes over a dark noisy background."""
    n = int(round(seconds * fps))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 50, (n, size, size, 3), dtype=np.uint8)
    for t in range(n):
        x = (t * 4) % (size - 16)
        frames[t, 20:36, x : x + 16] = (230, 180, 60) if t % 5 else (255, 255, 255)
    return write_video(path, frames, fps)


def make_world(root: Path) -> dict:
    """Data, a saved model folder and a 2 s input clip under ``root``."""
    data = write_data(root / "data")
    return {
        "root": root,
        "data": data,
        "model": write_model_dir(root / "model", data),
        "clip": write_clip(root / "hands.mp4", seconds=2.0),
    }
