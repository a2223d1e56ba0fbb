"""The GPU lease scripts (scripts/gpu/) at a tiny size on CPU: run.sh's steps into a tmp $OUT,
parts.py's split and reassembly with sha256 checks, and the fetched pipeline generating."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "scripts" / "gpu" / "parts.py"


def parts(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(PARTS), *args], capture_output=True, text=True, cwd=ROOT
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_gpu_preset_fits_its_budget_shape():
    from training.recipe import PRESETS

    gpu = PRESETS["gpu"]
    assert gpu.codec.preset == "stft" and gpu.data_workers == 16
    assert not gpu.eval_pretrained  # the judges' packages are not on the GPU machine
    # the stages with a time cap keep it; their caps leave room in a 10-minute lease
    caps = [gpu.codec.max_minutes, gpu.avs.max_minutes, gpu.sync.max_minutes]
    assert all(c > 0 for c in caps) and sum(caps) < 5
    # test split (10 % of videos) and shifted test hold >= 48 clips each for the eval
    assert gpu.videos // 10 * gpu.clips_per_video >= gpu.eval_n
    assert gpu.shifted_test_videos * gpu.clips_per_video >= gpu.eval_n


def test_bundle_and_join_round_trip_and_refuse_a_corrupt_chunk(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a-1.0-py3-none-any.whl", "b-2.0-py3-none-any.whl"):
        (wheels / name).write_bytes(rng.bytes(300_000))
    dest = tmp_path / "gpu"
    dest.mkdir()
    parts("bundle", str(wheels), str(dest), "--chunk-mb", "0.15")
    chunks = sorted(p.name for p in dest.glob("c*"))
    assert len(chunks) == 4 and all((dest / c / "manifest.json").is_file() for c in chunks)

    # a staging call with some chunks carried: says which, extracts nothing
    (dest / "c4" / "bundle.part04").rename(tmp_path / "held_back")
    out = parts("join", str(dest), "--partial").stdout
    assert "c1, c2, c3 of 4" in out
    proc = parts("join", str(dest), str(tmp_path / "x"), check=False)
    assert proc.returncode == 1 and "missing parts: bundle.part04" in proc.stderr
    assert not (tmp_path / "x").exists()

    (tmp_path / "held_back").rename(dest / "c4" / "bundle.part04")
    parts("join", str(dest), str(tmp_path / "site"))
    for name in ("a-1.0-py3-none-any.whl", "b-2.0-py3-none-any.whl"):
        assert (tmp_path / "site" / name).read_bytes() == (wheels / name).read_bytes()

    part = dest / "c2" / "bundle.part02"
    data = bytearray(part.read_bytes())
    data[10] ^= 1
    part.write_bytes(bytes(data))
    proc = parts("join", str(dest), str(tmp_path / "y"), check=False)
    assert proc.returncode == 1 and "corrupt" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.slow
def test_run_sh_tiny_then_fetch_reassembles_and_generates(tmp_path):
    out, run = tmp_path / "OUT", tmp_path / "run"
    out.mkdir()
    env = dict(
        os.environ, OUT=str(out), FOLEY_GPU_SKIP_INSTALL="1", FOLEY_GPU_PRESET="tiny",
        FOLEY_GPU_RUN=str(run), FOLEY_GPU_SPLIT_MB="1", PYTHON=sys.executable,
    )  # fmt: skip
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu" / "run.sh")], env=env, cwd=tmp_path,
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    back = sorted(p.name for p in out.iterdir())
    # what the device tool brings back: <= 8 files of <= 16 MiB, the split path exercised
    assert len(back) <= 8 and "manifest.json" in back and "log.txt" in back
    part_files = [p for p in out.glob("run.part*")]
    assert len(part_files) >= 2 and all(p.stat().st_size <= 2**20 for p in part_files)
    assert "[recipe] done" in (out / "log.txt").read_text()

    # a corrupt part is refused, and nothing is extracted
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in out.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    victim = bad / "run.part01"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu" / "fetch.sh"), str(bad), str(tmp_path / "no"),
         "--no-eval"], capture_output=True, text=True, env=dict(os.environ, PYTHON=sys.executable),
    )  # fmt: skip
    assert proc.returncode == 1 and "corrupt" in proc.stderr
    assert not (tmp_path / "no").exists()

    dest = tmp_path / "fetched"
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu" / "fetch.sh"), str(out), str(dest), "--no-eval"],
        capture_output=True, text=True, env=dict(os.environ, PYTHON=sys.executable),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((dest / "recipe.json").read_text())["preset"] == "tiny"
    assert (dest / "eval" / "test" / "report.md").is_file()

    # the fetched pipeline loads and generates for a test clip of the run's data
    from foley.cli.main import main as foley_main

    clip = next((run / "data").glob("*/*.mp4"))
    video_out = tmp_path / "gen.mp4"
    code = foley_main(
        ["generate", str(clip), "--model", str(dest / "pipeline"), "--out", str(video_out),
         "--steps", "2", "--device", "cpu", "--quiet", "--wav", str(tmp_path / "gen.wav")]
    )  # fmt: skip
    assert code == 0 and video_out.stat().st_size > 0
    import soundfile as sf

    audio, rate = sf.read(tmp_path / "gen.wav")
    assert rate == 16_000 and len(audio) > rate and np.isfinite(audio).all()
