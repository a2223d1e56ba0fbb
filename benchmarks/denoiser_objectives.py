"""Compare trained denoisers (e.g. one per objective) on validation clips, in codec-latent space.

    python benchmarks/denoiser_objectives.py FEAT RUN_flow/model RUN_v/model RUN_eps/model \
        [--seeds 3 --steps 25]

For each pipeline folder: latents generated (``output_type="latent"``) for every clip of
``FEAT/val`` from its frames, conditioned on a neighbour clip of the same video (as in training),
``--seeds`` seeds each, compared with the clip's true latents (``FEAT/val/latents.npy``):

* ``fd``: Frechet distance between the Gaussian fits of generated and true latent *frames*
  (distribution match; lower is better);
* ``sync``: correlation over time of generated and true latents, averaged over channels (are
  the events where the reference's are? higher is better);
* ``mse``: mean squared error to the true latents.

The metrics live in latent space so that they do not depend on how well the codec decodes. Same
run: the neighbour clip's own latents (right ambience, wrong action: the retrieval-only row),
the first model with its video dropped (``guidance 0``: floor for sync) and the true latents of
the clips themselves shuffled across clips (distribution ceiling for ``fd``).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy import linalg

from foley.pipelines.loading import load_pipeline


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of two sets of vectors (n, d)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def sync(gen: np.ndarray, ref: np.ndarray) -> float:
    """Mean over channels of the temporal correlation of (L, C) latents."""
    g = gen - gen.mean(0)
    r = ref - ref.mean(0)
    den = np.sqrt((g**2).sum(0) * (r**2).sum(0)) + 1e-12
    return float(((g * r).sum(0) / den).mean())


def summarize(name: str, gens: list[np.ndarray], refs: list[np.ndarray]) -> tuple:
    return (
        name,
        frechet(np.concatenate(gens), np.concatenate(refs)),
        float(np.mean([sync(g, r) for g, r in zip(gens, refs)])),
        float(np.mean([((g - r) ** 2).mean() for g, r in zip(gens, refs)])),
        len(gens),
    )


def generate(pipe, feats, seeds: int, steps: int, guidance: float | None):
    from foley.io import load_audio

    gens, refs = [], []
    for i, clip in enumerate(feats.clips):
        cond = load_audio(feats.clips[clip["neighbours"][0]]["clip_path"])
        for seed in range(seeds):
            kwargs = {} if guidance is None else {"guidance_scale": guidance}
            out = pipe(
                np.array(feats.frames[i]),
                condition_audio=cond,
                num_inference_steps=steps,
                generator=torch.Generator().manual_seed(seed),
                output_type="latent",
                **kwargs,
            )
            gens.append(out.latents[0][0].numpy())
            refs.append(np.array(feats.latents[i], np.float32))
    return gens, refs


def main(argv: list[str] | None = None) -> int:
    from training.features import SplitFeatures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="features folder with a val split")
    parser.add_argument("models", nargs="+", help="pipeline folders to compare")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args(argv)
    feats = SplitFeatures(args.features, "val")
    true = [np.array(feats.latents[i], np.float32) for i in range(len(feats))]
    rows, first = [], None
    for path in args.models:
        pipe = load_pipeline(path, "cpu", quiet=True)
        pipe.set_progress_bar_config(disable=True)
        first = first or pipe
        label = f"{path} ({type(pipe.scheduler).__name__}, {args.steps} steps)"
        rows.append(summarize(label, *generate(pipe, feats, args.seeds, args.steps, None)))
    rows.append(summarize("floor: first model, video dropped", *generate(first, feats, 1, 25, 0.0)))
    neighbours = [true[c["neighbours"][0]] for c in feats.clips]
    rows.append(summarize("retrieval only: the neighbour clip's latents", neighbours, true))
    shuffled = true[1:] + true[:1]
    rows.append(summarize("true latents of other val clips", shuffled, true))
    print(f"{'':<72} {'fd':>7} {'sync':>6} {'mse':>6} {'n':>4}")
    for name, fd, s, mse, n in rows:
        print(f"{name[-72:]:<72} {fd:7.2f} {s:6.3f} {mse:6.3f} {n:4d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
