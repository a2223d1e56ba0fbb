"""MC3 feature cache: clips decoded once, read as memory-mapped arrays by the training loop.

A :mod:`training.store` feature store (written atomically; its invalidation key covers the
source metadata file (size, mtime), the tower settings and the count)::

    CACHE/<split>-<size>px-s<stride>-n<count>/
      manifest.json        the store's manifest; meta: clip ids, video_uids, narrations, positive
      frames.npy           (n, T', S, S, 3) uint8, the video tower's frames (stride, size applied)
      mel.npy              (n, n_mels, mel_frames) float16, the audio tower's log-mel input
      text_features.npy    (n, text_dim) float32, frozen MiniLM sentence features
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from foley.data.ego4d import ClipDataset
from foley.errors import InputError
from foley.models.mc3 import MC3Model, prepare_frames
from training.store import FeatureStore, StoreWriter


@dataclass
class FeatureCache:
    """Arrays of one cached split (memory-mapped)."""

    path: Path
    frames: np.ndarray  # (n, T', S, S, 3) uint8
    mel: np.ndarray  # (n, n_mels, mel_frames) float16
    text_features: np.ndarray  # (n, text_dim) float32
    clip_ids: list[str]
    video_uids: list[str]
    texts: list[str]
    positive: np.ndarray  # (n,) float32, 1 = the action makes a sound

    def __len__(self) -> int:
        return len(self.clip_ids)


def open_cache(store: FeatureStore) -> FeatureCache:
    clips = store.meta
    return FeatureCache(
        path=store.path,
        frames=store["frames"],
        mel=store["mel"],
        text_features=store["text_features"],
        clip_ids=clips["clip_ids"],
        video_uids=clips["video_uids"],
        texts=clips["texts"],
        positive=np.asarray(clips["positive"], np.float32),
    )


def _collate(items: list[dict]) -> dict:
    return {
        "frames": torch.stack([it["frames"] for it in items]),
        "audio": torch.stack([it["audio"] for it in items]),
        "meta": [it["meta"] for it in items],
    }


def build_cache(
    data: str | os.PathLike,
    split: str,
    model: MC3Model,
    cache_root: str | os.PathLike,
    *,
    max_clips: int | None = None,
    workers: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> FeatureCache:
    """Decode ``split`` of ``data`` once for ``model``'s towers (or reuse a matching cache)."""
    dataset = ClipDataset(data, split)
    count = len(dataset) if max_clips is None else min(max_clips, len(dataset))
    if count == 0:
        raise InputError(f"{dataset.metadata_path}: no clips in split {split!r}")
    size, stride = model.config.video_frame_size, model.config.video_frame_stride
    stat = dataset.metadata_path.stat()
    manifest = {
        "metadata": str(dataset.metadata_path.resolve()),
        "metadata_size": stat.st_size,
        "metadata_mtime_ns": stat.st_mtime_ns,
        "frame_size": size,
        "frame_stride": stride,
        "count": count,
        "mel": [model.config[k] for k in ("sample_rate", "n_fft", "mel_hop_length", "n_mels")],
        "text_model": model._text.path,
        "cfg": dataset.cfg.to_dict(),
    }
    path = Path(cache_root) / f"{Path(split).stem}-{size}px-s{stride}-n{count}"
    store = FeatureStore.open(path, manifest)
    if store is not None:
        return open_cache(store)
    writer = StoreWriter(path, manifest, count)

    cfg = dataset.cfg
    num_frames = len(range(0, cfg.frames_per_clip, stride))
    frames = writer.array("frames", np.uint8, (count, num_frames, size, size, 3))
    mel_shape = (model.config.n_mels, model.av_config.num_mel_frames(cfg.samples_per_clip))
    mel = writer.array("mel", np.float16, (count, *mel_shape))
    subset = torch.utils.data.Subset(dataset, range(count))
    loader = DataLoader(subset, batch_size=batch_size, num_workers=workers, collate_fn=_collate)
    metas: list[dict] = []
    bar = tqdm(total=count, desc=f"decoding {split} clips", unit="clip", disable=not progress)
    for batch in loader:
        i, b = len(metas), len(batch["meta"])
        small = prepare_frames(batch["frames"], size, stride)  # (b, T', 3, S, S) in [0, 1]
        frames[i : i + b] = (small.permute(0, 1, 3, 4, 2) * 255.0 + 0.5).clamp(0, 255).byte()
        with torch.no_grad():
            mel[i : i + b] = model.mel(batch["audio"]).cpu().numpy().astype(np.float16)
        metas.extend(batch["meta"])
        bar.update(b)
    bar.close()
    frames.flush()
    mel.flush()
    del frames, mel
    texts = [m["clip_text"] for m in metas]
    writer.save("text_features", model.text_features(texts).numpy().astype(np.float32))
    clips = {
        "clip_ids": [m["clip_id"] for m in metas],
        "video_uids": [m["video_uid"] for m in metas],
        "texts": texts,
        "positive": [float(m["positive"]) for m in metas],
    }
    return open_cache(writer.commit(clips))
