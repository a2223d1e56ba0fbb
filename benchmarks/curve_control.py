"""Does a contact in the sync curves move the generated transient? And where is sync decided?

    python -m benchmarks.curve_control FEAT MODEL [--clips 16] [--shift 0.5] [--steps 25]

``FEAT``: a features folder with ``video_feats``/``sync_curves`` (training/features.py +
``foley train sync``), ``MODEL``: a pipeline whose denoiser takes sync curves. Two measurements
on ``--clips`` validation clips (no retrieval: each clip's neighbour is the condition):

* **controlled test**: each clip is generated twice with the same noise, video features and
  condition: once with its sync curves, once with the curves moved ``--shift`` seconds later
  (rolled). At every contact of the curves (peaks of the onset curve) the level of the audio
  in the 100 ms after it is compared between the two outputs: *at the new places* (contact +
  shift) the moved-curve output minus the original, *at the old places* the same difference.
  A denoiser that follows its curves gets louder at the new places and quieter at the old ones
  (both in dB); one that reads timing from the video features (not moved) changes neither.
  The onsets detected in the two outputs are compared too: *moved* is the fraction of the
  first output's onsets found again ``shift`` later in the second (+-50 ms), *stayed* the
  fraction found at the same time.
* **sync per noise level**: the true latents noised to sigma, the denoiser's one-step clean
  estimate ``x_t - sigma v`` decoded, and its onsets scored (F1, +-50 ms) against the onsets of
  the true latents decoded (what the codec lets through: the ceiling), on the clips where that
  reference has onsets. Where F1 is high at large sigma, the timing comes from the condition
  (video, curves); at small sigma it comes from the noisy latents themselves.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from foley.metrics.onsets import detect_onsets, onset_f1
from foley.models.sync import curve_onsets

SIGMAS = (0.2, 0.5, 0.8, 0.95)


def _matched(ref: np.ndarray, est: np.ndarray, offset: float, tol: float = 0.05) -> float:
    """Fraction of ``ref`` onsets with an ``est`` onset within ``tol`` of ``ref + offset``."""
    if len(ref) == 0:
        return float("nan")
    return float(np.mean([np.min(np.abs(est - (r + offset)), initial=np.inf) <= tol for r in ref]))


@torch.no_grad()
def controlled(pipe, feats, n: int, shift_s: float, steps: int, guidance: float) -> dict:
    cfg = pipe.av_config
    frames_shift = int(round(shift_s * cfg.sample_rate / cfg.hop_length))
    scheduler = pipe.scheduler

    class _NoBar:  # _denoise reports each model call to a progress bar
        def update(self, n: int = 1) -> None:
            pass

    moved, stayed, counts, new_db, old_db = [], [], [], [], []
    win = cfg.num_samples(0.1)

    def level(wave: np.ndarray, t: float) -> float:  # dBFS of the 100 ms after t
        a = int(t * cfg.sample_rate)
        return float(10 * np.log10(np.mean(wave[a : a + win] ** 2) + 1e-10))

    for i in range(min(n, len(feats))):
        clip = feats.clips[i]
        j = clip["neighbours"][0] if clip["neighbours"] else i
        video = torch.from_numpy(np.asarray(feats.video_feats[i : i + 1], np.float32))
        cond = torch.from_numpy(np.asarray(feats.latents[j : j + 1], np.float32))
        curves = torch.from_numpy(np.asarray(feats.sync_curves[i : i + 1], np.float32))
        later = torch.roll(curves, frames_shift, dims=1)
        later[:, :frames_shift] = 0.0  # nothing wraps around
        noise = torch.randn(cond.shape, generator=torch.Generator().manual_seed(i))
        onsets, waves = [], []
        for c in (curves, later):
            lat = pipe._denoise(
                scheduler, noise.clone(), video, cond, torch.ones(1, dtype=torch.bool),
                steps, guidance, None, _NoBar(), c,
            )  # fmt: skip
            wave = pipe.codec.decode(lat, cfg.samples_per_clip)[0].numpy()
            onsets.append(detect_onsets(wave, cfg))
            waves.append(wave)
        contacts = curve_onsets(curves[0, :, 0].numpy(), cfg)
        for t in contacts[contacts < cfg.clip_seconds - shift_s - 0.1]:
            new_db.append(level(waves[1], t + shift_s) - level(waves[0], t + shift_s))
            old_db.append(level(waves[1], t) - level(waves[0], t))
        first = onsets[0][onsets[0] < cfg.clip_seconds - shift_s - 0.05]  # can still move
        counts.append(len(first))
        if len(first):
            moved.append(_matched(first, onsets[1], shift_s))
            stayed.append(_matched(first, onsets[1], 0.0))
    return {
        "clips": min(n, len(feats)),
        "onsets_per_clip": float(np.mean(counts)),
        "moved": float(np.mean(moved)) if moved else float("nan"),
        "stayed": float(np.mean(stayed)) if stayed else float("nan"),
        "contacts": len(new_db),
        "level_change_new_db": float(np.mean(new_db)) if new_db else float("nan"),
        "level_change_old_db": float(np.mean(old_db)) if old_db else float("nan"),
    }


@torch.no_grad()
def per_noise_level(pipe, feats, n: int) -> list[dict]:
    cfg = pipe.av_config
    n = min(n, len(feats))
    x0 = torch.from_numpy(np.asarray(feats.latents[:n], np.float32))
    truth = [detect_onsets(w, cfg) for w in pipe.codec.decode(x0, cfg.samples_per_clip).numpy()]
    keep = [i for i, t in enumerate(truth) if len(t)]  # clips whose reference has onsets
    x0, truth = x0[keep], [truth[i] for i in keep]
    video = torch.from_numpy(np.asarray(feats.video_feats[:n], np.float32))[keep]
    curves = torch.from_numpy(np.asarray(feats.sync_curves[:n], np.float32))[keep]
    cond = torch.roll(x0, 1, 0)
    rows = []
    for s in SIGMAS:
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
        xt = (1 - s) * x0 + s * noise
        v = pipe.denoiser(xt, s * 1000.0, video, cond, sync_curves=curves)
        est = pipe.codec.decode(xt - s * v, cfg.samples_per_clip).numpy()
        noisy = pipe.codec.decode(xt, cfg.samples_per_clip).numpy()
        f1 = [onset_f1(e, t, cfg).f1 for t, e in zip(truth, est)]
        f1_noisy = [onset_f1(e, t, cfg).f1 for t, e in zip(truth, noisy)]
        rows.append({"sigma": s, "clips": len(keep), "onset_f1_estimate": float(np.mean(f1)),
                     "onset_f1_noisy_input": float(np.mean(f1_noisy))})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    from foley.pipelines.loading import load_pipeline
    from training.features import SplitFeatures

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("features")
    p.add_argument("model")
    p.add_argument("--split", default="val")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--shift", type=float, default=0.5, help="seconds the curves are moved")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    pipe = load_pipeline(args.model, device="cpu")
    if not pipe.denoiser.config.curve_dim:
        raise SystemExit(f"{args.model}: its denoiser takes no sync curves")
    feats = SplitFeatures(args.features, args.split)
    result = {
        "controlled": controlled(pipe, feats, args.clips, args.shift, args.steps, args.guidance),
        "per_noise_level": per_noise_level(pipe, feats, args.clips),
    }
    c = result["controlled"]
    print(f"controlled test, {c['clips']} clips, curves moved {args.shift:g} s: at "
          f"{c['contacts']} contacts the level changed {c['level_change_new_db']:+.1f} dB at the "
          f"new places and {c['level_change_old_db']:+.1f} dB at the old ones; "
          f"{c['moved']:.2f} of the detected onsets moved with them, {c['stayed']:.2f} stayed "
          f"({c['onsets_per_clip']:.1f} onsets per clip)")  # fmt: skip
    print("| sigma | clips | onset F1, one-step clean estimate | onset F1, noisy input |")
    print("| ---: | ---: | ---: | ---: |")
    for r in result["per_noise_level"]:
        print(f"| {r['sigma']:.2f} | {r['clips']} | {r['onset_f1_estimate']:.3f} "
              f"| {r['onset_f1_noisy_input']:.3f} |")  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
