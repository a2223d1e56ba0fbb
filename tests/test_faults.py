"""Faults: training SIGKILLed at a random point resumes from its last checkpoint and continues the
same loss curve; a corrupt or truncated index file is reported by ``foley index`` in one line;
index rebuilds SIGKILLed at random moments always leave one whole, checksummed version serving.

(retrieval_index's own tests kill a rebuild at each named stage and check the library-level
checksum errors; here the kills land anywhere, and the corruption goes through the CLI, for every
file of a version.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from foley.cli.main import main
from foley.io import save_audio
from training.common import latest_checkpoint, read_metrics

REPO = Path(__file__).resolve().parents[1]
STEPS, SAVE_EVERY = 60, 10
TINY_CODEC = [
    "--n-filters", "2", "--lstm-layers", "0", "--latent-dim", "4", "--disc-filters", "2",
    "--batch-size", "2", "--crop-seconds", "0.25", "--adv-start", "1000", "--log-every", "1",
    "--stats-clips", "2", "--cpu", "--steps", str(STEPS), "--save-every", str(SAVE_EVERY),
]  # fmt: skip


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    """Four 1 s clips of modulated noise: a folder of audio files to train the codec on."""
    root = tmp_path_factory.mktemp("faults_audio")
    rng = np.random.default_rng(0)
    t = np.arange(16000)
    for i in range(4):
        wave = 0.2 * rng.standard_normal(16000) * np.sin(t / (50 + 10 * i))
        save_audio(root / f"clip{i}.wav", wave.astype(np.float32))
    return root


def _train_args(data: Path, out: Path) -> list[str]:
    return ["train", "codec", "--data", str(data), "--out", str(out), *TINY_CODEC]


def _curve(out: Path) -> dict[int, float]:
    """step -> training mel loss (the last row logged for a step wins: a resumed run re-logs)."""
    return {row["step"]: row["mel"] for row in read_metrics(out) if "mel" in row}


def test_training_killed_at_a_random_point_resumes_the_same_curve(audio_dir, tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = tmp_path / "reference"
        assert main(_train_args(audio_dir, reference)) == 0
        ref = _curve(reference)
        assert sorted(ref) == list(range(1, STEPS + 1))

        # the same run in a subprocess, SIGKILLed a random moment after its first checkpoint
        out = tmp_path / "killed"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "foley.cli.main", *_train_args(audio_dir, out)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        delay = np.random.default_rng(int(time.time())).uniform(0.0, 1.5)
        try:
            deadline = time.time() + 120
            while latest_checkpoint(out) is None and proc.poll() is None:
                assert time.time() < deadline, "no checkpoint within 120 s"
                time.sleep(0.02)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == -signal.SIGKILL, f"finished before the kill: {err[-2000:]}"
        saved = json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())["step"]
        assert saved % SAVE_EVERY == 0 and SAVE_EVERY <= saved < STEPS
        logged_before = max(_curve(out))
        assert logged_before < STEPS

        capsys.readouterr()
        assert main(_train_args(audio_dir, out)) == 0
        assert f"at step {saved}" in capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
    resumed = _curve(out)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    after = np.array([resumed[s] for s in range(saved + 1, STEPS + 1)])
    expected = np.array([ref[s] for s in range(saved + 1, STEPS + 1)])
    # same batches (drawn by step) and restored weights, optimizer and RNG: the same curve
    np.testing.assert_allclose(after, expected, rtol=1e-3, atol=1e-5)
    # ...which is not what a restart from scratch would give (the first step's loss)
    assert abs(after[0] - ref[1]) > 10 * abs(after[0] - expected[0]) or saved == 0


# ---- index corruption through the CLI ----------------------------------------------------------
@pytest.fixture()
def index_dir(tmp_path) -> Path:
    from retrieval_index import ClipIndex

    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 16)).astype(np.float32)
    rows = [
        {"clip_path": f"v{i % 3}/c{i}.mp4", "video_uid": f"v{i % 3}", "narration": f"#C C {i}",
         "ambient_db": -30.0 - i, "split": "train"}
        for i in range(30)
    ]  # fmt: skip
    path = tmp_path / "index"
    with ClipIndex.rebuild(path, "mc3-test", 16, progress=False) as builder:
        builder.add([f"c{i}" for i in range(30)], x, rows)
    return path


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err.strip()


def _index_commands(index: Path, tmp_path: Path) -> list[list]:
    video = tmp_path / "unused.mp4"  # never reached: the index is opened first
    return [
        ["index", "info", "--index", index],
        ["index", "query", "--index", index, "--video", video, "--model", tmp_path / "mc3"],
    ]


def test_corrupt_or_truncated_index_files_are_one_line_cli_errors(index_dir, tmp_path, capsys):
    rc, out, _ = _cli(capsys, "index", "info", "--index", index_dir, "--json")
    assert rc == 0 and json.loads(out)["count"] == 30
    version = index_dir / "versions" / (index_dir / "CURRENT").read_text().strip()
    files = sorted(p for p in version.iterdir() if p.is_file())
    assert {"manifest.json", "index.faiss"} <= {p.name for p in files}
    damages = {
        "flipped": lambda b: (
            b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 0xFF]) + b[len(b) // 2 + 1 :]
        ),
        "truncated": lambda b: b[: len(b) // 2],
        "emptied": lambda b: b"",
    }
    messages: set[str] = set()
    for path in [*files, index_dir / "CURRENT"]:
        original = path.read_bytes()
        for how, damage in damages.items():
            path.write_bytes(damage(original))
            for argv in _index_commands(index_dir, tmp_path):
                rc, _, err = _cli(capsys, *argv)
                where = f"{path.name} {how}: {argv[1]}"
                assert rc == 1, where
                assert len(err.splitlines()) == 1 and err.startswith("foley index: error:"), where
                assert "Traceback" not in err, where
                assert any(w in err for w in ("corrupt", "truncated", "missing")), (where, err)
                messages.add(err.split(": error: ", 1)[1])
        path.write_bytes(original)
    assert any("sha256 differs" in m for m in messages)  # a flipped byte: the checksum
    rc, _, _ = _cli(capsys, "index", "info", "--index", index_dir)
    assert rc == 0  # restored: serving again


# ---- index rebuilds killed at random moments ---------------------------------------------------
REBUILDER = """
import sys, numpy as np
from retrieval_index import ClipIndex
path, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
for round in range(10_000):
    n = int(rng.integers(20, 400))  # the count tells which rebuild a version came from
    meta = [dict(clip_path="p", video_uid="v", narration="n", ambient_db=-40.0, split="train",
                 tag=f"n{n}") for _ in range(n)]
    with ClipIndex.rebuild(path, "mc3-test", 16, progress=False) as builder:
        for lo in range(0, n, 50):
            hi = min(n, lo + 50)
            builder.add([f"c{i}" for i in range(lo, hi)], rng.standard_normal((hi - lo, 16)),
                        meta[lo:hi])
    if round == 0:
        print("ready", flush=True)
"""


def test_index_rebuilds_killed_at_random_moments_leave_a_consistent_index(index_dir):
    """SIGKILL a process that rebuilds the index in a loop, at random times (the stage-by-stage
    kills are in tests/test_retrieval_index.py): every time, the index opens, passes its
    checksums and holds one whole version; the next rebuild then works normally."""
    from retrieval_index import ClipIndex

    rng = np.random.default_rng(int(time.time()))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for seed in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", REBUILDER, str(index_dir), str(seed)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
            time.sleep(rng.uniform(0.0, 1.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        index = ClipIndex.open(index_dir)  # verifies every checksum
        n = len(index)
        hits = index.search(np.ones((1, 16), np.float32), min(n, 400))[0]
        assert len(hits) == n and {h.metadata["tag"] for h in hits} == {f"n{n}"}
    with ClipIndex.rebuild(index_dir, "mc3-test", 16, progress=False) as builder:
        row = dict(clip_path="p", video_uid="v", narration="n", ambient_db=-40.0, split="train")
        builder.add(["a", "b"], np.eye(2, 16, dtype=np.float32), [row, row])
    assert len(ClipIndex.open(index_dir)) == 2
    assert len(os.listdir(index_dir / "versions")) <= 2
