"""Security and faults of the CLI and the decoder (issue 17): no output ever replaces an input
(examples and a hypothesis property over the path arguments), one bad file never stops a batch,
silent wrong results become errors or warnings, and a high-frame-rate file decodes in bounded
memory.  Tiny real models (tests/app_fixtures.py); every file made in tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foley.cli.main import main
from foley.errors import FoleyError, InputError
from foley.io import load_video, save_audio, write_video
from tests.app_fixtures import tiny_pipeline, write_clip

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("secmodel") / "model"
    tiny_pipeline().save_pretrained(root)
    return root


@pytest.fixture()
def inputs(tmp_path) -> dict:
    folder = tmp_path / "in"
    a = write_clip(folder / "a.mp4", seconds=1.0)
    b = write_clip(folder / "b.mp4", seconds=1.0)
    cond = save_audio(tmp_path / "cond.wav", 0.1 * np.sin(np.arange(16000) / 3.0))
    return {"folder": folder, "a": a, "b": b, "cond": cond, "root": tmp_path}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(capsys, *argv) -> tuple[int, list[str]]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip().splitlines()


def fast(model: Path) -> list:
    return ["--model", model, "--steps", "1", "--quiet", "--mode", "no_condition"]


# ---- 3. no input is ever overwritten -----------------------------------------------------------
def test_outputs_that_name_an_input_are_refused(model, inputs, capsys):
    a, folder, cond, root = inputs["a"], inputs["folder"], inputs["cond"], inputs["root"]
    (root / "link.mp4").symlink_to(a)
    before = {p: sha(p) for p in (a, inputs["b"], cond)}
    cases = [
        [a, "-o", root / "o.mp4", "--masks", a],  # the reported attack
        [folder, "-o", root / "o", "--masks", folder],  # every input of a folder
        [a, "-o", a],
        [a, "-o", root / "link.mp4"],  # a symlink to the input
        [a, "-o", folder / ".." / "in" / "a.mp4"],  # .. back to the input
        [a, "-o", root / "o.mp4", "--wav", cond, "--condition-audio", cond],
        [folder, "-o", folder],
        [a, "-o", root / "o.mp4", "--wav", root / "x.wav", "--masks", root / "o.mp4"],
    ]
    for argv in cases:
        rc, err = run(capsys, "generate", *argv, *fast(model))
        assert rc == 1 and len(err) == 1, (argv, err)
        assert "is an input" in err[0] or "also given as" in err[0], err
    assert {p: sha(p) for p in before} == before
    assert not (root / "o.mp4").exists() and not (root / "o").exists()


def test_existing_outputs_need_overwrite(model, inputs, capsys):
    out = inputs["root"] / "out.mp4"
    out.write_bytes(b"keep me")
    rc, err = run(capsys, "generate", inputs["a"], "-o", out, *fast(model))
    assert rc == 1 and "--overwrite" in err[-1] and out.read_bytes() == b"keep me"
    rc, err = run(capsys, "generate", inputs["a"], "-o", out, "--overwrite", *fast(model))
    assert rc == 0, err
    assert out.read_bytes() != b"keep me" and sha(inputs["a"]) != sha(out)


NAMES = ["in/a.mp4", "in/../in/a.mp4", "link.mp4", "in", "cond.wav", "in/b.mp4",
         "out.mp4", "out", "x.wav", "m.png", "m.mp4", "./in/b.mp4", "linkdir"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    src=st.sampled_from(["in/a.mp4", "in", "link.mp4", "linkdir"]),
    out=st.sampled_from(NAMES),
    wav=st.none() | st.sampled_from(NAMES),
    masks=st.none() | st.sampled_from(NAMES),
    cond=st.booleans(),
)
def test_property_no_path_combination_overwrites_an_input(
    tmp_path_factory, capsys, src, out, wav, masks, cond
):
    """Any combination of the path arguments either is refused as naming an input, or gets
    past every path check (here to the missing model): inputs are never touched."""
    root = tmp_path_factory.mktemp("prop")
    write_clip(root / "in" / "a.mp4", seconds=0.5)
    write_clip(root / "in" / "b.mp4", seconds=0.5)
    save_audio(root / "cond.wav", np.zeros(1600, np.float32))
    (root / "link.mp4").symlink_to(root / "in" / "a.mp4")
    (root / "linkdir").symlink_to(root / "in")
    before = {p: sha(p) for p in root.rglob("*") if p.is_file()}
    argv = ["generate", root / src, "-o", root / out, "--model", root / "no-model"]
    argv += ["--wav", root / wav] if wav else []
    argv += ["--masks", root / masks] if masks else []
    argv += ["--condition-audio", root / "cond.wav"] if cond else []
    rc, err = run(capsys, *argv)
    assert rc == 1 and len(err) == 1
    if "no-model" in err[0]:  # every path check passed: no output may be an input
        real = os.path.realpath
        given = root / src
        videos = sorted(given.iterdir()) if given.is_dir() else [given]
        ins = {real(v) for v in videos} | ({real(root / "cond.wav")} if cond else set())
        outs = []
        for name, suffix in ((out, None), (wav, ".wav"), (masks, ".mp4")):
            if name is None:
                continue
            target = root / name
            if given.is_dir():
                outs += [target / (v.name if suffix is None else v.stem + suffix) for v in videos]
            else:
                outs.append(target / given.name if target.is_dir() else target)
        assert not ins & {real(o) for o in outs}, (argv, err)
    assert {p: sha(p) for p in before} == before  # nothing read was replaced
    assert not any(p.is_file() and p not in before for p in root.rglob("*"))


# ---- 5. one odd file never stops a batch; formats checked up front -----------------------------
def test_batch_goes_on_past_a_bad_file(model, tmp_path, capsys):
    import av

    folder = tmp_path / "batch"
    write_clip(folder / "a.mp4", seconds=1.0)
    (folder / "b.mp4").write_text("not a video\n" * 20)
    with av.open(str(folder / "c.webm"), "w") as c:  # VP9 in webm: mp4 cannot copy it as is
        s = c.add_stream("libvpx-vp9", rate=8)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 30 * i, np.uint8), "rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    write_clip(folder / "d.mp4", seconds=1.0)
    rc, err = run(capsys, "generate", folder, "-o", tmp_path / "out", *fast(model))
    assert rc == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "c.mp4", "d.mp4"]
    bad = [line for line in err if "error" in line]
    assert len(bad) == 1 and bad[0].startswith("foley generate: b.mp4: error:"), err


def test_output_formats_are_checked_up_front(model, inputs, capsys):
    a, root = inputs["a"], inputs["root"]
    for extra in (["-o", root / "x.wav"], ["-o", root / "x.txt"],
                  ["-o", root / "x.mp4", "--wav", root / "x2.mp4"]):  # fmt: skip
        rc, err = run(capsys, "generate", a, *extra, "--model", root / "no-model")
        assert rc == 1 and len(err) == 1 and "give a file ending in" in err[0], err


def test_bad_settings_are_one_line(model, inputs, capsys):
    import torch

    a, out = inputs["a"], inputs["root"] / "o.mp4"
    bad = [["--guidance", "1e30"], ["--guidance", "nan"], ["--seed", "99999999999999999999"]]
    if not torch.cuda.is_available():
        bad.append(["--device", "cuda"])
    for extra in bad:
        rc, err = run(capsys, "generate", a, "-o", out, *extra, *fast(model))
        assert rc == 1 and len(err) == 1 and err[0].startswith("foley generate: error:"), err
    assert not out.exists()


# ---- 7. silent wrong results -------------------------------------------------------------------
def test_nan_output_is_an_error_not_silence():
    import torch

    pipe = tiny_pipeline()
    with torch.no_grad():
        next(pipe.denoiser.parameters()).fill_(float("nan"))  # a broken model
    frames = np.zeros((8, 32, 32, 3), np.uint8)
    with pytest.raises(FoleyError, match="NaN or infinite"):
        pipe(frames, mode="no_condition", num_inference_steps=1)


def test_png_renamed_mp4_is_refused(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "x.png").rename(tmp_path / "still.mp4")
    with pytest.raises(InputError, match="still image"):
        load_video(tmp_path / "still.mp4")


def test_truncated_file_says_what_was_recovered(tmp_path):
    """An mp4 with its index at the front (faststart), cut in half: what decodes is used, with
    a warning that says how much."""
    import av

    path = tmp_path / "full.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=16)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(16 * 5):
            img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, "rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    video = load_video(cut, with_audio=False)
    assert 1.0 < video.duration < 4.0
    assert len(video.warnings) >= 1 and "of 5.0 s" in video.warnings[-1], video.warnings
    assert load_video(path, with_audio=False).warnings == []


def test_generate_refuses_an_index_of_another_mc3(model, inputs, capsys):
    from retrieval_index import ClipIndex

    rng = np.random.default_rng(0)
    rows = [{"clip_path": f"v/c{i}.mp4", "video_uid": "v", "narration": "n", "ambient_db": -40.0,
             "split": "train"} for i in range(4)]  # fmt: skip
    index = inputs["root"] / "other-index"
    with ClipIndex.rebuild(index, "mc3-0123456789abcdef", 16, progress=False) as builder:
        builder.add([f"c{i}" for i in range(4)], rng.standard_normal((4, 16)), rows)
    rc, err = run(
        capsys, "generate", inputs["a"], "-o", inputs["root"] / "o.mp4", "--index", index,
        "--model", model, "--steps", "1", "--quiet",
    )  # fmt: skip
    assert rc == 1 and "was built with model mc3-0123456789abcdef" in err[-1], err


def test_index_query_uses_the_first_seconds_of_a_longer_video(model, tmp_path, capsys):
    """``foley index query`` took only videos up to --seconds long; its help says it uses the
    first --seconds of any video."""
    from foley.models.mc3_embed import model_id
    from retrieval_index import ClipIndex

    rng = np.random.default_rng(0)
    rows = [{"clip_path": f"v/c{i}.mp4", "video_uid": "v", "narration": f"n{i}",
             "ambient_db": -40.0, "split": "train"} for i in range(6)]  # fmt: skip
    index = tmp_path / "index"
    mc3_dir = model / "retriever" / "mc3"
    with ClipIndex.rebuild(index, model_id(mc3_dir), 16, progress=False) as builder:
        builder.add([f"c{i}" for i in range(6)], rng.standard_normal((6, 16)), rows)
    hits = {}
    for seconds in (5.0, 3.0):
        clip = write_clip(tmp_path / f"{seconds:g}s.mp4", seconds=seconds)
        rc = main(["index", "query", "--index", str(index), "--video", str(clip), "--model",
                   str(mc3_dir), "--seconds", "3", "-k", "6", "--json"])  # fmt: skip
        out = capsys.readouterr()
        assert rc == 0, out.err
        hits[seconds] = json.loads(out.out)
    assert [h["id"] for h in hits[5.0]] == [h["id"] for h in hits[3.0]]
    np.testing.assert_allclose(
        [h["score"] for h in hits[5.0]], [h["score"] for h in hits[3.0]], atol=0.02
    )


def test_make_dataset_overwrite_deletes_nothing_outside(tmp_path, capsys):
    from foley.data.ego4d import read_metadata, write_metadata

    out = tmp_path / "ds"
    assert main(["make-dataset", "--out", str(out), "--videos", "1", "--clips-per-video", "1",
                 "--quiet"]) == 0  # fmt: skip
    victim = tmp_path / "victim"
    (victim / "keep").mkdir(parents=True)
    (victim / "keep" / "data.txt").write_text("precious")
    tsv = out / "train.tsv"
    records = read_metadata(tsv)
    evil = records[0].__class__(**{**vars(records[0]), "video_uid": str(victim)})
    write_metadata(tsv, [evil, *records[1:]])
    capsys.readouterr()
    rc, err = run(capsys, "make-dataset", "--out", out, "--videos", "1", "--clips-per-video", "1",
                  "--overwrite", "--quiet")  # fmt: skip
    assert rc == 1 and "refusing to delete" in err[-1], err
    assert (victim / "keep" / "data.txt").read_text() == "precious"


# ---- 4. bounded memory for a high-frame-rate file ----------------------------------------------
PEAK = r"""
import re, sys


