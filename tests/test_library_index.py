"""A ``foley prepare`` folder as the retrieval index: audio-only entries, text queries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from foley.cli.main import main
from foley.data.prepare import prepare_folder
from foley.io import write_video
from foley.models.mc3 import MC3Model
from foley.retrieval import ClipRetriever, open_index
from tests.media import counter_frames
from tests.tiny import MC3_TINY


def _tone(seconds: float, freq: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("library")
    src = root / "src"
    src.mkdir()
    for i in range(2):
        write_video(src / f"take {i}.mp4", counter_frames(16 * 6, 64, 64), 16.0,
                    _tone(6.0, 200 + 100 * i), 16_000)  # fmt: skip
    for i, name in enumerate(("door slam", "footsteps gravel", "glass break", "rain")):
        sf.write(src / f"{name}.wav", _tone(1.0 + i, 300 + 150 * i), 16_000)
    data = root / "data"
    prepare_folder(src, data, val_fraction=0.0, test_fraction=0.0, progress=False, log=print)
    torch.manual_seed(0)
    MC3Model(**dict(MC3_TINY, video_frame_stride=4)).save_pretrained(root / "mc3")
    return {"root": root, "data": data, "mc3": root / "mc3"}


@pytest.fixture(scope="module")
def index(library) -> Path:
    out = library["root"] / "index"
    code = main(["index", "build", "--data", str(library["data"]), "--out", str(out),
                 "--model", str(library["mc3"]), "--quiet"])  # fmt: skip
    assert code == 0
    return out


def test_build_holds_videos_and_sounds(library, index):
    idx = open_index(index)
    assert len(idx) == 2 * 2 + 4  # two 6 s videos (2 clips each) + four sounds
    hits = idx.search(np.ones((1, idx.dim), np.float32), k=len(idx))[0]
    audio_only = [h for h in hits if h.metadata.get("audio_only")]
    assert len(audio_only) == 4
    assert {h.metadata["narration"] for h in audio_only} == {
        "door slam", "footsteps gravel", "glass break", "rain"
    }  # fmt: skip
    assert all(h.metadata["split"] == "train" for h in hits)
    assert all(Path(h.metadata["clip_path"]).is_file() for h in hits)


def test_text_query_ranks_by_text_to_audio_similarity(library, index):
    mc3 = MC3Model.from_pretrained(library["mc3"]).eval()
    retriever = ClipRetriever(mc3, open_index(index))
    text = "footsteps on gravel"
    hits = retriever.retrieve_text([text], k=8, with_audio=True)[0]
    with torch.no_grad():
        q = mc3.encode_text([text]).numpy()[0]
    expected = sorted(((float(retriever.index.vector(h.id) @ q), h.id) for h in hits), reverse=True)
    assert [h.id for h in hits] == [i for _, i in expected]
    assert np.allclose([h.score for h in hits], [s for s, _ in expected], atol=1e-4)
    assert all(h.audio is not None and h.audio.size > 0 for h in hits)
    only = retriever.retrieve_text([text], k=3, where={"exclude_video_uid": hits[0].metadata[
        "video_uid"]})[0]  # fmt: skip
    assert hits[0].id not in {h.id for h in only} and len(only) == 3


def test_cli_text_and_video_queries(library, index, capsys):
    code = main(["index", "query", "--index", str(index), "--model", str(library["mc3"]),
                 "--text", "a door slams", "-k", "5", "--json"])  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and rows[0]["score"] >= rows[-1]["score"]
    video = next(library["data"].glob("*/*.mp4"))
    code = main(["index", "query", "--index", str(index), "--model", str(library["mc3"]),
                 "--video", str(video), "-k", "8", "--json"])  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(bool(r.get("audio_only")) for r in rows) == 4  # video queries find the sounds
    assert main(["index", "query", "--index", str(index), "--model", str(library["mc3"]),
                 "--text", "  "]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "non-empty text" in err and len(err.splitlines()) == 1


def test_add_appends_videos_and_sounds_of_a_split(library, index, tmp_path, capsys):
    import shutil

    src = tmp_path / "more"
    src.mkdir()
    write_video(src / "take new.mp4", counter_frames(16 * 3, 64, 64), 16.0, _tone(3.0, 500),
                16_000)  # fmt: skip
    for i, name in enumerate(("bell", "drawer close")):
        sf.write(src / f"{name}.wav", _tone(1.5, 700 + 100 * i), 16_000)
    data = tmp_path / "data"
    prepare_folder(src, data, val_fraction=0.0, test_fraction=0.0, progress=False, log=print)
    target = tmp_path / "index"
    shutil.copytree(index, target)  # the module's index stays as the other tests see it
    before = len(open_index(target))
    code = main(["index", "add", "--index", str(target), "--data", str(data), "--split", "train",
                 "--model", str(library["mc3"]), "--quiet"])  # fmt: skip
    assert code == 0
    assert "added 3 clips" in capsys.readouterr().out
    idx = open_index(target)
    assert len(idx) == before + 3
    hits = idx.search(np.ones((1, idx.dim), np.float32), k=len(idx))[0]
    sounds = {h.metadata["narration"] for h in hits if h.metadata.get("audio_only")}
    assert sounds == {"door slam", "footsteps gravel", "glass break", "rain", "bell",
                      "drawer close"}  # fmt: skip
    assert all(Path(h.metadata["clip_path"]).is_file() for h in hits)


def test_a_truncated_sound_is_indexed_with_a_warning(library, tmp_path, capsys):
    """A library sound cut short after prepare: what decodes is indexed, and stderr says how
    much of it decoded (as a truncated video does)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(library["data"], data)
    rain = next(p for p in data.rglob("*.flac") if "rain" in p.parent.name)
    whole = rain.read_bytes()
    rain.write_bytes(whole[: len(whole) // 2])
    code = main(["index", "build", "--data", str(data), "--out", str(tmp_path / "index"),
                 "--model", str(library["mc3"]), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(open_index(tmp_path / "index")) == 2 * 2 + 4
    lines = [ln for ln in err.splitlines() if f"warning: {rain.name}: decoded" in ln]
    assert len(lines) == 1 and "looks truncated" in lines[0], err
