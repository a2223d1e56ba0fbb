"""``foley train denoiser --init-from``: fine-tuning a saved pipeline on prepared data, with
early stopping on the val denoising loss, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from foley.cli.main import main
from tests.media import prepared_footage
from tests.tiny import tiny_pipeline

WEIGHTS = "denoiser/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetune")
    data = prepared_footage(root)
    from foley.pipelines.foley_pipeline import FoleyPipeline
    from foley.pipelines.solvers import flow_scheduler

    tiny = tiny_pipeline()  # saved as a shipped model is: a few-step solver and its defaults
    FoleyPipeline.from_pipe(
        tiny, scheduler=flow_scheduler(tiny.scheduler, "dpm", 1.5), default_steps=3,
        default_guidance={"action_focused": 4.5}, sync_shaping_default=0.0,
    ).save_pretrained(root / "init")  # fmt: skip
    return {"root": root, "data": data, "init": root / "init"}


def _train(setup, out: Path, *extra: str) -> int:
    argv = ["train", "denoiser", str(setup["data"]), "-o", str(out), "--init-from",
            str(setup["init"]), "--batch-size", "2", "--workers", "0", "--val-num", "0",
            "--save-every", "2", "--cpu", *extra]  # fmt: skip
    return main(argv)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_harmful_fine_tune_stops_early_and_keeps_the_start(setup, capsys):
    out = setup["root"] / "harmful"
    # a huge learning rate makes every step worse on val: the export stays the starting model
    code = _train(setup, out, "--steps", "20", "--val-every", "2", "--patience", "2",
                  "--lr", "5.0", "--ema-decay", "0.0")  # fmt: skip
    assert code == 0
    vals = [m for m in _metrics(out) if "val_loss" in m]
    assert vals[0]["step"] == 0 and len(vals) == 3  # start, then 2 validations without gain
    assert all(v["val_loss"] > vals[0]["val_loss"] for v in vals[1:])
    start = load_file(setup["init"] / WEIGHTS)
    exported = load_file(out / "model" / WEIGHTS)
    assert all(torch.equal(start[k], exported[k]) for k in start)
    assert "early stop at step 4" in capsys.readouterr().out
    # a rerun of a stopped fine-tune does not train on
    assert _train(setup, out, "--steps", "20", "--val-every", "2", "--patience", "2",
                  "--lr", "5.0", "--ema-decay", "0.0") == 0  # fmt: skip
    assert "stopped early at step 4" in capsys.readouterr().out
    assert max(m["step"] for m in _metrics(out)) == 4


def test_fine_tune_resumes_and_exports_improvements(setup, capsys):
    out = setup["root"] / "resume"
    args = ("--val-every", "2", "--patience", "50", "--lr", "0.003", "--ema-decay", "0.0")
    assert _train(setup, out, "--steps", "2", *args) == 0
    assert (out / "features" / "features.json").is_file()
    assert _train(setup, out, "--steps", "4", *args) == 0
    assert "resumed from" in capsys.readouterr().out
    steps = [m["step"] for m in _metrics(out) if "val_loss" in m]
    assert steps == [0, 2, 4]  # the second run went on from step 2, no second baseline
    state = json.loads(max((out / "ckpt").glob("*/trainer_state.json")).read_text())
    assert state["step"] == 4 and "best_val" in state
    best = min(m["val_loss"] for m in _metrics(out) if "val_loss" in m)
    assert state["best_val"] == pytest.approx(best)


def test_the_export_samples_as_the_model_it_started_from(setup):
    """A fine-tune keeps the init's sampler (class, time shift) and its saved defaults (steps,
    per-mode guidance, shaping), not a fresh 25-step Euler sampler."""
    out = setup["root"] / "kept"
    assert _train(setup, out, "--steps", "2", "--val-every", "2", "--lr", "0.003") == 0
    init, exported = setup["init"], out / "model"
    for name in ("scheduler/scheduler_config.json",):
        a, b = (json.loads((d / name).read_text()) for d in (init, exported))
        assert b["_class_name"] == a["_class_name"] == "DPMSolverMultistepScheduler"
        assert b["flow_shift"] == a["flow_shift"] == 1.5
    config = json.loads((exported / "model_index.json").read_text())
    assert config["default_steps"] == 3
    assert config["default_guidance"] == {"action_focused": 4.5}
    assert config["sync_shaping_default"] == 0.0
