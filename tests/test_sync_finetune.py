"""``foley train sync --init-from``: start from a saved SyncModel, early stopping on val F1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from foley.cli.main import main
from foley.models.sync import SyncModel
from tests.media import prepared_footage
from tests.tiny import TINY_CONFIG, tiny_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    from training.finetune import finetune_features

    root = tmp_path_factory.mktemp("sync_ft")
    data = prepared_footage(root, videos=3, val_fraction=0.34)
    tiny_pipeline().save_pretrained(root / "pipe")
    feats = finetune_features(root / "pipe", data, root / "features")
    torch.manual_seed(5)
    init = SyncModel(dim=16, channels=(8, 16), input_size=None, head_dim=16,
                     latents_per_frame=TINY_CONFIG.latents_per_frame)  # fmt: skip
    init.save_pretrained(root / "init")
    return {"root": root, "features": feats, "init": root / "init"}


def _train(setup, out: Path, *extra: str) -> int:
    argv = ["train", "sync", str(setup["features"]), "-o", str(out), "--init-from",
            str(setup["init"]), "--batch-size", "2", "--val-every", "1", "--no-write-features",
            "--cpu", *extra]  # fmt: skip
    return main(argv)


def _same_weights(a: SyncModel, b: SyncModel) -> bool:
    ref = b.state_dict()
    return all(torch.equal(v, ref[k]) for k, v in a.state_dict().items())


def test_init_from_starts_from_the_given_sync_model(setup):
    out = setup["root"] / "zero_lr"
    assert _train(setup, out, "--steps", "1", "--lr", "0", "--dim", "64") == 0
    init = SyncModel.from_pretrained(setup["init"])
    tuned = SyncModel.from_pretrained(out / "model")
    assert tuned.config.dim == 16  # the saved model's config wins over --dim
    assert _same_weights(tuned, init)
    assert _train(setup, setup["root"] / "bad", "--init-from", str(setup["features"])) == 1


def test_early_stopping_stops_a_harmful_sync_fine_tune(setup):
    out = setup["root"] / "harmful"
    assert _train(setup, out, "--steps", "10", "--lr", "10", "--patience", "2") == 0
    state = json.loads((sorted((out / "ckpt").iterdir())[-1] / "trainer_state.json").read_text())
    assert state["stopped_early"] < 10 and state["bad_vals"] == 2
    best = SyncModel.from_pretrained(out / "model")
    if state["best_step"] == 0:  # nothing beat the start: the start is what was kept
        assert _same_weights(best, SyncModel.from_pretrained(setup["init"]))
