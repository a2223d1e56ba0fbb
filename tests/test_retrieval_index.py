"""retrieval_index: round trip, filters, exact vs IVF, atomic rebuilds, kills, corruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

import retrieval_index.backend as backend
from retrieval_index import (
    ClipIndex,
    IndexCorruptError,
    IndexExistsError,
    IndexInputError,
    IndexMismatchError,
    IndexNotFoundError,
    UnknownIdError,
)

DIM = 16
MODEL = "mc3-test"


def clustered(n: int, seed: int, clusters: int = 20, noise: float = 0.6) -> np.ndarray:
    """(n, DIM) float32 unit vectors around ``clusters`` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM))
    x = centres[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def meta(i: int, tag: str = "") -> dict:
    return {
        "clip_path": f"v{i % 5}/clip{i}.mp4",
        "video_uid": f"v{i % 5}",
        "narration": f"#C C cuts thing {i}",
        "ambient_db": -20.0 - (i % 50),
        "split": ("train", "val", "test")[i % 3],
        "tag": tag,
        "onsets": [0.5, 1.0 + i],
    }


def ids(n: int, tag: str = "c") -> list[str]:
    return [f"{tag}{i}" for i in range(n)]


def build(path: Path, n: int, tag: str = "c", seed: int = 0, **kw) -> ClipIndex:
    with ClipIndex.rebuild(path, MODEL, DIM, progress=False, **kw) as builder:
        x = clustered(n, seed)
        half = n // 2
        builder.add(ids(n, tag)[:half], x[:half], [meta(i, tag) for i in range(half)])
        builder.add(ids(n, tag)[half:], x[half:], [meta(i, tag) for i in range(half, n)])
    return builder.index


def exact_ids(x: np.ndarray, q: np.ndarray, k: int, keep: np.ndarray | None = None) -> list:
    sims = q @ x.T
    if keep is not None:
        sims[:, ~keep] = -np.inf
    return [list(np.argsort(-row, kind="stable")[:k]) for row in sims]


# ------------------------------------------------------------------------- round trip
def test_round_trip_create_add_open(tmp_path):
    path = tmp_path / "idx"
    index = ClipIndex.create(path, MODEL, DIM)
    assert len(index) == 0 and index.kind == "flat"
    assert index.search(clustered(2, 9), 5) == [[], []]
    x = clustered(200, 1) * 3.0  # not unit length: normalised on the way in
    index.add(ids(200), x, [meta(i) for i in range(200)], model_id=MODEL)
    assert len(index) == 200 and index.version == "v0002"

    again = ClipIndex.open(path, model_id=MODEL, dim=DIM)
    assert len(again) == 200 and again.version == "v0002"
    hits = again.search(x[:4], k=5)
    assert [h[0].id for h in hits] == ids(4)
    assert all(abs(h[0].score - 1.0) < 1e-5 for h in hits)
    assert all(h[i].score >= h[i + 1].score for h in hits for i in range(4))
    got = again.get("c7")
    assert got == {**meta(7), "id": "c7"}
    unit = x[7] / np.linalg.norm(x[7])
    np.testing.assert_allclose(again.vector("c7"), unit, atol=1e-6)
    assert "c7" in again and "nope" not in again
    with pytest.raises(UnknownIdError, match="no clip 'nope'"):
        again.get("nope")
    info = again.info()
    assert info["model_id"] == MODEL and info["dim"] == DIM and info["count"] == 200
    assert info["kind"] == "flat" and info["version"] == "v0002" and info["created"]
    # exact: same neighbours as numpy
    q = clustered(10, 2)
    want = exact_ids(x / np.linalg.norm(x, axis=1, keepdims=True), q, 10)
    assert [[int(h.id[1:]) for h in row] for row in again.search(q, 10)] == want


def test_create_refuses_existing_and_open_missing(tmp_path):
    ClipIndex.create(tmp_path / "idx", MODEL, DIM)
    with pytest.raises(IndexExistsError):
        ClipIndex.create(tmp_path / "idx", MODEL, DIM)
    with pytest.raises(IndexNotFoundError, match="no retrieval index"):
        ClipIndex.open(tmp_path / "missing")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.tsv").write_text("video_uid\n")
    with pytest.raises(IndexExistsError, match="not an index"):
        ClipIndex.rebuild(tmp_path / "data", MODEL, DIM).__enter__()
    assert sorted(os.listdir(tmp_path / "data")) == ["train.tsv"]


def test_bad_input_refused_and_index_unchanged(tmp_path):
    index = build(tmp_path / "idx", 30)
    x = clustered(2, 5)
    bad_meta = {k: v for k, v in meta(0).items() if k != "ambient_db"}
    with pytest.raises(IndexInputError, match="lacks ambient_db"):
        index.add(["n0", "n1"], x, [meta(0), bad_meta])
    with pytest.raises(IndexInputError, match="already in the index: c3"):
        index.add(["n0", "c3"], x, [meta(0), meta(1)])
    with pytest.raises(IndexInputError, match="repeat"):
        index.add(["n0", "n0"], x, [meta(0), meta(1)])
    with pytest.raises(IndexInputError, match="NaN"):
        index.add(["n0", "n1"], np.full((2, DIM), np.nan), [meta(0), meta(1)])
    with pytest.raises(IndexInputError, match="ambient_db"):
        index.add(["n0", "n1"], x, [meta(0), {**meta(1), "ambient_db": float("nan")}])
    with pytest.raises(IndexInputError, match="unknown filter key"):
        index.search(x, 3, where={"ambient_below": -40})
    reopened = ClipIndex.open(tmp_path / "idx")
    assert len(reopened) == 30 and reopened.version == index.version == "v0001"
    assert os.listdir(tmp_path / "idx" / "versions") == ["v0001"]


def test_model_and_dimension_mismatch_refused(tmp_path):
    index = build(tmp_path / "idx", 20)
    with pytest.raises(IndexMismatchError, match="16-d vectors of model 'mc3-test'"):
        index.add(["a"], np.ones((1, 8), np.float32), [meta(0)])
    with pytest.raises(IndexMismatchError, match="16-d"):
        index.search(np.ones((1, 32), np.float32), 3)
    with pytest.raises(IndexMismatchError, match="'other-model'"):
        index.add(["a"], clustered(1, 3), [meta(0)], model_id="other-model")
    with pytest.raises(IndexMismatchError, match="'other-model'"):
        index.search(clustered(1, 3), 3, model_id="other-model")
    with pytest.raises(IndexMismatchError):
        ClipIndex.open(tmp_path / "idx", model_id="other-model")
    with pytest.raises(IndexMismatchError):
        ClipIndex.open(tmp_path / "idx", dim=256)
    with ClipIndex.rebuild(tmp_path / "idx", MODEL, DIM, progress=False) as builder:
        with pytest.raises(IndexMismatchError):
            builder.add(["a"], np.ones((1, 4), np.float32), [meta(0)])
        builder.add(["a"], clustered(1, 3), [meta(0)])
    assert len(builder.index) == 1
    assert str(IndexMismatchError("x")).count("\n") == 0


# ---------------------------------------------------------------------------- filters
@pytest.mark.parametrize("kind", ["flat", "ivf_flat"])
def test_filters_match_exact_filtered_search(tmp_path, kind):
    n = 600
    index = build(tmp_path / "idx", n, kind=kind, nlist=16, nprobe=16)
    assert index.kind == kind
    x, q = clustered(n, 0), clustered(8, 7)
    splits = np.array([meta(i)["split"] for i in range(n)])
    ambient = np.array([meta(i)["ambient_db"] for i in range(n)])
    videos = np.array([meta(i)["video_uid"] for i in range(n)])
    cases = [
        ({"split": "train"}, splits == "train"),
        ({"ambient_db_max": -60.0}, ambient <= -60.0),
        (
            {"split": ["val", "test"], "ambient_db_max": -50.0},
            (splits != "train") & (ambient <= -50),
        ),
        (
            {"exclude_video_uid": ["v0", "v1"], "ambient_db_min": -30},
            (videos > "v1") & (ambient >= -30),
        ),
        (
            {"video_uid": "v2", "split": "test", "ambient_db_max": -68.0},
            (videos == "v2") & (splits == "test") & (ambient <= -68),
        ),
    ]
    for where, keep in cases:
        results = index.search(q, 10, where=where)
        want = exact_ids(x, q, 10, keep)
        expected_len = min(10, int(keep.sum()))
        assert all(len(row) == expected_len for row in results), where
        for row, want_row in zip(results, want):
            for hit in row:
                i = int(hit.id[1:])
                assert keep[i], (where, hit.metadata)
                assert (
                    hit.metadata["split"] == splits[i] and hit.metadata["ambient_db"] == ambient[i]
                )
            # nprobe == nlist: IVF is exhaustive here, so both kinds equal exact search
            assert [int(h.id[1:]) for h in row] == want_row[:expected_len]
    assert index.search(q, 10, where={"ambient_db_max": -500.0}) == [[] for _ in range(8)]


def test_has_filter_keeps_clips_whose_extra_key_is_present_and_not_null(tmp_path):
    index = ClipIndex.create(tmp_path / "idx", model_id=MODEL, dim=DIM)
    rows = [meta(i) for i in range(6)]
    rows[1]["track"], rows[2]["track"], rows[4]["track"] = "a.ogg", "b.ogg", None
    index.add(ids(6), clustered(6, 0), rows)
    assert index.count({"has": "track"}) == 2
    assert index.count({"has": ["track", "tag"]}) == 2 and index.count({"has": "nope"}) == 0
    hits = index.search(clustered(3, 1), 6, where={"has": "track", "split": "val"})
    assert [[h.id for h in row] for row in hits] == [["c1"], ["c1"], ["c1"]]
    with pytest.raises(IndexInputError, match="not a metadata key name"):
        index.count({"has": "x') OR 1=1 --"})


def test_ivf_filter_fills_k_when_probed_lists_lack_passing_items(tmp_path, monkeypatch):
    """nprobe=1 over 32 lists with a 1-in-10 filter: the first probe leaves queries short."""
    monkeypatch.setattr(backend, "SUBSET_EXACT_MAX", 0)  # force the IDSelector path
    n = 3000
    index = build(tmp_path / "idx", n, kind="ivf_flat", nlist=32, nprobe=1)
    where = {"ambient_db_min": -20.0}  # ambient_db = -20 - i % 50: 60 of 3000 clips pass
    keep = np.array([meta(i)["ambient_db"] >= -20.0 for i in range(n)])
    q = clustered(20, 11)
    # one probe alone leaves queries short: the retry with more lists is what fills them
    bitmap = np.packbits(keep, bitorder="little")
    sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    params = faiss.SearchParametersIVF(sel=sel, nprobe=1)
    _, single_probe = index._v.index.search(q, 25, params=params)
    assert (single_probe < 0).any(axis=1).mean() > 0.5
    results = index.search(q, 25, where=where)
    assert all(len(row) == 25 for row in results)
    assert all(keep[int(h.id[1:])] for row in results for h in row)
    want = exact_ids(clustered(n, 0), q, 25, keep)
    recall = np.mean([len({int(h.id[1:]) for h in r} & set(w)) / 25 for r, w in zip(results, want)])
    assert recall > 0.5


def test_auto_kind_switches_to_ivf_with_high_recall(tmp_path):
    path = tmp_path / "idx"
    index = build(path, 300, exact_max=500)
    assert index.kind == "flat"
    extra = clustered(2700, 3)
    index.add(ids(2700, "e"), extra, [meta(i) for i in range(2700)])  # crosses exact_max
    assert index.kind == "ivf_flat" and len(index) == 3000
    assert index.info()["params"]["nlist"] == 128  # 2 sqrt(3000) = 110 -> 128
    x = np.concatenate([clustered(300, 0), extra])
    names = ids(300) + ids(2700, "e")
    q = clustered(50, 4)
    want = exact_ids(x, q, 10)

    def recall(nprobe=None):
        got = index.search(q, 10, nprobe=nprobe)
        return np.mean(
            [len({h.id for h in g} & {names[i] for i in w}) / 10 for g, w in zip(got, want)]
        )

    assert recall() >= 0.8  # default nprobe 8 of 128 lists, on 16-d toy data
    assert recall(32) >= 0.95
    exhaustive = index.search(q, 10, nprobe=128)
    assert [[h.id for h in row] for row in exhaustive] == [[names[i] for i in w] for w in want]
    # add() to an IVF index keeps its trained lists
    index.add(["late"], extra[:1], [meta(0)])
    assert index.kind == "ivf_flat" and index.search(extra[:1], 2)[0][0].id in {"late", "e0"}


# -------------------------------------------------------------------- versions, GC
def test_rebuild_switches_and_keeps_last_two_versions(tmp_path):
    path = tmp_path / "idx"
    old = build(path, 50, tag="a")
    for round_ in range(3):
        build(path, 60 + round_, tag=f"r{round_}")
    assert sorted(os.listdir(path / "versions")) == ["v0003", "v0004"]
    current = ClipIndex.open(path)
    assert len(current) == 62 and current.get("r20")["tag"] == "r2"
    # the first reader's version was garbage-collected from disk, yet it still serves
    assert not (path / "versions" / "v0001").exists()
    hits = old.search(clustered(3, 0), 4)
    assert [len(h) for h in hits] == [4, 4, 4] and all(
        h.id.startswith("a") for r in hits for h in r
    )
    assert old.get("a3")["tag"] == "a"


# ------------------------------------------------------------------------ corruption
def _only_version(path: Path) -> Path:
    return path / "versions" / (path / "CURRENT").read_text().strip()


def test_corrupt_manifest_detected(tmp_path):
    path = tmp_path / "idx"
    build(path, 40)
    manifest = _only_version(path) / "manifest.json"
    fields = json.loads(manifest.read_text())
    fields["count"] = 41  # valid JSON, altered content: its checksum no longer matches
    manifest.write_text(json.dumps(fields))
    with pytest.raises(IndexCorruptError, match=r"manifest\.json is corrupt \(its checksum") as err:
        ClipIndex.open(path)
    assert "\n" not in str(err.value)
    manifest.write_text(manifest.read_text()[:-30])  # truncated
    with pytest.raises(IndexCorruptError, match="not JSON"):
        ClipIndex.open(path)
    manifest.unlink()
    with pytest.raises(IndexCorruptError, match="manifest.json is missing"):
        ClipIndex.open(path)


def test_corrupt_or_truncated_files_detected(tmp_path):
    path = tmp_path / "idx"
    build(path, 40)
    vdir = _only_version(path)
    index_file = vdir / "index.faiss"
    data = bytearray(index_file.read_bytes())
    index_file.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(IndexCorruptError, match="index.faiss is truncated") as err:
        ClipIndex.open(path)
    assert "\n" not in str(err.value)
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    index_file.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="sha256 differs"):
        ClipIndex.open(path)
    # without checksums the flipped byte goes unnoticed by the size check alone
    ClipIndex.open(path, verify=False)
    data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))
    (vdir / "meta.sqlite").unlink()
    with pytest.raises(IndexCorruptError, match="meta.sqlite is missing"):
        ClipIndex.open(path)
    (path / "CURRENT").write_text("garbage\n")
    with pytest.raises(IndexCorruptError, match="CURRENT is corrupt"):
        ClipIndex.open(path)


