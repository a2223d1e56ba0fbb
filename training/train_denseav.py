"""Train DenseAV (dense audio-visual similarity) from video and audio alone (accelerate).

No masks and no labels: each step pairs one frame of a clip with the clip's whole soundtrack and
contrasts it against the other clips of the batch (``foley.models.denseav.denseav_loss``).
Clips are decoded once into a :mod:`training.store` store per split (:func:`build_features`:
the frozen EfficientNet's maps of ``F`` frames per clip, or the frames for the trained CNN; the
log-mels; the voiced steps), so that a step runs only the trained layers. The model with the
best label-free validation (``--select``: audio -> frame top-1 among ``batch_size`` clips, or
the InfoNCE loss; :func:`retrieval_top1` also reports both within one video and across videos)
is exported to ``OUT/model``; ``--patience`` stops early.

Tried against the per-video shortcut (each video's background and ambient bed are its own, so
clips of different videos are told apart by them alone; docs/BENCHMARKS.md, DenseAV, session 9:
none of these made validation or the heatmaps better on FoleyWorld): ``--clips-per-video K``
builds each batch from ``batch_size / K`` videos with ``K`` clips each
(:func:`draw_video_batch`; the video is metadata, not a label), so most negatives share the
positive's background and ambience; ``--augment`` shifts the stored maps and the audio in time
and level (:func:`augment`); the model's ``center_audio``, ``center_visual`` and
``visual_gate`` options; ``--weight-decay``; ``--frames loudest`` stores, per clip, the frames
nearest its loudest audio steps (:func:`loud_frames`, from the clip's own waveform: the contacts)
instead of frames spread over the clip.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from foley.errors import InputError
from training.config import add_config_arguments, config_from_args, opt, trainer_main
from training.store import FeatureStore, StoreWriter


def feature_settings(model, data: str | os.PathLike, split: str, frames_per_clip: int, limit):
    """The store's invalidation key: the source split, the clip count and what the stored
    inputs depend on (AV config, input size, the frozen backbone, the silence threshold)."""
    from foley.data.ego4d import split_path

    tsv = Path(split_path(data, split))
    c = model.config
    return {
        "store": "denseav-inputs-1",
        "split": str(tsv.resolve()),
        "tsv": [tsv.stat().st_size, tsv.stat().st_mtime_ns],
        "frames_per_clip": int(frames_per_clip),
        "limit": limit,
        "visual": c.visual,
        "input_size": int(c.input_size),
        "audio_steps": model.audio_steps(1000),  # the time stride of the audio encoder
        "silence_db": float(c.silence_db),
        "av": model.av.to_dict(),
    }


FRAME_CHOICES = ("spread", "loudest")


def loud_frames(
    wave: np.ndarray,
    frame_times: np.ndarray,
    k: int,
    *,
    sample_rate: int,
    hop: int = 160,
    min_gap: float = 0.25,
) -> np.ndarray:
    """The ``k`` frames nearest the clip's loudest audio, from its own waveform alone (no labels):
    the energy (dB) of each ``hop``-sample audio step goes to the frame nearest in time
    (``frame_times``, seconds); frames are taken by their loudest step, greedily, at least
    ``min_gap`` seconds apart (topped up with the next loudest if too few are). Sorted indices
    into ``frame_times``."""
    frame_times = np.asarray(frame_times, np.float64)
    x = np.asarray(wave, np.float64)
    x = np.pad(x, (0, -len(x) % hop if len(x) else hop))
    db = 10.0 * np.log10((x.reshape(-1, hop) ** 2).mean(1) + 1e-10)
    centre = (np.arange(len(db)) + 0.5) * hop / sample_rate
    nearest = np.abs(centre[:, None] - frame_times[None]).argmin(1)
    score = np.full(len(frame_times), -np.inf)
    np.maximum.at(score, nearest, db)
    order = np.argsort(-score, kind="stable")
    picked: list[int] = []
    for j in order:
        if len(picked) < k and all(abs(frame_times[j] - frame_times[i]) >= min_gap for i in picked):
            picked.append(int(j))
    picked += [int(j) for j in order if j not in picked][: k - len(picked)]
    return np.sort(np.array(picked[:k], dtype=np.int64))


@torch.no_grad()
def build_features(
    model,
    data: str | os.PathLike,
    split: str,
    cache: str | os.PathLike,
    *,
    frames_per_clip: int = 4,
    limit: int | None = None,
    batch_size: int = 16,
    decoded: str | os.PathLike | None = None,
    frames: str = "spread",
) -> FeatureStore:
    """Decode ``split`` of ``data`` once and store what a training step reads (a
    :mod:`training.store` store at ``cache/<split>-<visual>-<input_size>``, resumable):

    - ``visual`` (n, F, 112, h, w) float16: the frozen EfficientNet's maps of ``F`` frames spread
      over the clip, or (n, F, 3, S, S) uint8 frames for the trained CNN;
    - ``mel`` (n, n_mels, M) float16: :meth:`DenseAVModel.audio_input` of the clip's audio;
    - ``voiced`` (n, Ta) bool: :meth:`DenseAVModel.voiced` of the clip's audio.

    ``decoded``: read the clips from a folder the first version of this trainer decoded
    (``<split>/frames.npy`` (n, 6, S, S, 3) uint8 and ``waves.npy`` (n, N)) instead of the mp4s.

    ``frames``: ``"spread"`` (``F`` frames evenly over the clip, the same for every clip) or
    ``"loudest"`` (per clip, the ``F`` available frames nearest its loudest audio steps,
    :func:`loud_frames`; label-free); a loudest store lives at ``...-loudest`` and also holds
    ``frame_index`` (n, F) int16, the chosen frames' indices in the clip (at ``fps``).
    """
    if frames not in FRAME_CHOICES:
        raise InputError(f"frames must be one of {FRAME_CHOICES}, not {frames!r}")
    from foley.data.ego4d import ClipDataset

    c = model.config
    loudest = frames == "loudest"
    path = Path(cache) / f"{split}-{c.visual}-{c.input_size}{'-loudest' if loudest else ''}"
    settings = feature_settings(model, data, split, frames_per_clip, limit)
    settings["decoded"] = str((Path(decoded) / split).resolve()) if decoded else None
    if loudest:  # spread stores keep their key (and stay valid)
        settings["frames"] = frames
    store = FeatureStore.open(path, settings)
    if store is not None:
        return store
    if decoded:
        src = Path(decoded) / split
        all_frames = np.load(src / "frames.npy", mmap_mode="r")  # (n, F0, S, S, 3) uint8
        all_waves = np.load(src / "waves.npy", mmap_mode="r")  # (n, N) float16
        index = json.loads((src / "index.json").read_text())
        ids = index["clips"]
        pick = np.linspace(0, all_frames.shape[1] - 1, frames_per_clip).round().astype(int)
        # the decoded frames' indices in the clip (the first trainer spread them over it)
        source = np.asarray(
            index.get("frames")
            or np.linspace(0, model.av.frames_per_clip - 1, all_frames.shape[1]).round()
        ).astype(int)

        def load(i: int) -> tuple[np.ndarray, np.ndarray]:
            return all_frames[i], all_waves[i].astype(np.float32)
    else:
        ds = ClipDataset(data, split, model.av)
        ids = [r.clip_stem for r in ds.records]
        pick = np.linspace(0, model.av.frames_per_clip - 1, frames_per_clip).round().astype(int)
        source = np.arange(model.av.frames_per_clip)
        load = ds.load_clip
    n = min(len(ids), limit or len(ids))
    if n == 0:
        raise InputError(f"{data}: split {split!r} has no clips")
    ids = ids[:n]
    writer = StoreWriter(
        path,
        settings,
        n,
        resume=True,
        meta={"clips": ids, "frames": frames if loudest else pick.tolist()},
    )
    mel_shape = tuple(model.audio_input(torch.zeros(1, model.av.samples_per_clip)).shape[1:])
    steps = model.audio_steps(mel_shape[-1])
    S = model.av.frame_size
    if model.frozen_visual:
        vis_shape = tuple(model.visual_input(torch.zeros(1, 3, S, S)).shape[1:])
        visual = writer.array("visual", np.float16, (n, frames_per_clip, *vis_shape))
    else:
        visual = writer.array("visual", np.uint8, (n, frames_per_clip, 3, S, S))
    mel = writer.array("mel", np.float16, (n, *mel_shape))
    voiced = writer.array("voiced", np.bool_, (n, steps))
    frame_index = writer.array("frame_index", np.int16, (n, frames_per_clip)) if loudest else None
    times = source / model.av.fps
    model.eval()
    bar = tqdm(total=n, initial=writer.rows_done, desc=f"DenseAV features {split}", unit="clip")
    for lo in range(writer.rows_done, n, batch_size):
        hi = min(n, lo + batch_size)
        clips, waves = zip(*(load(i) for i in range(lo, hi)))
        if loudest:
            sr = model.av.sample_rate
            picks = [loud_frames(w, times, frames_per_clip, sample_rate=sr) for w in waves]
            frame_index[lo:hi] = source[np.stack(picks)]
        else:
            picks = [pick] * len(clips)
        frames = np.stack([f[p] for f, p in zip(clips, picks)])  # (b, F, S, S, 3) uint8
        if model.frozen_visual:
            x = torch.from_numpy(frames).flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
            visual[lo:hi] = model.visual_input(x).unflatten(0, frames.shape[:2]).numpy()
        else:
            visual[lo:hi] = frames.transpose(0, 1, 4, 2, 3)
        wave = torch.from_numpy(np.stack(waves))  # (b, N) float32
        mel[lo:hi] = model.audio_input(wave).numpy()
        voiced[lo:hi] = model.voiced(wave, steps).numpy()
        for array in (visual, mel, voiced) + ((frame_index,) if loudest else ()):
            array.flush()
        writer.checkpoint(hi)
        bar.update(hi - lo)
    bar.close()
    return writer.commit()


def clip_videos(data: str | os.PathLike, split: str, clips: list[str]) -> np.ndarray:
    """``(n,)`` int: the video of each of ``clips`` (clip stems), numbered in order of first
    appearance, from the split's ``video_uid`` column (a stem the TSV lacks is its own video)."""
    from foley.data.ego4d import read_metadata, split_path

    uid = {r.clip_stem: r.video_uid for r in read_metadata(split_path(data, split))}
    number: dict[str, int] = {}
    return np.array([number.setdefault(uid.get(c, "clip:" + c), len(number)) for c in clips])


