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


def test_retriever_is_one_component_and_the_old_layout_still_loads(model_dir, tmp_path):
    import json
    import shutil

    listed = json.loads((model_dir / "model_index.json").read_text())
    assert listed["retriever"] == ["foley.retrieval", "ClipRetriever"] and "mc3" not in listed
    pipe = foley.load_pipeline(model_dir, "cpu", quiet=True)
    frames = torch.rand(1, CFG.frames_per_clip, 3, CFG.frame_size, CFG.frame_size)
    want = pipe.retriever.retrieve(list(frames), "ambient_joint", cfg=CFG)[0]
    # a folder saved before the retriever was a component: mc3/ and index/ at the top level,
    # model_index.json listing mc3
    old = tmp_path / "old"
    shutil.copytree(model_dir, old, ignore=shutil.ignore_patterns("retriever"))
    for part in ("mc3", "index"):
        shutil.copytree(model_dir / "retriever" / part, old / part)
    legacy = {k: v for k, v in listed.items() if k != "retriever"}
    legacy["mc3"] = ["foley.models.mc3", "MC3Model"]
    (old / "model_index.json").write_text(json.dumps(legacy))
    back = foley.load_pipeline(old, "cpu", quiet=True)
    got = back.retriever.retrieve(list(frames), "ambient_joint", cfg=CFG)[0]
    assert (got.id, got.metadata) == (want.id, want.metadata)
    assert got.score == pytest.approx(want.score, abs=1e-6)
    # saved again, it has the new layout
    back.save_pretrained(tmp_path / "new")
    assert "retriever" in json.loads((tmp_path / "new" / "model_index.json").read_text())
    assert (tmp_path / "new" / "retriever" / "index").is_dir()


def test_output_carries_the_retrieved_clip_and_its_metadata(model_dir):
    pipe = foley.load_pipeline(model_dir, "cpu", quiet=True)
    pipe.set_progress_bar_config(disable=True)
    frames = (np.random.default_rng(0).random((CFG.frames_per_clip, 32, 32, 3)) * 255).astype(
        np.uint8
    )
    out = pipe(frames, num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    found = out.retrieved[0]
    assert found.id == out.condition_ids[0] and found.score == out.condition_scores[0]
    assert found.metadata == pipe.index.get(found.id)  # what the app used to query again
    assert np.array_equal(found.audio, out.condition_audios[0])
    user = pipe(frames, num_inference_steps=1, condition_audio=found.audio)
    assert user.retrieved == [None] and user.condition_ids == ["user"]


def test_retrieve_by_audio_finds_the_clip_itself(model_dir):
    retriever = foley.load_pipeline(model_dir, "cpu", quiet=True).retriever
    ids = [h.id for h in retriever.index.search(np.ones(retriever.index.dim), k=3)[0]]
    for clip_id in ids:
        wave = retriever.clip_audio(retriever.index.get(clip_id), CFG.sample_rate)
        # the index embedded each clip's first CFG.clip_seconds (the dataset's fit)
        wave = wave[: CFG.samples_per_clip]
        hit = retriever.retrieve(audio=[wave], cfg=CFG, with_audio=False)[0]
        # the index holds MC3 audio embeddings: a clip's own audio is its nearest neighbour
        assert hit.id == clip_id and hit.score == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(InputError, match="exactly one"):
        retriever.retrieve(cfg=CFG)


def test_quiet_clip_check_counts_metadata(model_dir, monkeypatch):
    retriever = foley.load_pipeline(model_dir, "cpu", quiet=True).retriever
    levels = sorted(retriever.index.get(i)["ambient_db"] for i in _ids(retriever.index))
    assert retriever.index.count() == len(levels)
    assert retriever.index.count({"ambient_db_max": levels[1]}) == sum(
        v <= levels[1] for v in levels
    )
    assert retriever.has_quiet_clip(levels[0])
    # a FoleyWorld index: every clip has its action-only track, which action-focused can use
    # whatever the threshold; without the tracks, nothing is quieter than the quietest clip
    from foley.retrieval import ACTION_KEY

    assert retriever.index.count({"has": ACTION_KEY}) == len(levels)
    assert retriever.has_quiet_clip(levels[0] - 1.0)
    count = retriever.index.count
    monkeypatch.setattr(  # the same index as if it had no tracks
        retriever.index, "count", lambda where=None: 0 if where and "has" in where else count(where)
    )
    assert not retriever.has_quiet_clip(levels[0] - 1.0)


def _ids(index) -> list[str]:
    return [h.id for h in index.search(np.ones(index.dim), k=len(index))[0]]