# ----------------------------------------------------------- concurrency and killing
READER = textwrap.dedent(
    """
    import sys, time, numpy as np
    from pathlib import Path
    from retrieval_index import ClipIndex
    path, stop = Path(sys.argv[1]), Path(sys.argv[2])
    q = np.random.default_rng(0).standard_normal((4, 16)).astype("f4")
    loops = 0
    while not stop.exists():
        index = ClipIndex.open(path)
        tag = index.get("x0")["tag"]
        for row in index.search(q, 5, where={"split": "train"}):
            assert len(row) == 5 and all(h.metadata["tag"] == tag for h in row), tag
        loops += 1
        if loops == 1:
            print("ready", flush=True)
    print("loops", loops)
    """
)


def test_readers_never_fail_during_rebuilds(tmp_path):
    path = tmp_path / "idx"
    build(path, 200, tag="x")
    stop = tmp_path / "stop"
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"  # the reader process is looping
    held = ClipIndex.open(path)  # opened before the rebuilds, searched while they happen
    q = clustered(6, 8)
    reference = [[h.id for h in row] for row in held.search(q, 5)]
    errors: list[BaseException] = []
    done = threading.Event()

    def read_loop(fresh: bool) -> None:
        try:
            while not done.is_set():
                if fresh:
                    index = ClipIndex.open(path)
                    rows = index.search(q, 5, where={"ambient_db_max": -40.0})
                    tags = {h.metadata["tag"] for row in rows for h in row}
                    assert len(tags) == 1 and all(len(r) == 5 for r in rows)
                    tag = tags.pop()  # "x" (first build, 200 clips) or "round<r>" (150 + r)
                    assert len(index) == (200 if tag == "x" else 150 + int(tag[5:]))
                else:
                    assert [[h.id for h in row] for row in held.search(q, 5)] == reference
        except BaseException as err:  # noqa: B036 - reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=read_loop, args=(f,)) for f in (True, False, False)]
    for t in threads:
        t.start()
    try:
        for round_ in range(6):
            x = clustered(150 + round_, round_ + 1)
            # same ids every round ("x0"...), other vectors, counts and tags
            with ClipIndex.rebuild(path, MODEL, DIM, progress=False) as builder:
                metas = [meta(i, f"round{round_}") for i in range(len(x))]
                builder.add(ids(len(x), "x"), x, metas)
            time.sleep(0.05)
    finally:
        done.set()
        stop.touch()
        for t in threads:
            t.join(30)
        out, err = proc.communicate(timeout=60)
    assert not errors, errors[0]
    assert proc.returncode == 0, err[-2000:]
    assert int(out.split()[-1]) > 0
    assert len(ClipIndex.open(path)) == 155
    assert sorted(os.listdir(path / "versions")) == ["v0006", "v0007"]


