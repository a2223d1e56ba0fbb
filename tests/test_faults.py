"""Faults: training SIGKILLed at a chosen step resumes from its last checkpoint and continues the
same loss curve; a corrupt or truncated index file is reported by ``foley index`` in one line;
index rebuilds SIGKILLed at chosen moments always leave one whole, checksummed version serving.

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
from pathlib import Path

import numpy as np
import pytest
import torch

from foley.cli.main import main
from foley.io import save_audio
from training.common import KILL_AT_STEP_ENV, latest_checkpoint, read_metrics

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


@pytest.mark.parametrize("kill_step", [17, 34])
def test_training_killed_at_a_chosen_step_resumes_the_same_curve(
    audio_dir, tmp_path, capsys, kill_step
):
    """The run SIGKILLs itself right after logging ``kill_step`` (FOLEY_FAULT_KILL_AT_STEP):
    a point between two checkpoints chosen by the test, not a wall-clock moment, so the test
    sees the same kill on any machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = tmp_path / "reference"
        assert main(_train_args(audio_dir, reference)) == 0
        ref = _curve(reference)
        assert sorted(ref) == list(range(1, STEPS + 1))

        out = tmp_path / "killed"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO),
            KILL_AT_STEP_ENV: str(kill_step),
        }
        cmd = [sys.executable, "-m", "foley.cli.main", *_train_args(audio_dir, out)]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = proc.stderr.decode(errors="replace")
        assert proc.returncode == -signal.SIGKILL, f"not killed at step {kill_step}: {err[-2000:]}"
        saved = json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())["step"]
        assert saved == kill_step // SAVE_EVERY * SAVE_EVERY
        assert max(_curve(out)) == kill_step

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
    assert abs(after[0] - ref[1]) > 10 * abs(after[0] - expected[0])


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


# ---- index rebuilds killed at chosen moments ---------------------------------------------------
REBUILDER = """
import os, signal, sys, numpy as np
from retrieval_index import ClipIndex
path, seed, kill_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
events = 0
def event():  # one more batch added or rebuild finished; the chosen one is the last
    global events
    events += 1
    if events == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
for round in range(10_000):
    n = int(rng.integers(20, 400))  # the count tells which rebuild a version came from
    meta = [dict(clip_path="p", video_uid="v", narration="n", ambient_db=-40.0, split="train",
                 tag=f"n{n}") for _ in range(n)]
    with ClipIndex.rebuild(path, "mc3-test", 16, progress=False) as builder:
        for lo in range(0, n, 50):
            hi = min(n, lo + 50)
            builder.add([f"c{i}" for i in range(lo, hi)], rng.standard_normal((hi - lo, 16)),
                        meta[lo:hi])
            event()
    event()
"""


@pytest.mark.parametrize("kill_after", [3, 9, 14, 22])
def test_index_rebuilds_killed_at_chosen_moments_leave_a_consistent_index(index_dir, kill_after):
    """A process rebuilds the index in a loop and SIGKILLs itself after its ``kill_after``-th
    event (a batch added mid-rebuild, or a rebuild finished): chosen points, not wall-clock
    moments (the stage-by-stage kills are in tests/test_retrieval_index.py).  The index opens,
    passes its checksums and holds one whole version; the next rebuild then works normally."""
    from retrieval_index import ClipIndex

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", REBUILDER, str(index_dir), str(kill_after), str(kill_after)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    index = ClipIndex.open(index_dir)  # verifies every checksum
    n = len(index)
    hits = index.search(np.ones((1, 16), np.float32), min(n, 400))[0]
    tags = {h.metadata.get("tag", "fixture") for h in hits}
    assert len(hits) == n
    assert tags == {f"n{n}"} or (tags == {"fixture"} and n == 30)  # a rebuild's, or the first
    with ClipIndex.rebuild(index_dir, "mc3-test", 16, progress=False) as builder:
        row = dict(clip_path="p", video_uid="v", narration="n", ambient_db=-40.0, split="train")
        builder.add(["a", "b"], np.eye(2, 16, dtype=np.float32), [row, row])
    assert len(ClipIndex.open(index_dir)) == 2
    assert len(os.listdir(index_dir / "versions")) <= 2


# ---- broken checkpoints (issue 17) -------------------------------------------------------------
def _short_run(data: Path, out: Path, steps: int) -> list[str]:
    args = _train_args(data, out)
    i = args.index("--steps")
    return [*args[: i + 1], str(steps), *args[i + 2 :]]


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(audio_dir, tmp_path, capsys):
    from foley.errors import InputError

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "run"
        assert main(_short_run(audio_dir, out, 2 * SAVE_EVERY)) == 0
        newest = latest_checkpoint(out)
        assert newest.name == f"step-{2 * SAVE_EVERY:07d}"
        weights = sorted(newest.glob("*.safetensors"))
        assert weights
        for w in weights:  # truncated, as a full disk or a killed copy leaves it
            w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
        capsys.readouterr()
        assert main(_short_run(audio_dir, out, 3 * SAVE_EVERY)) == 0
        printed = capsys.readouterr().out
        assert "skipping broken checkpoint" in printed and newest.name in printed
        assert f"at step {SAVE_EVERY}" in printed  # the previous complete one
        assert sorted(_curve(out))[-1] == 3 * SAVE_EVERY

        # LATEST naming a missing folder while checkpoints exist: an error, not step 0
        (out / "ckpt" / "LATEST").write_text("step-0999999")
        rc = main(_short_run(audio_dir, out, 4 * SAVE_EVERY))
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and "missing" in err[-1] and "LATEST" in err[-1], err
        # ...and with no checkpoint at all it is a fresh run
        fresh = tmp_path / "fresh"
        (fresh / "ckpt").mkdir(parents=True)
        (fresh / "ckpt" / "LATEST").write_text("step-0000010")
        assert latest_checkpoint(fresh) is None
        with pytest.raises(InputError):
            latest_checkpoint(out)
    finally:
        torch.set_num_threads(threads)
