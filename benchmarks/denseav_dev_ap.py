"""Heatmap pixel AP of DenseAV models in seconds, from stored frozen-EfficientNet maps: for choosing
between training runs on a development split (the test clips are for ``denseav_eval.py``).

The first call decodes ``--split`` of ``--data`` once and stores, in ``--cache`` (an ``.npz``),
the EfficientNet maps and masks of every ``--frame-stride``-th frame whose mask is not empty
(as ``denseav_eval.py`` scores), and each clip's log-mel and waveform. Each model's heatmaps
are then :meth:`DenseAVModel.heatmaps`' (time-averaged similarity over the voiced steps, max over
heads, min-max per frame, upsampled), with the clip's audio, the previous clip's audio and
silence; pixel AP and best IoU pooled over frames (``foley.metrics.heatmaps``). The models must
use ``visual="efficientnet"`` at input size 112 (the stored maps'). A first row scores a
label-free visual saliency with no model: each position's distance from the frame's mean map.

    python benchmarks/denseav_dev_ap.py --data DATA --split val --cache DEV.npz RUN/model [...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from foley.config import DEFAULT_CONFIG as CFG
from foley.metrics.heatmaps import best_iou, pixel_ap
from foley.models.denseav import DenseAVModel, minmax_upsample, voiced_similarity


@torch.no_grad()
def build_cache(data: str, split: str, cache: Path, frame_stride: int, limit: int) -> None:
    """Decode ``split`` once: maps ``(n_frames, 112, 14, 14)`` float16, masks, each frame's clip,
    and per clip the log-mel ``(n_mels, M)`` and the waveform ``(N,)`` (for the voiced steps)."""
    from foley.data.ego4d import load_ground_truth, read_metadata, split_path
    from foley.io import frames_to_tensor, load_video

    model = DenseAVModel(
        visual="efficientnet", audio_encoder="conv1d", audio_channels=(64, 96, 128)
    )
    model.load_backbone_weights()
    model.eval()
    records = read_metadata(split_path(data, split))[: limit or None]
    maps, masks, clip_of, mels, waves = [], [], [], [], []
    for i, rec in enumerate(records):
        video = load_video(rec.clip_path(data), CFG)
        gt = load_ground_truth(rec.gt_path(data))
        audio = np.zeros(CFG.samples_per_clip, np.float32)
        n = min(audio.size, video.audio.size)
        audio[:n] = video.audio[:n]
        frames = frames_to_tensor(video.frames)
        mask = gt["masks"][: frames.shape[0]]
        keep = [k for k in range(0, mask.shape[0], frame_stride) if mask[k].any()]
        mels.append(model.audio_input(torch.from_numpy(audio)[None])[0].numpy().astype(np.float16))
        waves.append(audio.astype(np.float16))
        if keep:
            maps.append(model.visual_input(frames[keep]).numpy().astype(np.float16))
            masks.append(mask[keep])
            clip_of += [i] * len(keep)
    np.savez(
        cache,
        maps=np.concatenate(maps),
        masks=np.concatenate(masks),
        clip=np.array(clip_of),
        mel=np.stack(mels),
        wave=np.stack(waves),
        silence_mel=model.audio_input(torch.zeros(1, CFG.samples_per_clip))[0].numpy(),
    )


@torch.no_grad()
def heatmaps(model: DenseAVModel, maps: np.ndarray, mel: np.ndarray, wave: np.ndarray):
    """``(t, S, S)`` heatmaps of stored ``maps (t, 112, h, w)`` for one clip's ``mel`` and
    ``wave (N,)``: :meth:`DenseAVModel.heatmaps` from stored inputs."""
    audio = model.project_audio(torch.from_numpy(mel.astype(np.float32))[None])[0]  # (K, D, Ta)
    voiced = model.voiced(torch.from_numpy(wave.astype(np.float32))[None], audio.shape[-1])[0]
    raw = torch.cat(
        [
            voiced_similarity(
                audio, voiced, model.project_visual(torch.from_numpy(maps[lo : lo + 64]).float())
            )
            for lo in range(0, maps.shape[0], 64)
        ]
    )
    return minmax_upsample(raw, (CFG.frame_size,) * 2).numpy()


def saliency(maps: np.ndarray) -> np.ndarray:
    """``(t, S, S)``: each position's distance from its frame's mean map, min-max per frame."""
    x = torch.from_numpy(maps.astype(np.float32))
    raw = (x - x.mean((-2, -1), keepdim=True)).norm(dim=1)  # (t, h, w)
    return minmax_upsample(raw, (CFG.frame_size,) * 2).numpy()


def score(model: DenseAVModel, z: dict) -> dict[str, tuple[float, float]]:
    """(pixel AP, best IoU) with the clip's audio, the previous clip's and silence."""
    other = np.roll(np.arange(len(z["mel"])), 1)
    rows: dict[str, list] = {"own": [], "other": [], "silence": []}
    for c in np.unique(z["clip"]):
        maps = z["maps"][z["clip"] == c]
        silence = np.zeros_like(z["wave"][c])
        rows["own"].append(heatmaps(model, maps, z["mel"][c], z["wave"][c]))
        rows["other"].append(heatmaps(model, maps, z["mel"][other[c]], z["wave"][other[c]]))
        rows["silence"].append(heatmaps(model, maps, z["silence_mel"], silence))
    out = {}
    for name, items in rows.items():
        h = np.concatenate(items)
        out[name] = (pixel_ap(h, z["masks"]), best_iou(h, z["masks"]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="DenseAVModel folders")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--cache", required=True, help=".npz of the stored maps (made if absent)")
    p.add_argument("--frame-stride", type=int, default=4)
    p.add_argument("--limit", type=int, default=0)
    args = p.parse_args(argv)
    cache = Path(args.cache)
    if not cache.is_file():
        build_cache(args.data, args.split, cache, args.frame_stride, args.limit)
    z = dict(np.load(cache))
    print(
        f"{cache}: {len(z['mel'])} clips, {len(z['clip'])} frames, "
        f"positive rate {z['masks'].mean():.3f}"
    )
    print("| model | AP own | AP other | AP silence | IoU own |\n| --- | --- | --- | --- | --- |")
    sal = saliency(z["maps"])
    ap, iou = pixel_ap(sal, z["masks"]), best_iou(sal, z["masks"])
    print(f"| saliency (no model, no audio) | {ap:.3f} | | | {iou:.3f} |")
    for path in args.models:
        start = time.time()
        r = score(DenseAVModel.from_pretrained(path).eval(), z)
        print(
            f"| {path} | {r['own'][0]:.3f} | {r['other'][0]:.3f} | {r['silence'][0]:.3f} | "
            f"{r['own'][1]:.3f} | ({time.time() - start:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
