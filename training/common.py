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


def start_run(cfg) -> tuple[Any, Path]:
    """(accelerator, training folder) of a trainer config with ``out``, ``seed``, ``cpu`` and
    ``threads`` (torch CPU threads; 0: torch's default)."""
    if getattr(cfg, "threads", 0):
        import torch

        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    return make_accelerator(out, cfg.seed, cpu=cfg.cpu), out


def _complete(path: Path) -> bool:
    """Whether a checkpoint folder holds everything a resume reads (a run killed while saving,
    or a damaged copy, leaves one that does not)."""
    state = path / "trainer_state.json"
    if not state.is_file():
        return False
    try:
        json.loads(state.read_text())["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(p.stat().st_size > 0 for p in path.glob("*.safetensors")) or any(
        p.stat().st_size > 0 for p in path.glob("*.bin")
    )


def checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """Every checkpoint folder of a training folder, newest first (LATEST's first)."""
    root = Path(out_dir) / CKPT_DIR
    found = sorted((p for p in root.glob("step-*") if p.is_dir()), reverse=True)
    pointer = root / LATEST
    if pointer.is_file():
        named = root / pointer.read_text().strip()
        if named in found:
            found.remove(named)
            found.insert(0, named)
    return found


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a training folder, or None when there is none.

    A LATEST that names a missing folder is an error (``InputError``) when other checkpoints
    exist, since restarting from step 0 would silently throw them away; without any checkpoint
    it means a fresh run.
    """
    from foley.errors import InputError

    root = Path(out_dir) / CKPT_DIR
    pointer = root / LATEST
    found = checkpoints(out_dir)
    if pointer.is_file():
        name = pointer.read_text().strip()
        if not (root / name).is_dir() and found:
            raise InputError(
                f"{pointer}: names {name or 'nothing'}, which is missing, while "
                f"{', '.join(p.name for p in found)} exist; point LATEST at one of them"
            )
    for path in found:
        if _complete(path):
            return path
    return None


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
    """Load the newest complete checkpoint; returns its trainer state (step 0 if none).

    A checkpoint that fails to load (truncated, corrupt) is skipped with a warning and the
    previous one is tried, newest first.
    """
    latest_checkpoint(out_dir)  # a LATEST pointing nowhere is an error
    for path in checkpoints(out_dir):
        if not _complete(path):
            accelerator.print(f"warning: skipping incomplete checkpoint {path}")
            continue
        try:
            accelerator.load_state(str(path))
        except Exception as err:  # noqa: BLE001 - any failure to read: try the previous one
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            accelerator.print(f"warning: skipping broken checkpoint {path} ({first})")
            continue
        state = json.loads((path / "trainer_state.json").read_text())
        accelerator.print(f"resumed from {path} at step {state['step']}")
        return state
    return {"step": 0}


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
