"""Sync shaping on FoleyWorld clips: onset F1 and ambient level, shaping off vs on.

    python benchmarks/sync_shaping.py --data DATA --model MODEL [--split val] [--n 40]

``MODEL`` is a pipeline folder with a sync model (its ``video_encoder`` or ``sync/``). Every clip
is generated once per mode with shaping off (25 steps, guidance 3, seed 0, retrieval excluding
the clip's own video); the shaping settings are then applied to that same audio with the curves
the pipeline's sync model predicts for the clip (:func:`foley.pipelines.shaping.shape_to_curves`,
what the pipeline does per window). Rows:

* ``sync curves alone``: the peaks of the predicted onset curve (no audio at all): the ceiling
  of what shaping can place;
* ``off``: the denoiser's audio as it is;
* ``default x F``: the mode's :data:`~foley.pipelines.shaping.MODE_SETTINGS`, strength times F
  (the pipeline's ``sync_shaping=F``);
* ``no make-up``: the default without ``makeup_db`` (cuts only).

Onset F1 against the ground-truth audible event onsets (+-50 ms), detected onsets per clip, the
ambient level (quietest 0.5 s, dBFS) and the peak (dBFS), means over clips.  The settings were
picked on ``val``; report ``test`` with ``foley eval``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from foley.pipelines.loading import load_pipeline


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tqdm.auto import tqdm

    from foley.data.ego4d import ClipDataset
    from foley.evaluation.rows import audible_onsets
    from foley.io import frames_to_tensor
    from foley.metrics.audio import ambient_level_db
    from foley.metrics.onsets import detect_onsets, match_onsets
    from foley.models.sync import curve_onsets
    from foley.pipelines.shaping import MODE_SETTINGS, shape_to_curves, shaping_settings

    pipe = load_pipeline(args.model, "cpu", quiet=True)
    pipe.set_progress_bar_config(disable=True)
    if not pipe.has_sync_curves:
        raise SystemExit(f"{args.model} has no sync model")
    cfg = pipe.av_config
    ds = ClipDataset(args.data, args.split, cfg)
    modes = ("ambient_joint", "action_focused")
    rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    curve_f1 = []
    for i in tqdm(range(min(args.n, len(ds))), desc="clips", unit="clip"):
        rec = ds.records[i]
        frames, _ = ds.load_clip(i)
        z = np.load(str(rec.clip_path(ds.root)).replace(".mp4", ".gt.npz"))
        truth = audible_onsets(json.loads(str(z["events_json"])))
        x = frames_to_tensor(frames)[None, : cfg.frames_per_clip]
        with torch.no_grad():
            curves = pipe._encode_video(x, cfg.latents_per_clip)[1][0].float().numpy()
        curve_f1.append(match_onsets(curve_onsets(curves[:, 0], cfg), truth).f1)
        for mode in modes:
            cond = pipe.retrieve([frames], mode, where={"exclude_video_uid": rec.video_uid})[0]
            raw = pipe(
                frames,
                mode=mode,
                condition_audio=cond.audio,
                generator=torch.Generator().manual_seed(0),
                sync_shaping=0,
            ).audios[0]
            variants = {"off": raw}
            for factor in (0.5, 1.0, 2.0):
                kw = shaping_settings(mode, factor)
                variants[f"default x {factor:g}"] = shape_to_curves(raw, curves, cfg=cfg, **kw)
            kw = dict(MODE_SETTINGS[mode], makeup_db=0.0)
            variants["no make-up"] = shape_to_curves(raw, curves, cfg=cfg, **kw)
            for name, wave in variants.items():
                found = detect_onsets(wave, cfg)
                peak = 20 * np.log10(np.abs(wave).max() + 1e-12)
                stats = (match_onsets(found, truth).f1, len(found), ambient_level_db(wave), peak)
                rows.setdefault((mode, name), []).append(stats)

    n = len(curve_f1)
    print(f"\n{args.split}, {n} clips; sync curves alone: onset F1 {np.mean(curve_f1):.3f}\n")
    print("| mode | shaping | onset F1 | onsets/clip | ambient dBFS | peak dBFS |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for (mode, name), vals in rows.items():
        f1, count, amb, peak = np.mean(vals, axis=0)
        print(f"| {mode} | {name} | {f1:.3f} | {count:.2f} | {amb:.1f} | {peak:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
