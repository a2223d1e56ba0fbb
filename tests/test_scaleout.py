"""Scale-out: a trainer and ``foley index build`` run unchanged under ``accelerate launch`` with
2 CPU processes (gloo, on a machine without a GPU).  The ranks see different data, the model and
checkpoints are written once, and the sharded index equals the one a single process builds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from foley.cli.main import main
from foley.io import save_audio
from training.common import latest_checkpoint, read_metrics

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
pytestmark = pytest.mark.skipif(not Path(ACCELERATE).exists(), reason="accelerate CLI missing")
TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*argv: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes N ARGV`` on this machine, 1 thread each.

    ``--multi_gpu`` is what starts N processes (torchrun); without a GPU they join a gloo group
    on the CPU (accelerate 1.x's ``--cpu`` flag alone launches a single process).
    """
    cmd = [
        ACCELERATE, "launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()), *argv,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# A thin wrapper around the real trainer: it records (without changing) the batches each rank
# draws and how often each rank exports the model.
RECORDER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    from pathlib import Path

    import training.train_codec as tc
    from foley.cli.main import main

    seen, exports = [], []
    real_sample, real_export = tc.sample_crops, tc.export

    def sample_crops(*args, **kwargs):
        batch = real_sample(*args, **kwargs)
        seen.append(hashlib.sha1(batch.numpy().tobytes()).hexdigest())
        return batch

    def export(*args, **kwargs):
        exports.append(1)
        return real_export(*args, **kwargs)

    tc.sample_crops, tc.export = sample_crops, export
    rc = main(sys.argv[1:])
    rank, world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    out = Path(sys.argv[sys.argv.index("--out") + 1])
    record = {"world": int(world), "batches": seen, "exports": len(exports)}
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    sys.exit(rc)
    """
)


def test_codec_trainer_on_two_processes(tmp_path):
    data = tmp_path / "audio"
    rng = np.random.default_rng(0)
    for i in range(4):
        save_audio(data / f"clip{i}.wav", 0.2 * rng.standard_normal(8000).astype(np.float32))
    script = tmp_path / "record_codec.py"
    script.write_text(RECORDER)
    out, steps = tmp_path / "run", 6
    launch(
        str(script), "train", "codec", "--data", str(data), "--out", str(out), "--cpu",
        "--n-filters", "2", "--lstm-layers", "0", "--latent-dim", "4", "--disc-filters", "2",
        "--batch-size", "2", "--crop-seconds", "0.25", "--adv-start", "1000", "--log-every", "1",
        "--stats-clips", "2", "--steps", str(steps), "--save-every", "3",
    )  # fmt: skip
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert all(len(r["batches"]) == steps for r in ranks)
    # the ranks see different data at every step
    assert all(a != b for a, b in zip(ranks[0]["batches"], ranks[1]["batches"]))
    # saved once: only the main process exports; one checkpoint per save, one metric row a step
    assert ranks[0]["exports"] == 2 and ranks[1]["exports"] == 0
    assert (out / "model" / "config.json").is_file()
    assert sorted(p.name for p in (out / "ckpt").glob("step-*")) == ["step-0000003", "step-0000006"]
    state = latest_checkpoint(out)
    assert state.name == "step-0000006"
    # one copy of each prepared model (codec, discriminator), an RNG state per rank
    assert sorted(p.name for p in state.glob("model*")) == [
        "model.safetensors",
        "model_1.safetensors",
    ]
    assert len(list(state.glob("random_states_*.pkl"))) == 2
    assert [row["step"] for row in read_metrics(out) if "mel" in row] == list(range(1, steps + 1))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    from foley.data.foleyworld.generate import generate_dataset
    from foley.data.foleyworld.scene import FoleyWorldSettings
    from foley.models.mc3 import MC3Model
    from tests.test_index_cli import TINY

    root = tmp_path_factory.mktemp("scaleout_index")
    settings = FoleyWorldSettings(videos=5, clips_per_video=2, seed=5)
    generate_dataset(root / "data", settings, progress=False)
    torch.manual_seed(0)
    MC3Model(**TINY).save_pretrained(root / "mc3")
    return {"root": root, "data": root / "data", "mc3": root / "mc3"}


def test_index_build_sharded_across_processes(world, tmp_path, capsys):
    from retrieval_index import ClipIndex

    common = ["--data", str(world["data"]), "--model", str(world["mc3"]), "--batch-size", "2"]
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main(["index", "build", *common, "--out", str(single), "--quiet"]) == 0
    proc = launch("-m", "foley.cli.main", "index", "build", *common, "--out", str(sharded))
    # each process embedded its own, disjoint share of the clips
    lines = [line for line in proc.stdout.splitlines() if line.startswith("process ")]
    assert sorted(line.split(":")[0] for line in lines) == ["process 0", "process 1"], proc.stdout
    counts = [int(line.split("embedded ")[1].split()[0]) for line in lines]
    assert proc.stdout.count("indexed ") == 1  # written once, by the main process
    a, b = ClipIndex.open(single), ClipIndex.open(sharded)
    assert len(a) == len(b) == sum(counts) > 2 and min(counts) > 0 and a.model_id == b.model_id
    queries = np.random.default_rng(0).standard_normal((4, a.dim)).astype(np.float32)
    hits_a, hits_b = a.search(queries, len(a)), b.search(queries, len(b))
    for row_a, row_b in zip(hits_a, hits_b):
        assert [h.id for h in row_a] == [h.id for h in row_b]
        np.testing.assert_allclose([h.score for h in row_a], [h.score for h in row_b], atol=1e-5)
        assert [h.metadata for h in row_a] == [h.metadata for h in row_b]
