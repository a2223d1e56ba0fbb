"""Fine-tuning a saved pipeline on prepared data (``foley train denoiser|codec|sync --init-from
default``).

The features of a fine-tune come from the pipeline being fine-tuned (its codec's latents, its
frozen video encoder's per-frame features and, for a sync encoder, its curves), so the denoiser
sees what it was trained on; they are extracted once into ``OUT/features`` (resumable). The
validation loss that early stopping watches is the denoising loss on the val split at fixed
noise and timesteps, so two evaluations of the same weights give the same number.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from foley.config import AVConfig
from foley.defaults import DEFAULT_MODEL_DIR
from foley.errors import InputError
from training.features import FEATURES_JSON, extract, load_video_encoder


def init_dir(init_from: str) -> Path:
    """The pipeline folder ``--init-from`` names (``default``: the shipped model)."""
    path = DEFAULT_MODEL_DIR if init_from == "default" else Path(init_from).expanduser()
    if not (path / "model_index.json").is_file():
        raise InputError(f"--init-from {init_from}: not a saved pipeline (no model_index.json)")
    return path


def component_dir(init_from: str, name: str, class_name: str) -> Path:
    """The component folder ``--init-from`` names for ``foley train codec|sync``: ``default``
    (the shipped pipeline's ``name``), a saved pipeline (its ``name``) or a component folder
    whose config is a ``class_name``."""
    base = DEFAULT_MODEL_DIR if init_from == "default" else Path(init_from).expanduser()
    for path in (base / name, base):
        config = path / "config.json"
        if config.is_file() and json.loads(config.read_text()).get("_class_name") == class_name:
            return path
    raise InputError(
        f"--init-from {init_from}: no {class_name} there (give a saved pipeline or a {name} folder)"
    )


def _nonempty_splits(data: Path, splits: tuple[str, ...]) -> list[str]:
    from foley.data.ego4d import read_metadata

    return [s for s in splits if (data / f"{s}.tsv").is_file() and read_metadata(data / f"{s}.tsv")]


def finetune_features(
    init: Path,
    data: str | Path,
    feat_root: Path,
    device: str = "cpu",
    splits: tuple[str, ...] = ("train", "val"),
) -> Path:
    """``data``: a features folder (used as is) or a dataset folder, whose ``splits`` (the
    first one required, the others when not empty) are extracted with ``init``'s codec and
    video encoder into ``feat_root``."""
    from foley.models.sync import SyncModel
    from training.train_sync import write_features

    data_p = Path(data).expanduser()
    if (data_p / FEATURES_JSON).is_file():
        return data_p
    first, splits = splits[0], _nonempty_splits(data_p, splits)
    if first not in splits:
        raise InputError(
            f"{data}: no clips with video in {first}.tsv (audio-only entries cannot train the "
            "denoiser; foley prepare a folder of videos)"
        )
    meta_path = feat_root / FEATURES_JSON
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("video_encoder"):
        return feat_root  # extracted by an earlier run
    encoder = load_video_encoder(init / "video_encoder")
    # encoders with sync curves (a SyncModel, a sync+efficientnet PretrainedVideoEncoder) write
    # their features and curves after extraction
    sync = isinstance(encoder, SyncModel) or getattr(encoder, "sync", None) is not None
    cfg = AVConfig(**json.loads((init / "model_index.json").read_text())["av_config"])
    extract(data_p, feat_root, init / "codec", splits, cfg, device=device,
            video_encoder_dir=None if sync else init / "video_encoder")  # fmt: skip
    if sync:
        kind = getattr(encoder.config, "kind", "sync")
        write_features(encoder, feat_root, splits, device, kind=kind)
    return feat_root


@torch.no_grad()
def denoising_loss(model, feats, objective, *, frozen: bool, curves: bool, batch_size: int = 16,
                   repeats: int = 4, seed: int = 0) -> float:  # fmt: skip
    """Mean denoising MSE of ``model`` (an ``AVLDM``) on every clip of ``feats``, with video and
    condition kept, at noise and timesteps fixed by ``seed`` (``repeats`` draws per clip)."""
    from torch.utils.data import DataLoader

    from training.train_denoiser import FeatureDataset

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    dataset = FeatureDataset(feats, seed=seed, frozen_video=frozen, curves=curves)
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(repeats):
            for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
                x0 = batch["latents"].to(device)
                keep = torch.ones(x0.shape[0], dtype=torch.bool, device=device)
                noisy, t, target = objective.noisy_target(x0)
                c = batch.get("curves")
                pred = model(noisy, t, batch["video"].to(device), batch["condition"].to(device),
                             keep, batch["has_condition"].to(device),
                             None if c is None else c.to(device))  # fmt: skip
                losses.append(float(((pred.float() - target) ** 2).mean()) * x0.shape[0])
    model.train(was_training)
    return float(np.sum(losses) / (repeats * len(dataset)))
