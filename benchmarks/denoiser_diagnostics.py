"""Why a trained denoiser makes no audible contacts: underfitting, overfitting, or noisy samples?

    python benchmarks/denoiser_diagnostics.py FEAT MODEL [--clips 64] [--generate 4]

``FEAT``: the features folder the denoiser was trained on (its ``video_feats.npy`` and, for a
model with ``curve_dim``, ``sync_curves.npy``); ``MODEL``: the exported pipeline. Prints

* the flow-matching loss at fixed noise levels on ``--clips`` training and validation clips
  (equal: not overfitted; the condition is another clip's latents);
* at each level, the error of the model's clean-latent estimate ``x_t - sigma v`` against that
  of the noisy input itself (a ratio near 1: the model hardly denoises there);
* for ``--generate`` validation clips sampled from their frames (25 steps, guidance 3, a
  neighbour clip as condition): the frame-to-frame standard deviation of generated vs true
  latents (jitter) and the largest spectral flux of the decoded audio vs the true clip's (the
  onset detector ignores flux under 1.0).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from foley.pipelines.loading import load_pipeline

SIGMAS = (0.1, 0.2, 0.5, 0.9)


@torch.no_grad()
def loss_table(den, feats, n: int) -> list[tuple[float, float, float]]:
    """(sigma, flow loss, x0-estimate error / noisy-input error) per sigma."""
    x0 = torch.from_numpy(np.asarray(feats.latents[:n], np.float32))
    video = torch.from_numpy(np.asarray(feats.video_feats[:n], np.float32))
    curves = None
    if den.config.curve_dim:
        curves = torch.from_numpy(np.asarray(feats.sync_curves[:n], np.float32))
    cond = torch.roll(x0, 1, 0)
    rows = []
    for s in SIGMAS:
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
        xt = (1 - s) * x0 + s * noise
        v = den(xt, s * 1000.0, video, cond, sync_curves=curves)
        loss = float(((v - (noise - x0)) ** 2).mean())
        ratio = float(((xt - s * v - x0) ** 2).mean() / ((xt - x0) ** 2).mean())
        rows.append((s, loss, ratio))
    return rows


@torch.no_grad()
def sample_stats(pipe, feats, n: int) -> list[tuple[float, float, float, float]]:
    """(jitter generated, jitter true, flux max generated, flux max true) per clip."""
    from foley.io import load_audio
    from foley.metrics.onsets import onset_strength

    out = []
    for i in range(min(n, len(feats))):
        clip = feats.clips[i]
        j = clip["neighbours"][0] if clip["neighbours"] else i
        kwargs = dict(
            condition_audio=load_audio(feats.clips[j]["clip_path"]),
            num_inference_steps=25,
            guidance_scale=3.0,
            generator=torch.Generator().manual_seed(0),
        )
        frames = np.asarray(feats.frames[i])
        gen = pipe(frames, output_type="latent", **kwargs).latents[0][0]
        true = torch.from_numpy(np.asarray(feats.latents[i], np.float32))
        audio = pipe(frames, **kwargs).audios[0]
        ref = load_audio(clip["clip_path"])
        out.append(
            (
                float(gen.diff(dim=0).std()),
                float(true.diff(dim=0).std()),
                float(onset_strength(audio)[0].max()),
                float(onset_strength(ref)[0].max()),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    from training.features import SplitFeatures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features")
    parser.add_argument("model")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--generate", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pipe = load_pipeline(args.model, "cpu", quiet=True)
    pipe.set_progress_bar_config(disable=True)
    splits = {s: SplitFeatures(args.features, s) for s in ("train", "val")}
    print("| split | " + " | ".join(f"loss @ sigma {s}" for s in SIGMAS) + " |")
    print("| --- |" + " ---: |" * len(SIGMAS))
    tables = {s: loss_table(pipe.denoiser, f, args.clips) for s, f in splits.items()}
    for split, rows in tables.items():
        print(f"| {split} | " + " | ".join(f"{loss:.3f}" for _, loss, _ in rows) + " |")
    ratios = " | ".join(f"{r:.2f}" for _, _, r in tables["val"])
    print(f"| val: x0-estimate error / noisy-input error | {ratios} |")
    stats = sample_stats(pipe, splits["val"], args.generate)
    print("\n| val clip | jitter generated | jitter true | flux max generated | flux max true |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for i, (jg, jt, fg, ft) in enumerate(stats):
        print(f"| {i} | {jg:.3f} | {jt:.3f} | {fg:.2f} | {ft:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
