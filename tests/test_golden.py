"""Golden output of the shipped model: for a fixed seed its output is bit-identical.

The architecture step (issue 18) moves code without changing behaviour; this test pins the
shipped model's audio, retrieved clip and AVS masks for fixed inputs to the SHA-256 of their
float32 bytes, recorded before the refactor in ``tests/golden/default_model.json``. Refresh
that file only for an intended change of output, and say why in the commit:
``PYTHONPATH=. python -m tests.test_golden --write``.
Run with one torch thread (the fixture sets it): float sums are summed in a fixed order then.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from foley.defaults import DEFAULT_MODEL_DIR

GOLDEN = Path(__file__).parent / "golden" / "default_model.json"
STEPS = 4  # sampler steps: enough to run every part of the sampler, fast on a CPU

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model_index.json").is_file(),
    reason="the default model is not installed",
)


def golden_video(num_frames: int = 40, size: int = 112) -> np.ndarray:
    """uint8 (T, S, S, 3): a bright square moving across a textured background, fixed seed."""
    rng = np.random.default_rng(1234)
    base = rng.integers(30, 90, size=(size, size, 3), dtype=np.uint8)
    frames = np.repeat(base[None], num_frames, axis=0)
    for t in range(num_frames):
        x = 8 + (t * 2) % (size - 32)
        frames[t, 40:64, x : x + 24] = (220, 180, 40)
    return frames


def _digest(array) -> str:
    a = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    return hashlib.sha256(a.tobytes()).hexdigest()


def golden_outputs(pipe) -> dict:
    """Every output the golden file pins, computed with ``pipe`` (the shipped model)."""
    frames = golden_video()
    out: dict = {}
    for mode in ("ambient_joint", "action_focused"):
        res = pipe(
            frames,
            mode=mode,
            num_inference_steps=STEPS,
            generator=torch.Generator().manual_seed(7),
            return_masks=mode == "ambient_joint",
            mask_shuffles=4,
        )
        out[mode] = {
            "audio": _digest(res.audios[0]),
            "num_samples": int(res.audios[0].shape[0]),
            "condition_id": res.condition_ids[0],
            "condition_audio": _digest(res.condition_audios[0]),
            "condition_score": round(float(res.condition_scores[0]), 6),
        }
        if res.masks is not None:
            out[mode]["masks"] = _digest(res.masks[0])
            out[mode]["alignment_score"] = round(float(res.alignment_scores[0]), 6)
    res = pipe(
        frames,
        mode="no_condition",
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
    )
    out["no_condition_latents"] = _digest(res.latents[0])
    return out


def _load_shipped():
    from foley.pipelines.foley_pipeline import FoleyPipeline

    pipe = FoleyPipeline.from_pretrained(DEFAULT_MODEL_DIR)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_shipped_model_output_is_bit_identical(one_thread):
    expected = json.loads(GOLDEN.read_text())
    assert golden_outputs(_load_shipped()) == expected


if __name__ == "__main__" and "--write" in sys.argv:
    torch.set_num_threads(1)
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(golden_outputs(_load_shipped()), indent=2) + "\n")
    print(f"wrote {GOLDEN}")
