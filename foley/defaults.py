"""Defaults every entry point shares: the shipped model, the device, the offline settings.

Each is defined here once; the CLI, the app, eval and benchmarks import them.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default"
"""The default weights shipped inside the package (a FoleyPipeline folder)."""

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def set_offline_env() -> None:
    """Nothing is ever downloaded at run time (no hub, no telemetry); explicit settings win."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def default_device(name: str | None = None) -> str:
    """``name`` if given, else ``cuda`` when a GPU is visible, else ``cpu``.

    A device that does not exist here (``cuda`` without a GPU, a typo) is a one-line
    :class:`~foley.errors.InputError`.
    """
    import torch

    from foley.errors import InputError

    if not name:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(name).type
    except (RuntimeError, ValueError):
        raise InputError(
            f"--device {name}: not a device name (cpu, cuda, cuda:0, mps...)"
        ) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {name}: MPS is not available here; use --device cpu")
    return name


def model_dir_or_default(path: str | os.PathLike | None) -> Path:
    """The folder a ``--model`` option names, or the shipped default model."""
    return Path(path) if path else DEFAULT_MODEL_DIR


def mc3_dir_or_default(path: str | os.PathLike | None) -> Path:
    """An MC3 folder: ``path`` itself, or when it is a pipeline folder (default: the shipped
    model) its retriever's ``retriever/mc3`` (``mc3/`` in folders saved before the retriever
    was a component)."""
    p = model_dir_or_default(path)
    if (p / "model_index.json").is_file():
        for sub in (p / "retriever" / "mc3", p / "mc3"):
            if sub.is_dir():
                return sub
    return p


SOUND_BANK_ENV = "FOLEY_SOUND_BANK"
USER_SOUND_BANK = Path.home() / ".cache" / "foley" / "bank"


def default_sound_bank() -> Path | None:
    """The sound bank used when none is named: ``$FOLEY_SOUND_BANK``, else
    ``~/.cache/foley/bank``, if it holds a built bank (``manifest.jsonl``); else None.

    Not shipped (it holds GPL recordings and is 100s of MB): each user builds it once with
    ``foley sound-bank fetch --out ~/.cache/foley/bank``. A set variable that names no bank
    is an :class:`~foley.errors.InputError` rather than a silent fall back to synthesis."""
    from foley.errors import InputError

    named = os.environ.get(SOUND_BANK_ENV)
    if named:
        if not (Path(named) / "manifest.jsonl").is_file():
            raise InputError(f"${SOUND_BANK_ENV}={named}: not a built sound bank (no manifest)")
        return Path(named)
    return USER_SOUND_BANK if (USER_SOUND_BANK / "manifest.jsonl").is_file() else None
