"""``foley index build | add | query | info`` on a tiny FoleyWorld set with a tiny untrained MC3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from foley.cli.main import main
from foley.data.ego4d import read_metadata
from foley.data.foleyworld.generate import generate_dataset
from foley.data.foleyworld.scene import FoleyWorldSettings
from foley.io import load_audio
from foley.metrics.audio import ambient_level_db
from foley.models.mc3 import MC3Model
from foley.models.mc3_embed import model_id
from retrieval_index import ClipIndex
from tests.tiny import MC3_TINY

TINY = dict(MC3_TINY, video_frame_stride=4)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("index_cli")
    data = root / "data"
    generate_dataset(data, FoleyWorldSettings(videos=5, clips_per_video=2, seed=3), progress=False)
    paths = {"root": root, "data": data}
    for name, seed in (("model", 0), ("other_model", 1)):
        torch.manual_seed(seed)
        MC3Model(**TINY).save_pretrained(root / name)
        paths[name] = root / name
    return paths


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _build(capsys, world, out: Path) -> None:
    rc, _, err = _run(
        capsys, "index", "build", "--data", world["data"], "--out", out,
        "--model", world["model"], "--batch-size", "4", "--quiet",
    )  # fmt: skip
    assert rc == 0, err


def test_build_info_query(world, tmp_path, capsys) -> None:
    index_dir = tmp_path / "idx"
    _build(capsys, world, index_dir)
    train = read_metadata(world["data"] / "train.tsv")

    rc, out, _ = _run(capsys, "index", "info", "--index", index_dir, "--json")
    info = json.loads(out)
    assert rc == 0
    assert info["count"] == len(train)
    assert info["dim"] == 16
    assert info["model_id"] == model_id(world["model"])

    record = train[0]
    clip = record.clip_path(world["data"])
    rc, out, _ = _run(
        capsys, "index", "query", "--index", index_dir, "--video", clip, "-k", "3",
        "--model", world["model"], "--json",
    )  # fmt: skip
    hits = json.loads(out)
    assert rc == 0 and len(hits) == 3
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    by_id = {r.clip_id: r for r in train}
    for hit in hits:
        assert by_id[hit["id"]].clip_text == hit["narration"]
        assert Path(hit["clip_path"]).is_file() and hit["split"] == "train"
    # the stored ambient level is the clip's own: quietest 0.5 s window of its audio, in dBFS
    stored = ClipIndex.open(index_dir).get(record.clip_id)["ambient_db"]
    assert stored == pytest.approx(ambient_level_db(load_audio(clip)), abs=0.5)

    # ambient filter: only clips at most that level (action-focused retrieval)
    levels = sorted(ClipIndex.open(index_dir).get(r.clip_id)["ambient_db"] for r in train)
    cut = levels[len(levels) // 2]
    rc, out, _ = _run(
        capsys, "index", "query", "--index", index_dir, "--video", clip, "-k", "50",
        "--model", world["model"], "--ambient-max", cut, "--json",
    )  # fmt: skip
    hits = json.loads(out)
    assert rc == 0 and 0 < len(hits) < len(train)
    assert all(h["ambient_db"] <= cut for h in hits)

    # the table output names the clips
    rc, out, _ = _run(
        capsys, "index", "query", "--index", index_dir, "--video", clip, "--model", world["model"]
    )
    assert rc == 0 and "narration" in out.splitlines()[0] and record.video_uid[:8] in out


def test_add_a_split_and_refuse_duplicates(world, tmp_path, capsys) -> None:
    index_dir = tmp_path / "idx"
    _build(capsys, world, index_dir)
    before = len(ClipIndex.open(index_dir))
    val = read_metadata(world["data"] / "val.tsv")
    args = ("index", "add", "--index", index_dir, "--data", world["data"], "--split", "val")
    rc, out, err = _run(capsys, *args, "--model", world["model"], "--quiet")
    assert rc == 0, err
    index = ClipIndex.open(index_dir)
    assert len(index) == before + len(val)
    assert index.get(val[0].clip_id)["split"] == "val"
    rc, _, err = _run(capsys, *args, "--model", world["model"], "--quiet")
    assert rc == 1 and "already" in err and len(err.strip().splitlines()) == 1


def test_other_model_is_refused(world, tmp_path, capsys) -> None:
    index_dir = tmp_path / "idx"
    _build(capsys, world, index_dir)
    clip = read_metadata(world["data"] / "train.tsv")[0].clip_path(world["data"])
    rc, _, err = _run(
        capsys, "index", "query", "--index", index_dir, "--video", clip,
        "--model", world["other_model"],
    )  # fmt: skip
    assert rc == 1 and "built with model" in err
    rc, _, err = _run(
        capsys, "index", "add", "--index", index_dir, "--data", world["data"], "--split", "val",
        "--model", world["other_model"], "--quiet",
    )  # fmt: skip
    assert rc == 1 and "model" in err


def _broken_copy(world, dest: Path, how_many: int) -> list[Path]:
    """A copy of the data whose last ``how_many`` train clips are truncated to 300 bytes."""
    shutil.copytree(world["data"], dest)
    paths = [r.clip_path(dest) for r in read_metadata(dest / "train.tsv")[-how_many:]]
    for path in paths:
        path.write_bytes(path.read_bytes()[:300])
    return paths


def test_a_corrupt_clip_is_skipped_and_the_rest_indexed(world, tmp_path, capsys) -> None:
    (bad,) = _broken_copy(world, tmp_path / "broken", 1)
    train = read_metadata(world["data"] / "train.tsv")
    index_dir = tmp_path / "idx"
    rc, out, err = _run(
        capsys, "index", "build", "--data", tmp_path / "broken", "--out", index_dir,
        "--model", world["model"], "--batch-size", "2", "--quiet",
    )  # fmt: skip
    assert rc == 0, err
    index = ClipIndex.open(index_dir)
    assert len(index) == len(train) - 1
    assert train[-1].clip_id not in {h.id for h in index.search(np.ones((1, 16)), k=99)[0]}
    lines = err.strip().splitlines()
    assert [ln for ln in lines if "skipped " + bad.name + ":" in ln], err  # one line, its name
    assert str(tmp_path) not in err  # the file name only, not the path
    assert f"indexed {len(train) - 1} clips, skipped 1: {bad.name}" in err
    assert "Traceback" not in err and f"indexed {len(train) - 1} clips" in out
    # add goes on past the corrupt clip too (a split with one: val of a broken copy)
    val = read_metadata(world["data"] / "val.tsv")
    broken_val = val[0].clip_path(tmp_path / "broken")
    broken_val.write_bytes(broken_val.read_bytes()[:300])
    rc, out, err = _run(
        capsys, "index", "add", "--index", index_dir, "--data", tmp_path / "broken",
        "--split", "val", "--model", world["model"], "--batch-size", "2", "--quiet",
    )  # fmt: skip
    assert rc == 0, err
    assert f"added {len(val) - 1} clips" in out and broken_val.name in err
    assert len(ClipIndex.open(index_dir)) == len(train) - 1 + len(val) - 1


def test_an_all_corrupt_split_leaves_the_previous_index(world, tmp_path, capsys) -> None:
    index_dir = tmp_path / "idx"
    _build(capsys, world, index_dir)
    first = ClipIndex.open(index_dir)
    version, count = first.version, len(first)
    train = read_metadata(world["data"] / "train.tsv")
    broken = tmp_path / "broken"
    _broken_copy(world, broken, len(train))
    rc, _, err = _run(
        capsys, "index", "build", "--data", broken, "--out", index_dir,
        "--model", world["model"], "--batch-size", "2", "--quiet",
    )  # fmt: skip
    assert rc == 1 and "Traceback" not in err
    assert f"none of its {len(train)} clips could be read" in err
    assert len([ln for ln in err.splitlines() if "error" in ln.lower()]) == 1
    after = ClipIndex.open(index_dir)
    assert (after.version, len(after)) == (version, count)
    # the reader opened before the failed build still answers
    assert len(first.search(np.ones((1, 16), np.float32), k=2)[0]) == 2
    # add of an all-corrupt split changes nothing either
    rc, _, err = _run(
        capsys, "index", "add", "--index", index_dir, "--data", broken, "--split", "train",
        "--model", world["model"], "--quiet",
    )  # fmt: skip
    assert rc == 1 and "could be read" in err
    assert (ClipIndex.open(index_dir).version, len(ClipIndex.open(index_dir))) == (version, count)
    # and a good rebuild switches to a new version
    _build(capsys, world, index_dir)
    assert ClipIndex.open(index_dir).version != version


def test_user_errors_are_one_line(world, tmp_path, capsys) -> None:
    rc, _, err = _run(capsys, "index", "info", "--index", tmp_path / "none")
    assert rc == 1 and "no retrieval index" in err
    rc, _, err = _run(
        capsys, "index", "build", "--data", world["data"], "--out", tmp_path / "i",
        "--model", tmp_path,
    )  # fmt: skip
    assert rc == 1 and "not a saved MC3 model" in err
    assert len(err.strip().splitlines()) == 1