KILLER = textwrap.dedent(
    """
    import os, signal, sys, numpy as np
    import retrieval_index.store as store
    from retrieval_index import ClipIndex
    path, stage = sys.argv[1], sys.argv[2]
    def hook(name):
        if name == stage:
            os.kill(os.getpid(), signal.SIGKILL)
    store.STAGE_HOOK = hook
    rng = np.random.default_rng(1)
    meta = [dict(clip_path="p", video_uid="v", narration="n", ambient_db=-40.0, split="train",
                 tag="new") for _ in range(300)]
    with ClipIndex.rebuild(path, "mc3-test", 16, progress=False) as builder:
        builder.add([f"n{i}" for i in range(150)], rng.standard_normal((150, 16)), meta[:150])
        if stage == "adding":
            os.kill(os.getpid(), signal.SIGKILL)
        builder.add([f"n{i}" for i in range(150, 300)], rng.standard_normal((150, 16)), meta[150:])
    """
)


@pytest.mark.parametrize(
    "stage, serves_new",
    [
        ("adding", False),
        ("files_written", False),
        ("manifest_written", False),
        ("renamed", False),
        ("switched", True),
        ("collected", True),
    ],
)
def test_rebuild_killed_leaves_a_serving_version(tmp_path, stage, serves_new):
    path = tmp_path / "idx"
    build(path, 50, tag="old")
    build(path, 60, tag="old")  # two versions, so collection has something to delete
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(path), stage], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    index = ClipIndex.open(path)
    assert len(index) == (300 if serves_new else 60)
    tag = "new" if serves_new else "old"
    assert all(h.metadata["tag"] == tag for h in index.search(clustered(3, 0), 5)[0])
    # the next writer cleans up whatever the killed one left and switches normally
    build(path, 70, tag="after")
    entries = sorted(os.listdir(path / "versions"))
    assert len(entries) == 2 and all(e.startswith("v") and "." not in e for e in entries)
    assert len(ClipIndex.open(path)) == 70


def test_ivf_unfiltered_returns_k_beyond_probed_lists(tmp_path):
    index = build(tmp_path / "idx", 600, kind="ivf_flat", nlist=32, nprobe=1)
    q = clustered(5, 12)
    _, single_probe = index._v.index.search(q, 100, params=faiss.SearchParametersIVF(nprobe=1))
    assert (single_probe < 0).any()  # ~19 vectors per list: one probe cannot give 100
    rows = index.search(q, 100)
    assert all(len(row) == 100 and len({h.id for h in row}) == 100 for row in rows)
    assert [len(r) for r in index.search(q, 1000)] == [600] * 5


def test_copy_to_takes_one_consistent_version(tmp_path):
    path = tmp_path / "idx"
    old = build(path, 40, tag="a")
    build(path, 50, tag="b")
    copy = old.copy_to(tmp_path / "export")
    assert os.listdir(tmp_path / "export" / "versions") == ["v0001"]
    assert len(copy) == 40 and copy.get("a1")["tag"] == "a"
    q = clustered(3, 5)
    assert [[h.id for h in r] for r in copy.search(q, 5)] == [
        [h.id for h in r] for r in old.search(q, 5)
    ]
    with pytest.raises(IndexExistsError):
        old.copy_to(tmp_path / "export")
