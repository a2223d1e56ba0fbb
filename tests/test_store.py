"""training.store: the one feature-store format (memory-mapped arrays + a manifest with an
invalidation key) behind every trainer's cache."""

from __future__ import annotations

import numpy as np
import pytest

from training.store import MANIFEST, FeatureStore, StoreWriter, settings_key


def test_store_round_trip_and_invalidation_key(tmp_path):
    settings = {"split": "train", "cfg": {"fps": 16.0}, "count": 3}
    writer = StoreWriter(tmp_path / "s", settings, 3)
    frames = writer.array("frames", np.uint8, (3, 2, 4, 4, 3))
    frames[:] = np.arange(frames.size, dtype=np.uint64).reshape(frames.shape) % 251
    writer.save("offsets", np.array([0, 5, 9, 12], np.int64))
    assert FeatureStore.open(tmp_path / "s") is None  # nothing in place until the commit
    assert (tmp_path / "s.partial").is_dir()
    store = writer.commit({"clip_ids": ["a", "b", "c"]})
    assert not (tmp_path / "s.partial").exists()

    again = FeatureStore.open(tmp_path / "s", dict(settings))
    assert again is not None and again.meta == {"clip_ids": ["a", "b", "c"]}
    assert isinstance(again["frames"], np.memmap) and not again["frames"].flags.writeable
    assert np.array_equal(again["frames"], store["frames"])
    assert again["offsets"].tolist() == [0, 5, 9, 12] and again.get("mel") is None
    # any change of the settings changes the key: the store is not served for them
    assert settings_key(settings) == settings_key({"count": 3, "split": "train",
                                                   "cfg": {"fps": 16.0}})  # fmt: skip
    assert FeatureStore.open(tmp_path / "s", {**settings, "count": 4}) is None
    assert FeatureStore.open(tmp_path / "s", {**settings, "cfg": {"fps": 8.0}}) is None
    with pytest.raises(KeyError):
        again["mel"]


def test_resumable_store_continues_and_restarts_on_new_settings(tmp_path):
    path = tmp_path / "train"
    path.mkdir()
    (path / "notes.txt").write_text("mine")  # not the store's: never deleted
    settings = {"count": 4}
    first = StoreWriter(path, settings, 4, resume=True, meta={"clips": [1, 2, 3, 4]})
    first.array("latents", np.float16, (4, 2))[:2] = 1.0
    first.checkpoint(2)  # killed here
    assert FeatureStore.open(path) is None  # incomplete

    second = StoreWriter(path, settings, 4, resume=True)
    assert second.rows_done == 2
    latents = second.array("latents", np.float16, (4, 2))
    assert latents[:2].tolist() == [[1.0, 1.0], [1.0, 1.0]]  # kept, not rewritten
    latents[2:] = 2.0
    latents.flush()
    store = second.commit()
    assert store["latents"][:, 0].tolist() == [1.0, 1.0, 2.0, 2.0]
    assert store.meta == {"clips": [1, 2, 3, 4]}

    other = StoreWriter(path, {"count": 4, "codec": "other"}, 4, resume=True)
    assert other.rows_done == 0 and not (path / "latents.npy").exists()
    assert not (path / MANIFEST).exists() and (path / "notes.txt").read_text() == "mine"


def test_arrays_added_to_a_finished_store_appear_only_when_published(tmp_path):
    writer = StoreWriter(tmp_path / "s", {"n": 2}, 2)
    writer.save("latents", np.zeros((2, 3), np.float16))
    store = writer.commit()
    curves = store.new_array("sync_curves", np.float16, (2, 3, 2))
    curves[:] = 0.5
    curves.flush()
    assert "sync_curves" not in FeatureStore.open(tmp_path / "s")
    store.publish("sync_curves")
    reopened = FeatureStore.open(tmp_path / "s", {"n": 2})
    assert (
        reopened["sync_curves"].shape == (2, 3, 2) and float(reopened["sync_curves"].max()) == 0.5
    )
