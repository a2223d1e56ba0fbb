"""Train MC3 (audio/video/narration embedding) or the plain audio-video contrastive ablation.

    foley train mc3 --data DATA --out runs/mc3 [--objective mc3|av] [--preset small]

Clips are decoded once into a feature cache (:mod:`training.mc3_cache`: frames at the video
tower's size and stride, log-mels, frozen MiniLM narration features); the loop never touches mp4.
The run resumes from ``OUT/ckpt`` if interrupted, logs to ``OUT/metrics.jsonl`` and exports the
model with ``save_pretrained`` to ``OUT/model``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from foley.errors import InputError
from foley.models.mc3 import MC3Model
from foley.models.mc3_losses import MC3Objective
from training.common import make_accelerator
from training.config import add_config_arguments, config_from_args, opt
from training.loop import TrainLoop, cosine_schedule
from training.mc3_cache import FeatureCache, build_cache

# Model sizes: "small" trains in minutes on a laptop CPU; "base" is the default MC3Model.
PRESETS: dict[str, dict] = {
    "tiny": dict(
        audio_channels=(8, 16, 32),
        video_dim=32,
        video_channels=(8, 16, 32),
        video_temporal_layers=1,
        video_frame_size=48,
        video_frame_stride=4,
    ),
    "small": dict(
        audio_channels=(16, 32, 64, 128),
        video_dim=128,
        video_channels=(16, 32, 64, 128),
        video_temporal_layers=1,
        video_frame_size=64,
        video_frame_stride=4,
    ),
    "base": dict(),
}


@dataclass(frozen=True)
class MC3Config:
    """Settings of ``foley train mc3`` (one field per command-line option)."""

    data: str = opt("", "Ego4D-Sounds / FoleyWorld folder", required=True)
    out: str = opt("", "training folder (resumed if it exists)", required=True)
    split: str = opt("train", "split to train on (default train)")
    objective: str = opt(
        "mc3",
        "mc3: a-v, a-t, v-t InfoNCE + consensus; av: audio-video InfoNCE only (ablation)",
        choices=("mc3", "av"),
    )
    preset: str = opt("small", choices=("base", "small", "tiny"))
    frame_size: int | None = opt(None, "video tower frame size (preset's)")
    frame_stride: int | None = opt(None, "use every k-th frame (preset's)")
    epochs: int = opt(30)
    warmup_epochs: int = opt(10, "contrastive-only epochs")
    consensus_weight: float = opt(1.0)
    batch_size: int = opt(32)
    lr: float = opt(0.001)
    weight_decay: float = opt(0.01)
    no_augment: bool = opt(False, "no gain/flip/colour jitter")
    max_clips: int | None = opt(None, "train on the first N clips only")
    save_every: int = opt(500, "checkpoint every N steps")
    workers: int = opt(0, "decoding workers for the cache")
    cache: str | None = opt(None, "feature cache folder (default OUT/cache)")
    seed: int = opt(0)
    cpu: bool = opt(False, "train on CPU even if a GPU exists")
    quiet: bool = opt(False, "no progress bars")
    threads: int | None = opt(None, "CPU threads for torch (1 is fastest on a busy machine)")

    @property
    def augment(self) -> bool:
        return not self.no_augment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, MC3Config)


def model_kwargs(args: argparse.Namespace) -> dict:
    kwargs = dict(PRESETS[args.preset])
    if args.frame_size:
        kwargs["video_frame_size"] = args.frame_size
    if args.frame_stride:
        kwargs["video_frame_stride"] = args.frame_stride
    return kwargs


def objective_of(args: argparse.Namespace) -> MC3Objective:
    if args.objective == "av":
        return MC3Objective.plain_av()
    return MC3Objective(consensus_weight=args.consensus_weight, warmup_epochs=args.warmup_epochs)


def _check_run_config(out: Path, config: dict) -> None:
    """A resumed run must have the same model and objective as the one it continues."""
    path = out / "train_config.json"
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in set(before) | set(config) if before.get(k) != config.get(k))
        if changed:
            raise InputError(
                f"{out} holds a run with other settings ({', '.join(changed)}); "
                "use a new --out or the same settings to resume"
            )
    else:
        path.write_text(json.dumps(config, indent=2, sort_keys=True))


def _batch(cache: FeatureCache, idx: torch.Tensor, device: torch.device) -> dict:
    rows = idx.sort().values.numpy()
    return {
        "mel": torch.from_numpy(cache.mel[rows].astype("float32")).to(device),
        # (b, T', S, S, 3) uint8 -> (b, T', 3, S, S) float in [0, 1]
        "frames": torch.from_numpy(cache.frames[rows]).to(device).permute(0, 1, 4, 2, 3) / 255.0,
        "text": torch.from_numpy(cache.text_features[rows]).to(device),
    }


def augment(batch: dict, generator: torch.Generator) -> dict:
    """Cheap label-preserving jitter against memorising a small set (timing is kept intact).

    Audio: a random gain per clip, +-6 dB (a constant shift of the log-mel).  Frames: random
    horizontal flip and a per-clip, per-channel brightness factor in [0.8, 1.2].
    """
    mel, frames = batch["mel"], batch["frames"]
    b = mel.shape[0]

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(mel.device)

    gain_db = (uniform(b, 1, 1) * 2 - 1) * 6.0
    mel = mel + gain_db * (math.log(10.0) / 10.0)  # power gain in natural-log units
    flip = uniform(b) < 0.5
    frames = torch.where(flip[:, None, None, None, None], frames.flip(-1), frames)
    colour = 0.8 + 0.4 * uniform(b, 1, 3, 1, 1)
    frames = (frames * colour).clamp(0.0, 1.0)
    return {**batch, "mel": mel, "frames": frames}


def run(args: MC3Config | argparse.Namespace) -> int:
    args = config_from_args(MC3Config, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kwargs = model_kwargs(args)
    objective = objective_of(args)
    _check_run_config(
        out,
        {
            "model": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
            "objective": args.objective,
            "consensus_weight": objective.consensus_weight,
            "warmup_epochs": objective.warmup_epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "split": args.split,
            "max_clips": args.max_clips,
            "augment": args.augment,
            "seed": args.seed,
        },
    )
    accelerator = make_accelerator(out, seed=args.seed, cpu=args.cpu)
    model = MC3Model(**kwargs)
    with accelerator.main_process_first():  # one process builds the cache, the others read it
        cache = build_cache(
            args.data,
            args.split,
            model,
            Path(args.cache) if args.cache else out / "cache",
            max_clips=args.max_clips,
            workers=args.workers,
            progress=not args.quiet and accelerator.is_main_process,
        )
    n = len(cache)
    batch_size = min(args.batch_size, n)
    if batch_size < 2:
        raise InputError(f"{args.data}: need at least 2 clips in split {args.split!r}, got {n}")
    steps_per_epoch = n // batch_size
    total_steps = steps_per_epoch * args.epochs

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warmup = max(1, min(100, total_steps // 20))
    scheduler = cosine_schedule(optimizer, total_steps, warmup)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    def export(step: int) -> None:
        if accelerator.is_main_process:
            accelerator.unwrap_model(model).save_pretrained(out / "model")
            accelerator.print(f"MC3 ({args.objective}) saved to {out / 'model'}")

    loop = TrainLoop(
        accelerator,
        out,
        total_steps,
        desc=f"train {args.objective}",
        log_every=10,
        save_every=args.save_every,
        export=export,  # at the last step only
        show_bar=not args.quiet,
    )
    need = objective.modalities
    model.train()
    for step in loop:
        epoch, pos = divmod(step, steps_per_epoch)
        # the permutation depends only on (seed, epoch): a resumed run sees the same batches
        perm = torch.randperm(
            n, generator=torch.Generator().manual_seed(args.seed * 100_003 + epoch)
        )
        rows = perm[pos * batch_size : (pos + 1) * batch_size]
        # DDP: each process takes its share of the batch (one process: the whole batch)
        rows = rows[accelerator.process_index :: accelerator.num_processes]
        batch = _batch(cache, rows, accelerator.device)
        if args.augment:
            batch = augment(batch, torch.Generator().manual_seed(args.seed * 100_003 + step))
        emb = model(
            frames=batch["frames"] if "video" in need else None,
            text_features=batch["text"] if "text" in need else None,
            mel=batch["mel"] if "audio" in need else None,
            frames_prepared=True,
        )
        scale = accelerator.unwrap_model(model).temperature_scale
        loss, logs = objective(emb, scale, epoch)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        loop.end_step(
            epoch=epoch, lr=scheduler.get_last_lr()[0], scale=float(scale.detach()), **logs
        )
    return 0
