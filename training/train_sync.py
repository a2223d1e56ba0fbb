"""Train the sync encoder (frames -> when the clip sounds) on pre-extracted features (accelerate).

Targets come from each clip's own audio (``foley.models.sync.sync_targets``: detected onsets and
the loudness envelope), so no labels are needed. The best model on the validation split (onset
F1 of its predicted curve against the onsets detected in the audio, +-50 ms) is exported to
``OUT/model`` (SyncModel) and ``OUT/encoder`` (its VideoEncoder); then, unless
``--no-write-features``, its per-frame features and sync curves of every split are written into
the features folder (``video_feats.npy``, ``sync_curves.npy``) and it becomes the folder's frozen
video encoder, the one ``foley train denoiser`` trains on and ships.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.errors import InputError
from training.config import add_config_arguments, config_from_args, opt, trainer_main
from training.features import FEATURES_JSON, SplitFeatures, read_config

TARGETS_FILE = "sync_targets.npy"
ONSETS_FILE = "sync_onsets.json"


def split_targets(feats: SplitFeatures, cfg) -> tuple[np.ndarray, list[list[float]]]:
    """Targets ``(num_clips, latents_per_clip, 2)`` of a split and the onsets (s) detected in
    each clip's audio; cached beside the split's arrays."""
    from foley.io import load_audio
    from foley.metrics.onsets import detect_onsets
    from foley.models.sync import sync_targets

    path, onsets_path = feats.dir / TARGETS_FILE, feats.dir / ONSETS_FILE
    if path.is_file() and onsets_path.is_file():
        cached = np.load(path)
        if cached.shape[:2] == (len(feats), cfg.latents_per_clip):
            return cached, json.loads(onsets_path.read_text())
    out = np.zeros((len(feats), cfg.latents_per_clip, 2), np.float32)
    onsets = []
    for i, clip in enumerate(tqdm(feats.clips, desc=f"sync targets {feats.dir.name}", unit="clip")):
        wave = load_audio(clip["clip_path"], cfg.sample_rate)[: cfg.samples_per_clip]
        wave = np.pad(wave, (0, cfg.samples_per_clip - wave.size))
        out[i] = sync_targets(wave, cfg)[: cfg.latents_per_clip]
        onsets.append(detect_onsets(wave, cfg).tolist())
    np.save(path, out)
    onsets_path.write_text(json.dumps(onsets))
    return out, onsets


def frames_batch(feats: SplitFeatures, idx, flip: np.ndarray | None = None) -> torch.Tensor:
    """uint8 ``(b, T, S, S, 3)`` rows -> float ``(b, T, 3, S, S)`` in [0, 1] (optionally
    mirrored left-right per clip: timing is unchanged)."""
    from foley.io import frames_to_tensor

    x = torch.stack([frames_to_tensor(feats.frames[i]) for i in idx])
    if flip is not None and flip.any():
        x[torch.from_numpy(flip)] = x[torch.from_numpy(flip)].flip(-1)
    return x


@torch.no_grad()
def evaluate(
    model, feats: SplitFeatures, targets: np.ndarray, onsets: list, cfg, device, batch: int = 16
) -> dict:
    """Validation loss and onset F1 (predicted peaks vs the onsets detected in the audio)."""
    from foley.metrics.onsets import match_onsets
    from foley.models.sync import curve_onsets, sync_loss

    model.eval()
    losses, f1s = [], []
    for lo in range(0, len(feats), batch):
        idx = list(range(lo, min(len(feats), lo + batch)))
        y = torch.from_numpy(targets[idx]).to(device)
        logits = model(frames_batch(feats, idx).to(device), cfg.latents_per_clip)
        losses.append(float(sync_loss(logits, y)) * len(idx))
        probs = torch.sigmoid(logits[..., 0]).cpu().numpy()
        for p, i in zip(probs, idx):
            f1s.append(match_onsets(curve_onsets(p, cfg), np.asarray(onsets[i])).f1)
    model.train()
    return {"val_loss": sum(losses) / len(feats), "val_onset_f1": float(np.mean(f1s))}


@torch.no_grad()
def write_features(
    model, feat_root: Path, splits: list[str], device, batch: int = 16, kind: str = "sync"
) -> None:
    """Per-frame features and sync curves of ``model`` (a SyncModel, or anything with its
    ``encode``: a ``sync+efficientnet`` PretrainedVideoEncoder) for every split ->
    ``video_feats.npy`` (n, T, dim) and ``sync_curves.npy`` (n, L, 2); the model becomes the
    features folder's frozen video encoder (``kind``: its name in features.json)."""
    model = model.to(device).eval()
    for split in splits:
        feats = SplitFeatures(feat_root, split)
        lat = feats.latents.shape[1]
        shapes = {
            "video_feats": (len(feats), feats.frames.shape[1], int(model.config.dim)),
            "sync_curves": (len(feats), lat, 2),
        }
        out = {k: feats.store.new_array(k, np.float16, v) for k, v in shapes.items()}
        for lo in tqdm(range(0, len(feats), batch), desc=f"sync features {split}", unit="batch"):
            idx = list(range(lo, min(len(feats), lo + batch)))
            f, c = model.encode(frames_batch(feats, idx).to(device), lat)
            out["video_feats"][idx[0] : idx[-1] + 1] = f.cpu().numpy()
            out["sync_curves"][idx[0] : idx[-1] + 1] = c.cpu().numpy()
        for k in list(out):
            out.pop(k).flush()
        feats.store.publish(*shapes)
    target = feat_root / "video_encoder"
    if target.exists():
        shutil.rmtree(target)
    model.save_pretrained(target)
    meta_path = feat_root / FEATURES_JSON
    meta = json.loads(meta_path.read_text())
    meta["video_encoder"] = "video_encoder"
    meta["video_encoder_kind"] = kind
    meta_path.write_text(json.dumps(meta, indent=2))


