"""``foley train denseav``: trains on a tiny FoleyWorld set (no masks read), exports the model,
and a second run with more steps resumes from the checkpoint."""

from __future__ import annotations

import json

import pytest

from foley.cli.main import main as foley_main
from foley.models.denseav import DenseAVModel

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_export_and_resume(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    argv = ["make-dataset", "--videos", "3", "--clips-per-video", "2", "--out", str(data)]
    assert foley_main([*argv, "--quiet", "--val-fraction", "0.34"]) == 0
    for path in data.rglob("*.gt.npz"):  # the trainer must not need the ground truth
        path.unlink()
    train = ["train", "denseav", str(data), "-o", str(out), "--dim", "4", "--heads", "2"]
    train += ["--input-size", "32", "--batch-size", "2", "--frames-per-clip", "2"]
    assert foley_main([*train, "--steps", "2", "--val-every", "2"]) == 0
    model = DenseAVModel.from_pretrained(out / "model")
    assert model.config.heads == 2 and model.config.dim == 4
    # the stored inputs a step reads: one feature store per split (the CNN's raw frames here)
    assert (out / "cache" / "train-cnn-32" / "visual.npy").is_file()
    assert foley_main([*train, "--steps", "4", "--val-every", "2"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in rows if "loss" in r]
    assert logged == [2, 4]  # steps 3-4 continued from the step-2 checkpoint
    assert all("val_top1" in r for r in rows if "loss" not in r)
