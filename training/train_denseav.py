"""Train DenseAV (dense audio-visual similarity) from video and audio alone (accelerate).

No masks and no labels: each step pairs one frame of a clip with the clip's whole soundtrack and
contrasts it against the other clips of the batch (``foley.models.denseav.denseav_loss``).
Clips are decoded once into a cache (``CACHE/<split>/frames.npy`` (n, F, S, S, 3) uint8, ``F``
frames spread over the clip; ``waves.npy`` (n, N) float16; ``index.json``), then training reads
arrays. The model with the best validation retrieval (audio -> frame top-1 among
``batch_size`` clips, a label-free measure) is exported to ``OUT/model``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.config import DEFAULT_CONFIG, AVConfig
from training.config import add_config_arguments, config_from_args, opt, trainer_main


def build_cache(
    data: str | os.PathLike,
    split: str,
    cache: str | os.PathLike,
    cfg: AVConfig = DEFAULT_CONFIG,
    *,
    frames_per_clip: int = 6,
    limit: int | None = None,
) -> Path:
    """Decode ``split`` of ``data`` into ``cache/<split>`` (skipped when already complete)."""
    from foley.data.ego4d import read_metadata, split_path
    from foley.io import load_video

    out = Path(cache) / split
    index_path = out / "index.json"
    if index_path.is_file() and json.loads(index_path.read_text()).get("done"):
        return out
    records = read_metadata(split_path(data, split))[:limit]
    out.mkdir(parents=True, exist_ok=True)
    S, N = cfg.frame_size, cfg.samples_per_clip
    pick = np.linspace(0, cfg.frames_per_clip - 1, frames_per_clip).round().astype(int)
    frames = np.lib.format.open_memmap(
        out / "frames.npy", "w+", np.uint8, (len(records), frames_per_clip, S, S, 3)
    )
    waves = np.lib.format.open_memmap(out / "waves.npy", "w+", np.float16, (len(records), N))
    for i, rec in enumerate(tqdm(records, desc=f"DenseAV cache {split}", unit="clip")):
        video = load_video(rec.clip_path(data), cfg, max_seconds=cfg.clip_seconds + 1)
        f = video.frames[np.minimum(pick, len(video.frames) - 1)]
        frames[i] = f
        audio = video.audio if video.audio is not None else np.zeros(N, np.float32)
        waves[i] = np.pad(audio[:N], (0, max(0, N - audio[:N].size)))
    frames.flush()
    waves.flush()
    ids = [r.clip_stem for r in records]
    index_path.write_text(json.dumps({"clips": ids, "frames": pick.tolist(), "done": True}))
    return out


class CachedClips:
    """Memmapped view of one cached split."""

    def __init__(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        self.frames = np.load(folder / "frames.npy", mmap_mode="r")  # (n, F, S, S, 3)
        self.waves = np.load(folder / "waves.npy", mmap_mode="r")  # (n, N)

    def __len__(self) -> int:
        return len(self.waves)

    def batch(self, idx, frame_idx, flip=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(b, 3, S, S)`` frames in [0, 1] and ``(b, N)`` waves."""
        f = np.stack([self.frames[i, j] for i, j in zip(idx, frame_idx)])
        x = torch.from_numpy(f).permute(0, 3, 1, 2).float() / 255.0
        if flip is not None and flip.any():
            x[torch.from_numpy(flip)] = x[torch.from_numpy(flip)].flip(-1)
        w = torch.from_numpy(np.stack([self.waves[i] for i in idx]).astype(np.float32))
        return x, w


