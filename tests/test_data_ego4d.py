"""The Ego4D-Sounds data layer: TSV schema, ground-truth files, ClipDataset and neighbours."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from foley.config import DEFAULT_CONFIG as CFG
from foley.data.ego4d import (
    EGO4D_COLUMNS,
    ClipDataset,
    ClipRecord,
    load_ground_truth,
    read_metadata,
    save_ground_truth,
    write_metadata,
)
from foley.data.foleyworld import FoleyWorldSettings, generate_dataset
from foley.errors import InputError
from foley.io import write_video


def _record(**kw) -> ClipRecord:
    values = dict(
        video_uid="f5c456b2-0000-4f42-82bd-786833fb3891",
        video_dur=-1.0,
        narration_source="narration_pass_2",
        narration_ind=5,
        narration_time=86.18969859999999,
        clip_start=85.68969859999999,
        clip_end=87.18969859999999,
        clip_text="#C C puts down a bottle on the counter",
        tag_verb="[]",
        tag_noun="[12, 3]",
        positive=1.0,
        clip_file="f5c456b2-0000-4f42-82bd-786833fb3891/x_narration_pass_2_5.mp4",
        speech=0.0349611118435859,
        background_music=0.0132576460018754,
        traffic_noise=0.0001104866896639,
        wind_noise=5.64170113648288e-05,
    )
    values.update(kw)
    return ClipRecord(**values)


def test_schema_round_trip(tmp_path):
    records = [
        _record(),
        _record(narration_ind=6, clip_text='#C C says "hi", then\\ttaps', clip_file="a.mp4"),
    ]
    path = write_metadata(tmp_path / "meta.tsv", records)
    header = path.read_text().splitlines()[0].split("\t")
    assert tuple(header) == EGO4D_COLUMNS and len(header) == 16
    assert read_metadata(path) == records
    # columns in another order plus an extra column still read
    rows = path.read_text().splitlines()
    swapped = ["\t".join(["extra"] + r.split("\t")[::-1]) for r in rows]
    (tmp_path / "other.csv").write_text("\n".join(swapped) + "\n")
    assert read_metadata(tmp_path / "other.csv") == records


def test_metadata_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="no such metadata file"):
        read_metadata(tmp_path / "missing.tsv")
    (tmp_path / "bad.tsv").write_text("video_uid\tclip_file\nabc\tx.mp4\n")
    with pytest.raises(InputError, match="missing columns .*video_dur"):
        read_metadata(tmp_path / "bad.tsv")
    row = _record().to_row() | {"narration_time": "soon"}
    (tmp_path / "nan.tsv").write_text(
        "\t".join(EGO4D_COLUMNS) + "\n" + "\t".join(row[c] for c in EGO4D_COLUMNS) + "\n"
    )
    with pytest.raises(InputError, match="line 2: column 'narration_time'") as err:
        read_metadata(tmp_path / "nan.tsv")
    assert "\n" not in str(err.value)


def test_clip_paths_for_both_layouts(tmp_path):
    nested = _record()
    assert nested.clip_path(tmp_path) == tmp_path / nested.clip_file
    flat = _record(clip_file="clip_7.mp4")
    assert flat.clip_path(tmp_path) == tmp_path / flat.video_uid / "clip_7.mp4"
    assert flat.gt_path(tmp_path) == tmp_path / flat.video_uid / "clip_7.gt.npz"
    assert nested.clip_id == f"{nested.video_uid}_narration_pass_2_5"


def test_ground_truth_round_trip_is_byte_stable(tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(
        action=rng.standard_normal(100).astype(np.float32),
        ambient=rng.standard_normal(100).astype(np.float32),
        masks=rng.random((4, 8, 8)) > 0.5,
        events=[
            {
                "onset": 0.5,
                "offset": 0.7,
                "verb": "knock",
                "material": "metal",
                "visible": True,
                "frames": [8, 12],
            }
        ],
        ambient_type="rain",
        ambient_db=-31.5,
    )
    a = save_ground_truth(tmp_path / "a.gt.npz", **arrays)
    b = save_ground_truth(tmp_path / "b.gt.npz", **arrays)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    gt = load_ground_truth(a)
    np.testing.assert_array_equal(gt["action"], arrays["action"])
    np.testing.assert_array_equal(gt["masks"], arrays["masks"])
    assert gt["events"] == arrays["events"]
    assert gt["ambient_type"] == "rain" and gt["ambient_db"] == -31.5


@pytest.fixture(scope="module")
def foleyworld(tmp_path_factory):
    root = tmp_path_factory.mktemp("fw")
    settings = FoleyWorldSettings(
        videos=2, clips_per_video=3, seed=4, val_fraction=0, test_fraction=0
    )
    generate_dataset(root, settings, progress=False)
    return root


def test_dataset_items(foleyworld):
    ds = ClipDataset(foleyworld, "train", ground_truth=True)
    assert len(ds) == 6
    item = ds[0]
    T, S = CFG.frames_per_clip, CFG.frame_size
    assert item["frames"].shape == (T, 3, S, S) and item["frames"].dtype == torch.float32
    assert 0.0 <= float(item["frames"].min()) and float(item["frames"].max()) <= 1.0
    assert float(item["frames"].std()) > 0.05  # a picture, not a blank
    assert item["audio"].shape == (CFG.samples_per_clip,)
    assert item["text"].startswith("#C C ") and item["meta"]["clip_id"] == ds.records[0].clip_id
    gt = item["gt"]
    assert gt["masks"].shape == (T, S, S) and gt["masks"].dtype == torch.bool
    # the decoded (AAC) audio is the ground-truth mixture up to coding noise
    mixture = gt["action"] + gt["ambient"]
    err = float(((item["audio"] - mixture) ** 2).mean()) / float((mixture**2).mean())
    assert err < 0.1
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["frames"].shape == (2, T, 3, S, S) and len(batch["text"]) == 2


def test_neighbour_is_another_clip_of_the_same_video(foleyworld):
    ds = ClipDataset(foleyworld, "train", neighbours=True, neighbour_frames=True, seed=1)
    drawn = set()
    for i in range(len(ds)):
        item = ds[i]
        n = item["neighbour"]
        assert item["has_neighbour"]
        assert n["meta"]["video_uid"] == item["meta"]["video_uid"]
        assert n["index"] != i
        assert abs(n["meta"]["narration_time"] - item["meta"]["narration_time"]) >= CFG.clip_seconds
        assert n["audio"].shape == (CFG.samples_per_clip,)
        assert n["frames"].shape == item["frames"].shape
        assert not torch.equal(n["audio"], item["audio"])
        drawn.add((i, n["index"]))
    # deterministic per (seed, epoch, index); other epochs draw other neighbours
    assert all(ds.neighbour_index(i) == j for i, j in drawn)
    epochs = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        epochs.add(ds.neighbour_index(0))
    assert len(epochs) == 2  # both other clips of video 0 get drawn


def test_single_clip_video_has_no_neighbour(tmp_path):
    frames = np.zeros((CFG.frames_per_clip, 64, 80, 3), np.uint8)
    audio = np.zeros(CFG.samples_per_clip // 2, np.float32)  # short clip: padded
    record = _record(clip_file="only.mp4")
    write_video(record.clip_path(tmp_path), frames, CFG.fps, audio)
    write_metadata(tmp_path / "train.tsv", [record])
    ds = ClipDataset(tmp_path, "train", neighbours=True)
    item = ds[0]
    assert not item["has_neighbour"] and item["neighbour"]["index"] == -1
    assert item["audio"].shape == (CFG.samples_per_clip,)
    assert item["frames"].shape == (CFG.frames_per_clip, 3, CFG.frame_size, CFG.frame_size)
    with pytest.raises(InputError, match="ground-truth"):
        ClipDataset(tmp_path, tmp_path / "train.tsv", ground_truth=True)[0]
