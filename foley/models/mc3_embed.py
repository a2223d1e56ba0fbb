"""Embedding clips with MC3, in batches: shared by ``foley index``, the trainer and benchmarks.

A clip's audio, video and narration embeddings come back as float32 arrays ``(num_clips, D)``
in dataset order, with its ambient level (dBFS of the quietest 0.5 s window) measured on the
clip's own audio track.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from foley.errors import InputError, one_line
from foley.metrics.audio import ambient_level_db

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


@dataclass
class ClipEmbeddings:
    """Embeddings of the clips of one dataset split, row ``i`` = clip ``i``."""

    ids: list[str]
    audio: np.ndarray  # (n, D) float32, L2-normalised
    video: np.ndarray  # (n, D)
    text: np.ndarray | None  # (n, D) or None when not asked for
    ambient_db: np.ndarray  # (n,) float64 dBFS
    meta: list[dict[str, Any]]  # the dataset's per-clip metadata (ClipRecord columns)
    skipped: list[str] = field(default_factory=list)  # file names of clips that failed to load

    def __len__(self) -> int:
        return len(self.ids)


def clip_path(dataset: Dataset, index: int) -> tuple[Path, Path] | None:
    """(file, data folder) of item ``index`` of a ClipDataset (or a Subset of one); None for
    other datasets."""
    while isinstance(dataset, Subset):
        dataset, index = dataset.dataset, dataset.indices[index]
    records, root = getattr(dataset, "records", None), getattr(dataset, "root", None)
    return None if records is None or root is None else (records[index].clip_path(root), root)


class SkipFailed(Dataset):
    """A dataset whose items that fail to load become ``{"failed": name, "error": line}``
    markers instead of exceptions (any error: a corrupt, truncated or unreadable clip), so one
    bad file does not stop a batch; :func:`_collate` drops them and lists them under
    ``skipped``. Works across DataLoader worker processes (the marker travels in the batch)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self.dataset[index]
        except Exception as err:  # noqa: BLE001 - one line per clip, the batch goes on
            return failure(self.dataset, index, err)


def failure(dataset: Dataset, index: int, err: BaseException) -> dict[str, str]:
    """``{"failed": file name, "error": one line}`` for item ``index`` that raised ``err``
    (paths inside the message are made relative to the data folder)."""
    where = clip_path(dataset, index)
    if where is None:
        return {"failed": f"item {index}", "error": one_line(err)}
    path, root = where
    return {"failed": path.name, "error": one_line(err, hide=str(root) + os.sep)}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    good = [it for it in items if "failed" not in it]
    failed = [it for it in items if "failed" in it]
    return {
        "frames": torch.stack([it["frames"] for it in good]) if good else None,  # (b, T, 3, S, S)
        "audio": torch.stack([it["audio"] for it in good]) if good else None,  # (b, N)
        "text": [it["text"] for it in good],
        "meta": [it["meta"] for it in good],
        "skipped": [(it["failed"], it["error"]) for it in failed],
    }


def _ambient(wave: np.ndarray, sample_rate: int) -> float:
    """Ambient level of a clip's own audio: the zero padding that fits a short clip to the
    training length (``ClipDataset``) is trimmed first, or it would read as silence."""
    return float(ambient_level_db(np.trim_zeros(wave, "b"), sample_rate))


def model_id(model_dir: str | os.PathLike) -> str:
    """Identity of saved MC3 weights (``mc3-`` + 16 hex of the weights' SHA-256).

    An index records it; querying with other weights is refused.
    """
    path = Path(model_dir) / WEIGHTS_NAME
    if not path.is_file():
        raise InputError(f"{model_dir}: not a saved MC3 model (no {WEIGHTS_NAME})")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return "mc3-" + digest.hexdigest()[:16]


def load_mc3(model_dir: str | os.PathLike, device: str | torch.device = "cpu"):
    """``MC3Model.from_pretrained`` with a one-line error for a wrong folder."""
    from foley.models.mc3 import MC3Model

    path = Path(model_dir)
    if not (path / "config.json").is_file() or not (path / WEIGHTS_NAME).is_file():
        raise InputError(f"{path}: not a saved MC3 model (expected config.json and {WEIGHTS_NAME})")
    cfg = MC3Model.load_config(str(path))
    if cfg.get("_class_name") not in (None, "MC3Model"):
        raise InputError(f"{path}: holds a {cfg['_class_name']}, not an MC3Model")
    return MC3Model.from_pretrained(str(path)).to(device).eval()


@torch.no_grad()
def iter_embeddings(
    model,
    dataset: Dataset,
    *,
    batch_size: int = 16,
    workers: int = 0,
    with_text: bool = True,
    progress: bool = True,
) -> Iterator[ClipEmbeddings]:
    """Embed the clips of a :class:`foley.data.ego4d.ClipDataset` batch by batch, in order.

    A clip that fails to load is skipped with one line on stderr naming its file; its batch
    comes back without it (``skipped`` lists it; a batch may then hold no clips at all)."""
    loader = DataLoader(
        SkipFailed(dataset),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
    )
    sample_rate = model.config.sample_rate
    dim = model.config.embed_dim
    bar = tqdm(total=len(dataset), desc="embedding clips", unit="clip", disable=not progress)
    for batch in loader:
        for name, message in batch["skipped"]:
            print(f"foley: skipped {name}: {message}", file=sys.stderr, flush=True)
        skipped = [name for name, _ in batch["skipped"]]
        if not batch["meta"]:
            empty = np.zeros((0, dim), np.float32)
            yield ClipEmbeddings([], empty, empty, empty if with_text else None, np.zeros(0), [],
                                 skipped)  # fmt: skip
        else:
            yield ClipEmbeddings(
                ids=[m["clip_id"] for m in batch["meta"]],
                audio=model.encode_audio(batch["audio"]).float().cpu().numpy(),
                video=model.encode_video(batch["frames"]).float().cpu().numpy(),
                text=model.encode_text(batch["text"]).float().cpu().numpy() if with_text else None,
                ambient_db=np.array([_ambient(w.numpy(), sample_rate) for w in batch["audio"]]),
                meta=batch["meta"],
                skipped=skipped,
            )
        bar.update(len(batch["meta"]) + len(skipped))
    bar.close()


def concat(parts: list[ClipEmbeddings], dim: int) -> ClipEmbeddings:
    """One :class:`ClipEmbeddings` from consecutive batches."""
    empty = np.zeros((0, dim), np.float32)
    with_text = all(p.text is not None for p in parts)
    return ClipEmbeddings(
        ids=[i for p in parts for i in p.ids],
        audio=np.concatenate([p.audio for p in parts]) if parts else empty,
        video=np.concatenate([p.video for p in parts]) if parts else empty,
        text=(np.concatenate([p.text for p in parts]) if parts else empty) if with_text else None,
        ambient_db=np.concatenate([p.ambient_db for p in parts]) if parts else np.zeros(0),
        meta=[m for p in parts for m in p.meta],
        skipped=[name for p in parts for name in p.skipped],
    )


def embed_dataset(model, dataset: Dataset, **kwargs) -> ClipEmbeddings:
    """Every clip of a dataset at once (see :func:`iter_embeddings` for the arguments)."""
    return concat(list(iter_embeddings(model, dataset, **kwargs)), model.config.embed_dim)