@torch.no_grad()
def retrieval_top1(model, clips: CachedClips, batch: int, device) -> dict:
    """Label-free validation: audio -> frame top-1 and InfoNCE loss within groups of
    ``batch`` clips (middle cached frame)."""
    from foley.models.denseav import denseav_loss

    model.eval()
    hits, losses, n = 0, [], 0
    mid = clips.frames.shape[1] // 2
    for lo in range(0, len(clips) - 1, batch):
        idx = list(range(lo, min(len(clips), lo + batch)))
        if len(idx) < 2:
            break
        x, w = clips.batch(idx, [mid] * len(idx))
        x, w = x.to(device), w.to(device)
        hits += int((model(x, w).argmax(1) == torch.arange(len(idx), device=device)).sum())
        losses.append(float(denseav_loss(model, x, w)[1]["nce"]) * len(idx))
        n += len(idx)
    model.train()
    return {"val_top1": hits / max(1, n), "val_nce": sum(losses) / max(1, n)}


@dataclass(frozen=True)
class DenseAVConfig:
    """Settings of ``foley train denseav`` (one field per command-line option)."""

    data: str = opt("", "Ego4D-Sounds / FoleyWorld folder", positional=True, required=True)
    out: str = opt("", "training folder", required=True, short="-o")
    cache: str = opt("", "decoded clip cache (default OUT/cache)")
    limit: int = opt(0, "clips per split (0: all)")
    frames_per_clip: int = opt(6, "frames cached per clip")
    steps: int = opt(3000)
    batch_size: int = opt(16)
    lr: float = opt(0.001)
    dim: int = opt(32)
    heads: int = opt(2)
    visual: str = opt("cnn", "visual backbone", choices=("cnn", "efficientnet"))
    input_size: int = opt(112)
    val_every: int = opt(250)
    max_minutes: float = opt(0.0, "stop (and export) after")
    threads: int = opt(0, "torch CPU threads (0: default)")
    seed: int = opt(0)
    cpu: bool = opt(False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, DenseAVConfig)


def run(args: DenseAVConfig | argparse.Namespace) -> int:
    args = config_from_args(DenseAVConfig, args)
    from foley.models.denseav import DenseAVModel, denseav_loss
    from training.common import start_run
    from training.loop import TrainLoop, cosine_schedule, draw_batch

    accelerator, out = start_run(args)
    cache = Path(args.cache or out / "cache")
    limit = args.limit or None
    with accelerator.main_process_first():
        kw = dict(frames_per_clip=args.frames_per_clip, limit=limit)
        train = CachedClips(build_cache(args.data, "train", cache, **kw))
        has_val = (Path(args.data) / "val.tsv").is_file()
        val = CachedClips(build_cache(args.data, "val", cache, **kw)) if has_val else train
    model = DenseAVModel(
        dim=args.dim, heads=args.heads, visual=args.visual, input_size=args.input_size
    )
    model.load_backbone_weights()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    sched = cosine_schedule(optim, args.steps, min(200, args.steps // 10))
    model, optim, sched = accelerator.prepare(model, optim, sched)

    def export(step: int) -> dict:
        """Validate; keep the best model (val top-1 retrieval) in OUT/model."""
        unwrapped = accelerator.unwrap_model(model)
        metrics = retrieval_top1(unwrapped, val, args.batch_size, accelerator.device)
        accelerator.print(f"step {step}: " + json.dumps(metrics))
        if metrics["val_top1"] > loop.state["best"] and accelerator.is_main_process:
            loop.state["best"] = metrics["val_top1"]
            unwrapped.save_pretrained(out / "model")
        return metrics

    loop = TrainLoop.validating(
        accelerator, args, desc="denseav", log_every=25, export=export, state={"best": -1.0}
    )
    model.train()
    for _ in loop:
        rng = loop.rng(args.seed)
        idx = draw_batch(rng, len(train), args.batch_size)
        frame_idx = rng.integers(0, train.frames.shape[1], len(idx))
        x, w = train.batch(idx, frame_idx, flip=rng.random(len(idx)) < 0.5)
        loss, parts = denseav_loss(model, x.to(accelerator.device), w.to(accelerator.device))
        loop.optimize(loss, optim, params, 1.0, sched)
        loop.end_step(loss=loss.item(), **parts)
    return 0


def main(argv: list[str] | None = None) -> int:
    return trainer_main(DenseAVConfig, run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
