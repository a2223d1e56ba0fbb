"""foley.load_pipeline: one loader for the CLI, the app, eval and benchmarks; ClipRetriever
save/load round trip; one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import foley
from foley.errors import InputError
from tests.app_fixtures import CFG, write_data, write_model_dir

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    return write_model_dir(root / "model", write_data(root / "data"))


def test_load_pipeline_brings_every_component_and_the_retriever(model_dir, tmp_path):
    pipe = foley.load_pipeline(model_dir, "cpu", quiet=True)
    assert pipe.avs is not None and pipe.mc3 is not None and len(pipe.index) > 0
    assert pipe.device.type == "cpu"
    frames = torch.rand(1, CFG.frames_per_clip, 3, CFG.frame_size, CFG.frame_size)
    found = pipe.retriever.retrieve(list(frames), "ambient_joint", cfg=CFG)[0]
    assert found.audio is not None and found.audio.ndim == 1 and found.metadata["video_uid"]
    # the retriever saves and loads on its own: same MC3, same index, same answer
    pipe.retriever.save_pretrained(tmp_path / "r")
    again = foley.ClipRetriever.from_pretrained(tmp_path / "r")
    hit = again.retrieve(list(frames), "ambient_joint", cfg=CFG)[0]
    assert (hit.id, hit.score) == (found.id, pytest.approx(found.score, abs=1e-6))
    assert np.array_equal(hit.audio, found.audio)


def test_load_pipeline_errors_are_one_line(model_dir, tmp_path):
    cases = [
        ({"path": tmp_path / "nothing"}, "not a saved Foley pipeline"),
        ({"path": model_dir, "index": tmp_path / "no-index"}, "no such index folder"),
        ({"path": model_dir, "avs": tmp_path / "no-avs"}, "no such AVS model folder"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message) as err:
            foley.load_pipeline(**kwargs, device="cpu")
        assert "\n" not in str(err.value)