@dataclass(frozen=True)
class SyncConfig:
    """Settings of ``foley train sync`` (one field per command-line option)."""

    features: str = opt(
        "", "folder written by training/features.py", positional=True, required=True
    )
    out: str = opt("", "training folder", required=True, short="-o")
    steps: int = opt(2000)
    batch_size: int = opt(8)
    lr: float = opt(0.001)
    dim: int = opt(128)
    channels: tuple[int, ...] = opt((16, 32, 64, 64))
    input_size: int = opt(56, "0: the features' frame size")
    val_every: int = opt(200)
    max_minutes: float = opt(0.0, "stop (and export) after")
    init_from: str | None = opt(
        None, "fine-tune this sync model ('default': the shipped video encoder; a pipeline or "
        "SyncModel folder); its config wins over --dim/--channels/--input-size"
    )  # fmt: skip
    patience: int = opt(
        0, "early stopping: stop after this many validations without a higher val onset F1 "
        "(0: off)"
    )  # fmt: skip
    no_write_features: bool = opt(False)
    threads: int = opt(0, "torch CPU threads (0: default)")
    seed: int = opt(0)
    cpu: bool = opt(False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, SyncConfig)


def run(args: SyncConfig | argparse.Namespace) -> int:
    args = config_from_args(SyncConfig, args)
    from foley.models.sync import SyncModel, sync_loss
    from training.common import start_run
    from training.loop import TrainLoop, draw_batch

    feat_root = Path(args.features)
    cfg = read_config(feat_root)
    accelerator, out = start_run(args)
    train = SplitFeatures(feat_root, "train")
    val = SplitFeatures(feat_root, "val") if (feat_root / "val").is_dir() else train
    with accelerator.main_process_first():
        y_train, _ = split_targets(train, cfg)
        y_val, val_onsets = split_targets(val, cfg)
    if args.init_from:
        from training.finetune import component_dir

        model = SyncModel.from_pretrained(component_dir(args.init_from, "video_encoder",
                                                        "SyncModel"))  # fmt: skip
    else:
        model = SyncModel(
            dim=args.dim,
            channels=tuple(args.channels),
            input_size=args.input_size or None,
            latents_per_frame=cfg.latents_per_frame,
        )
    if model.config.latents_per_frame != cfg.latents_per_frame:
        raise InputError(f"--init-from {args.init_from}: its latents_per_frame "
                         f"{model.config.latents_per_frame} differs from the features' "
                         f"{cfg.latents_per_frame}")  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    model, opt = accelerator.prepare(model, opt)

    def export(step: int) -> dict:
        """Validate; keep the best model (val onset F1) in OUT/model and OUT/encoder; with
        --patience, stop after that many validations without a better one."""
        unwrapped = accelerator.unwrap_model(model)
        metrics = evaluate(unwrapped, val, y_val, val_onsets, cfg, accelerator.device)
        accelerator.print(f"step {step}: " + json.dumps(metrics))
        if loop.improved(-metrics["val_onset_f1"], args.patience) and accelerator.is_main_process:
            unwrapped.save_pretrained(out / "model")
            unwrapped.encoder.save_pretrained(out / "encoder")
        return metrics

    loop = TrainLoop.validating(accelerator, args, desc="sync", log_every=50, export=export)
    if loop.step == 0 and args.init_from:  # the starting point counts
        loop.log(0, **export(0))
    model.train()
    for _ in loop:
        rng = loop.rng(args.seed)
        idx = draw_batch(rng, len(train), args.batch_size)
        x = frames_batch(train, idx, flip=rng.random(len(idx)) < 0.5).to(accelerator.device)
        y = torch.from_numpy(y_train[idx]).to(accelerator.device)
        loss = sync_loss(model(x, cfg.latents_per_clip), y)
        loop.optimize(loss, opt, model.parameters(), 1.0)
        loop.end_step(loss=loss.item())
    if accelerator.is_main_process and not args.no_write_features:
        splits = json.loads((feat_root / FEATURES_JSON).read_text())["splits"]
        best_model = SyncModel.from_pretrained(out / "model")
        write_features(best_model, feat_root, splits, accelerator.device)
    return 0


def main(argv: list[str] | None = None) -> int:
    return trainer_main(SyncConfig, run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