def hwm_mib():
    # this process's own peak RSS (ru_maxrss would include the parent's, kept across vfork+exec)
    text = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) // 1024


from foley.io import load_video
try:
    v = load_video(sys.argv[1], with_audio=False)
    print(v.frames.shape[0])
except Exception as err:
    print(type(err).__name__, err)
print(hwm_mib())
"""


def peak_mib(path: Path) -> tuple[str, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", PEAK, str(path)], env=env, capture_output=True,
                          text=True, timeout=300, check=True)  # fmt: skip
    result, peak = proc.stdout.strip().splitlines()[-2:]
    return result, int(peak)


def test_high_frame_rate_file_decodes_in_bounded_memory(tmp_path):
    """240 fps (the cap) for 12 s: the old decoder kept 2,880 frames (360 MB at 112 x 112
    with its 320 x 240 decode); streaming keeps 192 output frames.  Peak memory is compared
    with the same clip at 16 fps; a 3000 fps file is refused before decoding."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (32, 240, 320, 3), dtype=np.uint8)
    write_video(tmp_path / "fast.mp4", np.tile(frames, (90, 1, 1, 1)), 240.0)  # 12 s at 240
    write_video(tmp_path / "slow.mp4", np.tile(frames, (6, 1, 1, 1)), 16.0)  # 12 s at 16
    write_video(tmp_path / "x3000.mp4", frames[:30], 3000.0)
    fast_out, fast_peak = peak_mib(tmp_path / "fast.mp4")
    slow_out, slow_peak = peak_mib(tmp_path / "slow.mp4")
    assert fast_out == slow_out == "192"
    assert fast_peak - slow_peak < 40, (fast_peak, slow_peak)
    refused, peak = peak_mib(tmp_path / "x3000.mp4")
    assert "3000 frames per second" in refused and peak < slow_peak + 40
