"""DenseAV vs TPAVI vs visual saliency on FoleyWorld test clips, side by side in one run.

For every clip of ``--split`` and every ``--frame-stride``-th frame whose ground-truth mask is
not empty, each row's heatmap is scored against the mask: pixel AP and best IoU (DenseAV's
protocol, pooled over frames; ``AP/class``: mean over the clips' materials) and AVSBench's J and
F (``foley.metrics.avs``). Rows:

- DenseAV, each head and the max over heads, with the clip's own audio;
- DenseAV with another clip's audio and with silence (visual saliency of the same network);
- TPAVI (the shipped supervised ``avs/``) with the clip's audio and with another clip's audio.

``--masks spoken_masks`` scores the same rows against the spoken object's masks of a
``make-dataset --speech`` set (the language head's test).

    python benchmarks/denseav_eval.py --data DATA --denseav RUN/model
        [--avs foley/assets/default/avs] [--split test] [--masks masks|spoken_masks]
        [--frame-stride 4] [--limit 0] [--png DIR [--png-clips 3]]

``--png DIR`` writes overlay strips (``foley.analysis.write_overlay``) of the first
``--png-clips`` scored clips: ``clipN_denseav.png``, ``clipN_tpavi.png``, ``clipN_truth.png``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.config import DEFAULT_CONFIG as CFG
from foley.metrics.avs import AVSScores
from foley.metrics.heatmaps import best_iou, pixel_ap

DEFAULT_AVS = Path(__file__).resolve().parents[1] / "foley/assets/default/avs"


def clip_class(gt: dict) -> str:
    """The material of the clip's first visible event ("none" without one)."""
    visible = [e for e in gt["events"] if e.get("visible")]
    return visible[0]["material"] if visible else "none"


def main(argv: list[str] | None = None) -> int:
    from foley.analysis import sounding_masks, write_overlay
    from foley.data.ego4d import load_ground_truth, read_metadata, split_path
    from foley.io import frames_to_tensor, load_video
    from foley.models.denseav import DenseAVModel
    from foley.pipelines.loading import load_avs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--denseav", required=True, help="DenseAVModel folder")
    p.add_argument("--avs", default=str(DEFAULT_AVS), help="AVSModel folder (TPAVI)")
    p.add_argument("--split", default="test")
    p.add_argument("--masks", default="masks", choices=("masks", "spoken_masks"))
    p.add_argument("--frame-stride", type=int, default=4)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--png", default=None, help="folder for overlay strips")
    p.add_argument("--png-clips", type=int, default=3)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    start = time.time()
    dense = DenseAVModel.from_pretrained(args.denseav).eval()
    avs = load_avs(args.avs, "cpu")
    records = read_metadata(split_path(args.data, args.split))[: args.limit or None]
    clips = []
    for rec in tqdm(records, desc="decode", unit="clip"):
        video = load_video(rec.clip_path(args.data), CFG)
        gt = load_ground_truth(rec.gt_path(args.data))
        audio = np.zeros(CFG.samples_per_clip, np.float32)
        n = min(audio.size, video.audio.size)
        audio[:n] = video.audio[:n]
        clips.append((frames_to_tensor(video.frames), audio, gt))
    other = np.roll(np.arange(len(clips)), 1)  # another clip's audio (a derangement)
    rows: dict[str, list] = defaultdict(list)  # name -> [(heatmaps (t, S, S), masks, class)]
    heads = int(dense.config.heads)
    for i, (frames, audio, gt) in enumerate(tqdm(clips, desc="heatmaps", unit="clip")):
        masks = gt[args.masks][: frames.shape[0]]
        keep = [k for k in range(0, masks.shape[0], args.frame_stride) if masks[k].any()]
        if not keep:
            continue
        y, cls = masks[keep], clip_class(gt)
        f = frames[: masks.shape[0]]
        wave, swapped = torch.from_numpy(audio), torch.from_numpy(clips[other[i]][1])
        for k in range(heads):
            rows[f"DenseAV head {k}"].append((dense.heatmaps(f[keep], wave, k)[0], y, cls))
        rows["DenseAV (max over heads)"].append((dense.heatmaps(f[keep], wave)[0], y, cls))
        rows["DenseAV, other clip's audio"].append((dense.heatmaps(f[keep], swapped)[0], y, cls))
        silence = torch.zeros_like(wave)
        rows["DenseAV, silence"].append((dense.heatmaps(f[keep], silence)[0], y, cls))
        tp, _ = sounding_masks(avs, f, audio, CFG, num_shuffles=1)
        rows["TPAVI (supervised)"].append((torch.from_numpy(tp[keep]), y, cls))
        drawn = len(rows["TPAVI (supervised)"])
        if args.png and drawn <= args.png_clips:
            out = Path(args.png)
            out.mkdir(parents=True, exist_ok=True)
            rgb = (f[keep].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
            heat = rows["DenseAV (max over heads)"][-1][0].numpy()
            for tag, m in (("denseav", heat), ("tpavi", tp[keep]), ("truth", y.astype(float))):
                write_overlay(out / f"clip{drawn}_{tag}.png", rgb, m, None, CFG, min_size=160)
        tp_other, _ = sounding_masks(avs, f, clips[other[i]][1], CFG, num_shuffles=1)
        rows["TPAVI, other clip's audio"].append((torch.from_numpy(tp_other[keep]), y, cls))
    frames_scored = sum(len(x[1]) for x in rows["TPAVI (supervised)"])
    print(
        f"{args.data} {args.split}: {len(clips)} clips, {frames_scored} scored frames "
        f"(every {args.frame_stride}th with a non-empty {args.masks}), positive rate "
        f"{np.mean([x[1].mean() for x in rows['TPAVI (supervised)']]):.3f}"
    )
    print("| row | pixel AP | AP/class | best IoU | J | F |\n| --- | --- | --- | --- | --- | --- |")
    for name, items in rows.items():
        h = np.concatenate([x[0].numpy() for x in items])
        y = np.concatenate([x[1] for x in items])
        by_class = defaultdict(list)
        for x in items:
            by_class[x[2]].append(x)
        per_class = [
            pixel_ap(np.concatenate([x[0].numpy() for x in v]), np.concatenate([x[1] for x in v]))
            for v in by_class.values()
        ]
        jf = AVSScores()
        jf.update(torch.from_numpy(h), torch.from_numpy(y))
        s = jf.compute()
        print(
            f"| {name} | {pixel_ap(h, y):.3f} | {np.nanmean(per_class):.3f} | "
            f"{best_iou(h, y):.3f} | {s['J']:.3f} | {s['F']:.3f} |"
        )
    print(f"({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
