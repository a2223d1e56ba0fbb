"""``foley.load_pipeline``: the one way the CLI, the app, eval and benchmarks load a model.

The default model folder, the device and the offline settings come from :mod:`foley.defaults`;
every failure is a one-line :class:`~foley.errors.InputError`.
"""

from __future__ import annotations

import os
from pathlib import Path

from foley.defaults import DEFAULT_MODEL_DIR, default_device, set_offline_env
from foley.errors import FoleyError, InputError


def load_avs(path: str | os.PathLike, device: str | None = None):
    """The AVSModel saved in ``path`` (eval mode, on ``device``)."""
    from foley.models.avs import AVSModel

    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise InputError(f"{p}: not a saved AVS model (no config.json)")
    config = AVSModel.load_config(str(p))
    if config.get("_class_name") not in (None, "AVSModel"):
        raise InputError(f"{p}: holds a {config['_class_name']}, not an AVSModel")
    return AVSModel.from_pretrained(str(p)).to(default_device(device)).eval()


def load_pipeline(
    path: str | os.PathLike | None = None,
    device: str | None = None,
    *,
    index: str | os.PathLike | None = None,
    avs: str | os.PathLike | None = None,
    quiet: bool = False,
):
    """The :class:`~foley.pipelines.foley_pipeline.FoleyPipeline` saved in ``path`` (default:
    the model shipped in the package), on ``device`` (default: cuda when there is one).

    index: a retrieval index folder instead of ``path/index``; avs: an AVS model folder instead
    of ``path/avs``; quiet: no loading progress bar. Nothing is downloaded.
    """
    from diffusers.utils import logging as diffusers_logging

    from foley.pipelines.foley_pipeline import FoleyPipeline

    set_offline_env()
    root = Path(path).expanduser() if path else DEFAULT_MODEL_DIR
    if not (root / "model_index.json").is_file():
        if path is None:
            raise InputError(
                f"the default model is not installed ({DEFAULT_MODEL_DIR}): pass --model DIR "
                "(a folder written by `foley train denoiser` or `foley train all`)"
            )
        raise InputError(f"{root}: not a saved Foley pipeline (no model_index.json)")
    if index is not None and not Path(index).is_dir():
        raise InputError(f"{index}: no such index folder")
    if avs is not None and not Path(avs).expanduser().is_dir():
        raise InputError(f"{avs}: no such AVS model folder")
    if quiet:
        diffusers_logging.disable_progress_bar()
    try:
        pipe = FoleyPipeline.from_pretrained(str(root), index=index)
    except (OSError, ValueError) as err:
        if isinstance(err, FoleyError):
            raise
        raise InputError(f"{root}: cannot load the pipeline ({str(err).splitlines()[0]})") from None
    finally:
        if quiet:
            diffusers_logging.enable_progress_bar()
    if avs is not None:
        pipe.set_avs(load_avs(avs))
    return pipe.to(default_device(device))
