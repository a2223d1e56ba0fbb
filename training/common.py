"""Shared training plumbing: accelerate set-up, resumable checkpoints, metric logs.

A training folder looks like::

    OUT/
      ckpt/step-000400/    accelerate state: models, optimizers, EMA, RNG (resume format)
      ckpt/LATEST          name of the newest complete checkpoint (replaced atomically)
      metrics.jsonl        one JSON object per logged step
      model/               export format: save_pretrained (config.json + safetensors)

A checkpoint only counts once ``LATEST`` names it, so a run killed while saving resumes from the
previous one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CKPT_DIR = "ckpt"
LATEST = "LATEST"
KILL_AT_STEP_ENV = "FOLEY_FAULT_KILL_AT_STEP"
"""Fault injection for the tests: a run with this variable set SIGKILLs itself right after the
metrics of that step are logged, a chosen point instead of a random wall-clock moment."""


def fault_point(step: int) -> None:
    """SIGKILL this process if ``FOLEY_FAULT_KILL_AT_STEP`` names ``step`` (tests only)."""
    target = os.environ.get(KILL_AT_STEP_ENV)
    if target is not None and target.strip() == str(step):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def make_accelerator(out_dir: str | os.PathLike, seed: int = 0, *, cpu: bool = False, **kwargs):
    """An ``Accelerator`` writing into ``out_dir``, seeded on every process."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(
        project_config=ProjectConfiguration(project_dir=str(out)), cpu=cpu, **kwargs
    )
    set_seed(seed, device_specific=True)
    return accelerator


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a training folder, or None."""
    pointer = Path(out_dir) / CKPT_DIR / LATEST
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if path.is_dir() else None


def save_checkpoint(
    accelerator, out_dir: str | os.PathLike, step: int, extra: dict | None = None, keep: int = 2
) -> Path:
    """Save the accelerate state (models, optimizers, registered EMA, RNG) and the step.

    Every process must call it (accelerate gathers); only the main process writes the pointer.
    """
    ckpt_root = Path(out_dir) / CKPT_DIR
    path = ckpt_root / f"step-{step:07d}"
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        (path / "trainer_state.json").write_text(json.dumps({"step": step, **(extra or {})}))
        tmp = ckpt_root / (LATEST + ".tmp")
        tmp.write_text(path.name)
        os.replace(tmp, ckpt_root / LATEST)
        old = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir() and p != path)
        for stale in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def resume(accelerator, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Load the newest checkpoint if there is one; returns its trainer state (step 0 if none)."""
    path = latest_checkpoint(out_dir)
    if path is None:
        return {"step": 0}
    accelerator.load_state(str(path))
    state = json.loads((path / "trainer_state.json").read_text())
    accelerator.print(f"resumed from {path} at step {state['step']}")
    return state


class MetricLog:
    """Appends one JSON line per call to ``OUT/metrics.jsonl`` (main process only)."""

    def __init__(self, accelerator, out_dir: str | os.PathLike, name: str = "metrics.jsonl"):
        self.accelerator = accelerator
        self.path = Path(out_dir) / name
        self.start = time.time()

    def __call__(self, step: int, **values: float) -> None:
        if not self.accelerator.is_main_process:
            return
        row = {"step": step, "time": round(time.time() - self.start, 3), **values}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        fault_point(step)


def read_metrics(out_dir: str | os.PathLike, name: str = "metrics.jsonl") -> list[dict]:
    path = Path(out_dir) / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cycle(loader) -> Iterator:
    """Endless iteration over a DataLoader (a new epoch, and a new shuffle, each pass)."""
    epoch = 0
    while True:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1
