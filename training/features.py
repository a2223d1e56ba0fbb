"""Pre-extract codec latents and video frames once, into memmapped ``.npy`` files.

Training then reads arrays, never decodes mp4 in the loop (MMAudio's practice). Layout::

    FEAT/<split>/latents.npy   (num_clips, latents_per_clip, latent_dim) float16, unit scale
    FEAT/<split>/frames.npy    (num_clips, frames_per_clip, S, S, 3) uint8 at cfg.fps
    FEAT/<split>/video_feats.npy  (num_clips, frames_per_clip, dim) float16, only with a frozen
                               video encoder (``--video-encoder``: a VideoEncoder, MC3 or
                               PretrainedVideoEncoder folder, or ``--efficientnet``: frozen
                               EfficientNet-Lite0; copied to FEAT/video_encoder so training and
                               export use it)
    FEAT/<split>/sync_curves.npy  (num_clips, latents_per_clip, 2) float16, added by
                               ``foley train sync`` (with its video_feats.npy)
    FEAT/<split>/action_latents.npy, has_action.npy  (num_clips, latents_per_clip, latent_dim)
                               float16 and (num_clips,) uint8: latents of each clip's
                               action-only track (FoleyWorld ground truth), added by
                               :func:`write_action_latents` for action-focused training
    FEAT/<split>/manifest.json the :mod:`training.store` manifest: invalidation key (data, split,
                               count, AV config, codec and video encoder settings), arrays,
                               clips written; meta: clip ids, video_uid, clip paths, neighbours
    FEAT/features.json         the AVConfig, the codec used and the splits

Each split is a :mod:`training.store` feature store written resumably: the manifest records how
many clips are written, and a re-run with the same settings continues from there (the arrays
are opened in place); other settings start the split again.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.errors import InputError
from training.store import MANIFEST, FeatureStore, StoreWriter

FEATURES_JSON = "features.json"
ACTION_LATENTS, HAS_ACTION = "action_latents", "has_action"


class SplitFeatures:
    """Read-only view of one extracted split (memmapped arrays + its index)."""

    def __init__(self, root: str | os.PathLike, split: str) -> None:
        self.dir = Path(root) / split
        if not (self.dir / MANIFEST).is_file():
            old = " in the old layout (index.json)" if (self.dir / "index.json").is_file() else ""
            raise InputError(f"{self.dir}: no extracted features{old} (run training/features.py)")
        self.store = FeatureStore.open(self.dir)
        if self.store is None:
            raise InputError(f"{self.dir}: extraction is incomplete, re-run it to finish")
        self.latents = self.store["latents"]
        self.frames = self.store["frames"]
        self.video_feats = self.store.get("video_feats")
        self.sync_curves = self.store.get("sync_curves")  # added by train_sync.py
        self.action_latents = self.store.get(ACTION_LATENTS)  # by write_action_latents
        self.has_action = self.store.get(HAS_ACTION)
        self.clips: list[dict] = self.store.meta["clips"]

    def __len__(self) -> int:
        return len(self.clips)

    def neighbours(self, i: int) -> list[int]:
        """Other clips of the same long video at another time (the AV-LDM condition)."""
        return self.clips[i]["neighbours"]


def read_config(root: str | os.PathLike) -> AVConfig:
    meta = json.loads((Path(root) / FEATURES_JSON).read_text())
    return AVConfig(**meta["av_config"])


@torch.no_grad()
def extract_split(
    data_root: str | os.PathLike,
    split: str,
    out_root: str | os.PathLike,
    codec,
    cfg: AVConfig = DEFAULT_CONFIG,
    *,
    batch_size: int = 8,
    limit: int | None = None,
    device: str = "cpu",
    video_encoder=None,
) -> Path:
    """Extract one split of an Ego4D-Sounds folder; returns ``out_root/split``."""
    from foley.data.ego4d import ClipDataset

    ds = ClipDataset(data_root, split, cfg)
    count = len(ds) if limit is None else min(limit, len(ds))
    if count == 0:
        raise InputError(f"{data_root}: split {split!r} has no clips")
    out = Path(out_root) / split
    latent_dim = int(codec.config.latent_dim)
    lat_shape = (count, cfg.latents_per_clip, latent_dim)
    frm_shape = (count, cfg.frames_per_clip, cfg.frame_size, cfg.frame_size, 3)
    settings = {
        "data": str(Path(data_root).resolve()),
        "split": split,
        "count": count,
        "cfg": cfg.to_dict(),
        "codec": _settings_of(codec),
        "video_encoder": None if video_encoder is None else _settings_of(video_encoder),
    }
    clips = []
    kept = set(range(count))
    for i in range(count):
        rec = ds.records[i]
        clips.append(
            {
                "clip_id": rec.clip_id,
                "video_uid": rec.video_uid,
                "narration_time": rec.narration_time,
                "clip_path": str(rec.clip_path(ds.root)),
                "text": rec.clip_text,
                "neighbours": [j for j in ds.neighbour_candidates(i) if j in kept],
            }
        )
    writer = StoreWriter(out, settings, count, resume=True, meta={"clips": clips})
    done = writer.rows_done
    latents = writer.array("latents", np.float16, lat_shape)
    frames = writer.array("frames", np.uint8, frm_shape)
    feats = None
    if video_encoder is not None:
        video_encoder = video_encoder.to(device).eval()
        feat_shape = (count, cfg.frames_per_clip, int(video_encoder.config.dim))
        feats = writer.array("video_feats", np.float16, feat_shape)
    codec = codec.to(device).eval()

    bar = tqdm(total=count, initial=done, desc=f"features {split}", unit="clip")
    for start in range(done, count, batch_size):
        stop = min(count, start + batch_size)
        waves = []
        for i in range(start, stop):
            clip_frames, wave = ds.load_clip(i)
            frames[i] = clip_frames
            waves.append(wave)
        if feats is not None:
            from foley.io import frames_to_tensor

            batch = torch.stack([frames_to_tensor(frames[i]) for i in range(start, stop)])
            feats[start:stop] = video_encoder(batch.to(device)).float().cpu().numpy()
            feats.flush()
        wave_t = torch.from_numpy(np.stack(waves)).to(device)
        lat = codec.encode(wave_t).float().cpu().numpy()  # (b, latents_per_clip, latent_dim)
        latents[start:stop] = lat[:, : cfg.latents_per_clip]
        latents.flush()
        frames.flush()
        writer.checkpoint(stop)
        bar.update(stop - start)
    bar.close()
    writer.commit()
    return out


def action_track(clip: dict, cfg: AVConfig) -> np.ndarray | None:
    """A features clip's action-only track (the FoleyWorld ground truth beside its video, read
    by :func:`foley.retrieval.load_track`), cut or zero-padded to a clip; None without one."""
    from foley.data.ego4d import GT_SUFFIX
    from foley.retrieval import load_track

    path = Path(clip["clip_path"])
    gt = path.with_name(path.stem + GT_SUFFIX)
    if not gt.is_file():
        return None
    wave = load_track(gt, cfg.sample_rate)[: cfg.samples_per_clip]
    return np.pad(wave, (0, cfg.samples_per_clip - wave.size))


@torch.no_grad()
def write_action_latents(
    feat_root: str | os.PathLike, split: str, codec, *, batch_size: int = 16, device="cpu"
) -> int:
    """Codec latents of every clip's action-only track -> ``action_latents.npy`` and
    ``has_action.npy`` of the split (clips without ground truth: zeros, flag 0), the arrays
    action-focused training reads (``foley train denoiser --action-tracks``). Done once: a split
    that has them is left as it is. Returns how many clips have a track."""
    feats = SplitFeatures(feat_root, split)
    if ACTION_LATENTS in feats.store and HAS_ACTION in feats.store:
        return int(np.asarray(feats.store[HAS_ACTION]).sum())
    cfg = read_config(feat_root)
    n, lat, dim = feats.latents.shape
    latents = feats.store.new_array(ACTION_LATENTS, np.float16, (n, lat, dim))  # zeros
    has = feats.store.new_array(HAS_ACTION, np.uint8, (n,))
    codec = codec.to(device).eval()
    count = 0
    for lo in tqdm(range(0, n, batch_size), desc=f"action latents {split}", unit="batch"):
        tracks = {i: action_track(feats.clips[i], cfg) for i in range(lo, min(n, lo + batch_size))}
        found = [i for i, t in tracks.items() if t is not None]
        if found:
            waves = torch.from_numpy(np.stack([tracks[i] for i in found]))
            latents[found] = codec.encode(waves.to(device)).float().cpu().numpy()[:, :lat]
            has[found] = 1
            count += len(found)
    latents.flush()
    has.flush()
    del latents, has
    feats.store.publish(ACTION_LATENTS, HAS_ACTION)
    return count


def _settings_of(model) -> dict:
    """A model's config without diffusers' bookkeeping (``_name_or_path`` etc.)."""
    return {k: v for k, v in dict(model.config).items() if not k.startswith("_")}


def extract(
    data_root: str | os.PathLike,
    out_root: str | os.PathLike,
    codec_dir: str | os.PathLike,
    splits: list[str],
    cfg: AVConfig = DEFAULT_CONFIG,
    video_encoder_dir: str | os.PathLike | None = None,
    video_encoder=None,
    **kwargs,
) -> Path:
    """Extract several splits with the codec saved at ``codec_dir`` (and, if given, per-frame
    features of a frozen video encoder: a saved one's folder, ``video_encoder_dir``, or a model,
    ``video_encoder``, such as :class:`~foley.models.pretrained_video.PretrainedVideoEncoder`)."""
    from foley.models.codec import FoleyCodec

    codec = FoleyCodec.from_pretrained(codec_dir)
    out = Path(out_root)
    out.mkdir(parents=True, exist_ok=True)
    encoder = load_video_encoder(video_encoder_dir) if video_encoder_dir else video_encoder
    if encoder is not None:
        encoder.save_pretrained(out / "video_encoder")
    for split in splits:
        extract_split(data_root, split, out, codec, cfg, video_encoder=encoder, **kwargs)
    meta = {
        "av_config": cfg.to_dict(),
        "codec": str(Path(codec_dir).resolve()),
        "latent_dim": int(codec.config.latent_dim),
        "splits": splits,
        "data_root": str(Path(data_root).resolve()),
        "video_encoder": "video_encoder" if encoder is not None else None,
        "video_encoder_kind": getattr(getattr(encoder, "config", None), "kind", None),
    }
    (out / FEATURES_JSON).write_text(json.dumps(meta, indent=2))
    return out


def load_video_encoder(path: str | os.PathLike):
    """A VideoEncoder, SyncModel or PretrainedVideoEncoder folder, or an MC3 folder (its video
    tower's per-frame encoder)."""
    from foley.models.mc3 import MC3Model
    from foley.models.pretrained_video import PretrainedVideoEncoder
    from foley.models.sync import SyncModel
    from foley.models.video_encoder import VideoEncoder

    config = json.loads((Path(path) / "config.json").read_text())
    if config.get("_class_name") == "MC3Model":
        return MC3Model.from_pretrained(path).video_encoder
    if config.get("_class_name") == "SyncModel":
        return SyncModel.from_pretrained(path)
    if config.get("_class_name") == "PretrainedVideoEncoder":
        return PretrainedVideoEncoder.from_pretrained(path)
    return VideoEncoder.from_pretrained(path)


def efficientnet_encoder(sync_dir: str | os.PathLike | None = None):
    """The frozen EfficientNet-Lite0 video encoder, alone or (``sync_dir``: a trained SyncModel
    folder) as ``sync+efficientnet``."""
    from foley.models.pretrained_video import PretrainedVideoEncoder

    if sync_dir is None:
        return PretrainedVideoEncoder(kind="efficientnet")
    from foley.models.sync import SyncModel

    return PretrainedVideoEncoder.from_sync(SyncModel.from_pretrained(sync_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="Ego4D-Sounds / FoleyWorld folder")
    parser.add_argument("--codec", required=True, help="FoleyCodec folder (save_pretrained)")
    parser.add_argument("-o", "--out", required=True, help="features folder")
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    parser.add_argument("--limit", type=int, default=None, help="clips per split (debug)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--video-encoder", help="frozen VideoEncoder or MC3 folder: also store its features"
    )
    parser.add_argument(
        "--efficientnet",
        action="store_true",
        help="store frozen EfficientNet-Lite0 features per frame (PretrainedVideoEncoder)",
    )
    args = parser.parse_args(argv)
    if args.efficientnet and args.video_encoder:
        raise SystemExit("features: give --video-encoder or --efficientnet, not both")
    extract(
        args.data,
        args.out,
        args.codec,
        args.splits,
        video_encoder_dir=args.video_encoder,
        video_encoder=efficientnet_encoder() if args.efficientnet else None,
        batch_size=args.batch_size,
        limit=args.limit,
        device=args.device,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
