"""The default model shipped inside the package: it loads, and it makes (synchronised) sound.

Clips come from a FoleyWorld seed that no training set used. The sync requirement (issue 7): the
model's onset F1 clearly above the floors (silence, another clip's audio) measured in the same
run, in both modes. Measured with the shipped model (session 7: trained on real-sound FoleyWorld,
shipped with sync shaping off and 8 DPM-Solver steps) on these fresh procedural clips (30, seed
4242): onset F1 0.550 ambient-joint and 0.568 action-focused as shipped (the denoiser alone),
0.523 and 0.494 with shaping on, against 0.185 for silence and 0.130 for a random clip. The
margins asked for are well under half of those measured: 0.15 over the best floor as shipped,
0.10 for the denoiser alone (the same rows when shaping is off by default). (A denoiser on MC3
video features once scored 0.148 without shaping on these clips, under the silence floor: the
second check fails for a denoiser that does not place contacts itself.) Slow (a few minutes):
run it with ``pytest -m slow tests/test_default_model.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.cli.main import main as foley_main
from foley.evaluation import evaluate
from foley.pipelines.foley_pipeline import DEFAULT_MODEL_DIR, FoleyPipeline

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model_index.json").is_file(),
    reason="the default model is not installed (foley train all --ship)",
)

# the margins a model must clear above the best floor: about half the shipped model's measured
MIN_F1_OVER_FLOOR = 0.15  # the pipeline as shipped (its default sync shaping)
MIN_F1_OVER_FLOOR_DENOISER = 0.10  # the denoiser alone (shaping off)


@pytest.fixture(scope="module")
def fresh_clips(tmp_path_factory):
    out = tmp_path_factory.mktemp("fresh") / "fw"
    code = foley_main(
        ["make-dataset", "--out", str(out), "--videos", "10", "--clips-per-video", "3",
         "--seed", "4242", "--val-fraction", "0", "--test-fraction", "1.0", "--quiet"]
    )  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def default_pipeline():
    torch.manual_seed(0)
    return FoleyPipeline.from_pretrained()


def test_default_model_loads_with_every_component(default_pipeline):
    pipe = default_pipeline
    assert pipe.mc3 is not None and pipe.index is not None and len(pipe.index) > 50
    assert (DEFAULT_MODEL_DIR / "avs" / "config.json").is_file()
    assert (DEFAULT_MODEL_DIR / "MODEL_CARD.md").is_file()
    size_mb = sum(f.stat().st_size for f in DEFAULT_MODEL_DIR.rglob("*") if f.is_file()) / 2**20
    assert size_mb < 40


def _sync_rows(pipe, clips, sync_shaping=None) -> dict:
    report = evaluate(
        clips,
        "test",
        pipe,
        n=30,
        modes=("ambient_joint", "action_focused"),
        progress=False,  # the model's own default steps
        sync_shaping=sync_shaping,
    )
    return report.rows


def _in_sync(rows: dict, margin: float) -> list[bool]:
    floor = max(rows["silence"]["onset_f1"], rows["random_clip"]["onset_f1"])
    return [
        rows[mode]["onset_f1"] > floor + margin
        for mode in ("model_ambient_joint", "model_action_focused")
    ]


@pytest.mark.slow
def test_default_model_is_in_sync_in_both_modes(default_pipeline, fresh_clips):
    rows = _sync_rows(default_pipeline, fresh_clips)
    assert all(_in_sync(rows, MIN_F1_OVER_FLOOR)), {k: v["onset_f1"] for k, v in rows.items()}
    # action-focused keeps less of the scene's ambience than ambient-joint
    assert rows["model_action_focused"]["ambient_db"] <= rows["model_ambient_joint"]["ambient_db"]
    # the denoiser alone (shaping off) places the contacts too
    alone = _sync_rows(default_pipeline, fresh_clips, sync_shaping=0)
    assert all(_in_sync(alone, MIN_F1_OVER_FLOOR_DENOISER)), {
        k: v["onset_f1"] for k, v in alone.items()
    }


def test_generate_example_writes_a_video_with_sound(tmp_path):
    from foley import io

    out = tmp_path / "example.mp4"
    assert foley_main(["generate", "--example", "-o", str(out), "--steps", "8", "--quiet"]) == 0
    video = io.load_video(out)
    assert video.audio is not None
    assert abs(len(video.audio) / 16_000 - video.duration) < 0.1
    assert np.abs(video.audio).max() > 0.01
