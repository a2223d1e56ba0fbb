"""Foley: open video-to-audio.

Component classes are exported here because diffusers records a pipeline component as
(top-level package, class name) and imports it from this package on load. Imports are lazy so
that ``import foley`` stays cheap (no torch until a model is asked for).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AVConfig": "foley.config",
    "DEFAULT_CONFIG": "foley.config",
    "FoleyError": "foley.errors",
    "InputError": "foley.errors",
    "ModelMismatchError": "foley.errors",
    "FoleyCodec": "foley.models.codec",
    "VideoEncoder": "foley.models.video_encoder",
    "FoleyDenoiser": "foley.models.denoiser",
    "MC3Model": "foley.models.mc3",
    "AVSModel": "foley.models.avs",
    "SyncModel": "foley.models.sync",
    "PretrainedVideoEncoder": "foley.models.pretrained_video",
    "DenseAVModel": "foley.models.denseav",
    "FoleyPipeline": "foley.pipelines.foley_pipeline",
    "ClipRetriever": "foley.retrieval",
    "load_pipeline": "foley.pipelines.loading",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'foley' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