def draw_video_batch(
    rng: np.random.Generator, videos: np.ndarray, batch_size: int, clips_per_video: int
) -> np.ndarray:
    """Sorted indices of ``batch_size`` distinct clips from ``batch_size // clips_per_video``
    videos (``videos (n,)``: each clip's video), ``clips_per_video`` clips from each (all of a
    shorter video's); clips of other videos fill what is left."""
    n = len(videos)
    size = min(batch_size, n)
    order = rng.permutation(np.unique(videos))
    chosen: list[int] = []
    for v in order[: max(1, size // max(1, clips_per_video))]:
        members = np.flatnonzero(videos == v)
        chosen += rng.choice(members, min(clips_per_video, len(members)), replace=False).tolist()
    chosen = chosen[:size]
    if len(chosen) < size:
        rest = np.setdiff1d(np.arange(n), chosen)
        chosen += rng.choice(rest, size - len(chosen), replace=False).tolist()
    return np.sort(np.asarray(chosen))


def augment(
    rng: np.random.Generator,
    visual: torch.Tensor,
    mel: torch.Tensor,
    voiced: torch.Tensor,
    *,
    shift: float = 0.15,
    gain_db: float = 6.0,
    time_stride: int = 8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Label-free augmentation of stored inputs, per clip: ``visual (b, C, h, w)`` shifted by up
    to ``shift`` of its side in each direction (edges repeated); ``mel (b, n_mels, M)`` (from
    :meth:`DenseAVModel.audio_input`: natural log of power / 5) raised by a gain in
    [-``gain_db``, ``gain_db``] dB and rolled in time by whole audio steps (``time_stride`` mel
    frames), with ``voiced (b, Ta)`` rolled alike."""
    b, _, h, w = visual.shape
    s = int(round(shift * h))
    if s > 0:
        pad = F.pad(visual, (s, s, s, s), mode="replicate")
        dy, dx = rng.integers(0, 2 * s + 1, (2, b))
        visual = torch.stack(
            [pad[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx))]
        )
    gain = torch.from_numpy(rng.uniform(-gain_db, gain_db, b)).float()
    mel = mel + (gain * math.log(10.0) / 50.0)[:, None, None]  # dB -> ln power -> / 5
    steps = rng.integers(0, voiced.shape[1], b)
    mel = torch.stack([m.roll(int(k) * time_stride, -1) for m, k in zip(mel, steps)])
    voiced = torch.stack([v.roll(int(k), -1) for v, k in zip(voiced, steps)])
    return visual, mel, voiced


class StoredClips:
    """A batch of stored inputs: what :func:`step_loss` takes."""

    def __init__(self, store: FeatureStore, videos: np.ndarray | None = None) -> None:
        self.visual = store["visual"]  # (n, F, ...) float16 maps or uint8 frames
        self.mel = store["mel"]  # (n, n_mels, M) float16
        self.voiced = store["voiced"]  # (n, Ta) bool
        self.frames_per_clip = self.visual.shape[1]
        # (n,) the video of each clip (metadata, not a label); None: every clip its own
        self.videos = np.arange(len(self.mel)) if videos is None else np.asarray(videos)

    def __len__(self) -> int:
        return len(self.mel)

    def batch(self, idx, frame_idx, flip=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``visual`` (b, ...) float32 (frames in [0, 1]), ``mel`` (b, n_mels, M), ``voiced``
        (b, Ta); ``flip`` (b,) bool mirrors those clips' frames (or maps) left to right."""
        v = torch.from_numpy(np.stack([self.visual[i, j] for i, j in zip(idx, frame_idx)]))
        v = v.float() / 255.0 if v.dtype == torch.uint8 else v.float()
        if flip is not None and flip.any():
            f = torch.from_numpy(np.asarray(flip))
            v[f] = v[f].flip(-1)
        mel = torch.from_numpy(np.stack([self.mel[i] for i in idx]).astype(np.float32))
        voiced = torch.from_numpy(np.stack([self.voiced[i] for i in idx]))
        return v, mel, voiced


def step_loss(model, visual: torch.Tensor, mel: torch.Tensor, voiced: torch.Tensor, weights=None):
    """:func:`~foley.models.denseav.denseav_loss` on stored inputs: only the trained layers
    run (the frozen backbone and the log-mel were computed once)."""
    from foley.models.denseav import contrastive_loss

    if not model.frozen_visual:
        visual = model.visual_input(visual)  # resize only
    audio = model.project_audio(mel)
    return contrastive_loss(model, model.project_visual(visual), audio, voiced, weights)


@torch.no_grad()
def retrieval_top1(model, clips: StoredClips, batch: int, device) -> dict:
    """Label-free validation: audio -> frame top-1 and InfoNCE loss (middle stored frame)
    within groups of clips: ``batch`` consecutive clips (``val_top1``, ``val_nce``); the clips
    of one video (``*_within``: same background and ambience, only the action differs); one
    clip per video, ``batch`` videos at most (``*_across``)."""
    n, videos = len(clips), clips.videos
    consecutive = [list(range(lo, min(n, lo + batch))) for lo in range(0, n, batch)]
    within = [np.flatnonzero(videos == v).tolist() for v in np.unique(videos)]
    across = []
    for j in range(max(len(g) for g in within)):
        column = [g[j] for g in within if j < len(g)]
        across += [column[lo : lo + batch] for lo in range(0, len(column), batch)]
    metrics = {}
    model.eval()
    for suffix, groups in (("", consecutive), ("_within", within), ("_across", across)):
        top1, nce = _group_retrieval(model, clips, groups, device)
        metrics.update({f"val_top1{suffix}": top1, f"val_nce{suffix}": nce})
    model.train()
    return metrics


def _group_retrieval(model, clips: StoredClips, groups: list[list[int]], device):
    """(top-1, mean InfoNCE) of audio -> frame retrieval within each group of 2+ clips."""
    from foley.models.denseav import aggregate, contrastive_loss, similarity_volume

    hits, loss, n = 0, 0.0, 0
    mid = clips.frames_per_clip // 2
    for idx in (g for g in groups if len(g) >= 2):
        v, mel, voiced = (t.to(device) for t in clips.batch(idx, [mid] * len(idx)))
        if not model.frozen_visual:
            v = model.visual_input(v)
        audio, visual = model.project_audio(mel), model.project_visual(v)
        scores = aggregate(similarity_volume(audio, visual), voiced)  # (b, b)
        hits += int((scores.argmax(1) == torch.arange(len(idx), device=device)).sum())
        loss += contrastive_loss(model, visual, audio, voiced)[1]["nce"] * len(idx)
        n += len(idx)
    return hits / max(1, n), loss / max(1, n)


@dataclass(frozen=True)
class DenseAVConfig:
    """Settings of ``foley train denseav`` (one field per command-line option)."""

    data: str = opt("", "Ego4D-Sounds / FoleyWorld folder", positional=True, required=True)
    out: str = opt("", "training folder", required=True, short="-o")
    cache: str = opt("", "stored inputs (default OUT/cache)")
    decoded: str = opt("", "read clips from the first trainer's decoded cache (not the mp4s)")
    limit: int = opt(0, "clips per split (0: all)")
    frames_per_clip: int = opt(4, "frames stored per clip")
    frames: str = opt(
        "spread",
        "which frames: spread over the clip or at its loudest audio",
        choices=FRAME_CHOICES,
    )
    steps: int = opt(3000)
    batch_size: int = opt(16)
    lr: float = opt(0.001)
    dim: int = opt(32)
    heads: int = opt(2)
    visual: str = opt("cnn", "visual backbone", choices=("cnn", "efficientnet"))
    input_size: int = opt(112)
    audio_encoder: str = opt("conv1d", "log-mel encoder", choices=("conv1d", "cnn2d"))
    audio_channels: tuple[int, ...] = opt((64, 96, 128))
    raw_features: bool = opt(False, "no per-head L2 normalisation (the collapsed first runs)")
    center_audio: bool = opt(False, "each mel band minus its median over the clip (no bed)")
    center_visual: bool = opt(False, "the visual maps minus their mean over space")
    visual_gate: bool = opt(False, "scale visual features by distance from the frame's mean")
    clips_per_video: int = opt(0, "batches of batch-size/K videos x K clips (0: any clips)")
    augment: bool = opt(False, "shift the stored maps, the audio's level and time (per clip)")
    weight_decay: float = opt(0.01)
    select: str = opt("top1", "export the best val top-1 or val InfoNCE", choices=("top1", "nce"))
    patience: int = opt(0, "stop after this many validations without a better --select value")
    val_every: int = opt(250)
    max_minutes: float = opt(0.0, "stop (and export) after")
    threads: int = opt(0, "torch CPU threads (0: default)")
    seed: int = opt(0)
    cpu: bool = opt(False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, DenseAVConfig)


def run(args: DenseAVConfig | argparse.Namespace) -> int:
    args = config_from_args(DenseAVConfig, args)
    from foley.models.denseav import DenseAVModel
    from training.common import start_run
    from training.loop import TrainLoop, cosine_schedule, draw_batch

    accelerator, out = start_run(args)
    cache = Path(args.cache or out / "cache")
    limit = args.limit or None
    model = DenseAVModel(
        dim=args.dim,
        heads=args.heads,
        visual=args.visual,
        input_size=args.input_size,
        audio_encoder=args.audio_encoder,
        audio_channels=tuple(args.audio_channels),
        normalize=not args.raw_features,
        center_audio=args.center_audio,
        center_visual=args.center_visual,
        visual_gate=args.visual_gate,
    )
    model.load_backbone_weights()
    with accelerator.main_process_first():
        kw = dict(frames_per_clip=args.frames_per_clip, limit=limit, decoded=args.decoded or None)
        kw["frames"] = args.frames
        splits = ["train"] + (["val"] if (Path(args.data) / "val.tsv").is_file() else [])
        stored = {}
        for split in splits:
            store = build_features(model, args.data, split, cache, **kw)
            videos = clip_videos(args.data, split, store.meta["clips"])
            stored[split] = StoredClips(store, videos)
        train, val = stored["train"], stored.get("val", stored["train"])
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    sched = cosine_schedule(optim, args.steps, min(200, args.steps // 10))
    model, optim, sched = accelerator.prepare(model, optim, sched)

    def export(step: int) -> dict:
        """Validate; keep the best model (``--select``: val top-1 or val InfoNCE) in
        OUT/model; with ``--patience``, stop when it has not improved for that many."""
        unwrapped = accelerator.unwrap_model(model)
        metrics = retrieval_top1(unwrapped, val, args.batch_size, accelerator.device)
        accelerator.print(f"step {step}: " + json.dumps(metrics))
        value = -metrics["val_top1"] if args.select == "top1" else metrics["val_nce"]
        if loop.improved(value, args.patience) and accelerator.is_main_process:
            unwrapped.save_pretrained(out / "model")
        return metrics

    loop = TrainLoop.validating(accelerator, args, desc="denseav", log_every=25, export=export)
    model.train()
    for _ in loop:
        rng = loop.rng(args.seed)
        if args.clips_per_video > 0:
            idx = draw_video_batch(rng, train.videos, args.batch_size, args.clips_per_video)
        else:
            idx = draw_batch(rng, len(train), args.batch_size)
        frame_idx = rng.integers(0, train.frames_per_clip, len(idx))
        batch = train.batch(idx, frame_idx, flip=rng.random(len(idx)) < 0.5)
        if args.augment:
            batch = augment(rng, *batch)
        loss, parts = step_loss(model, *(t.to(accelerator.device) for t in batch))
        loop.optimize(loss, optim, params, 1.0, sched)
        loop.end_step(loss=loss.item(), **parts)
    return 0


def main(argv: list[str] | None = None) -> int:
    return trainer_main(DenseAVConfig, run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
