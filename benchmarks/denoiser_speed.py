"""CPU seconds of one denoiser call at other sizes, and of its per-step-invariant part.

    OMP_NUM_THREADS=1 python -m benchmarks.denoiser_speed --threads 1

The figures behind issue 22's speed proposals (docs/BENCHMARKS.md, "Generation speed on the
few-step default"): one guided call for 8 s of audio is a batch of 6 (3 windows x 2 branches of
classifier-free guidance), an unguided (guidance-distilled) one a batch of 3. Random weights
(cost does not depend on them); 150 latent frames and 48 video frames per window; process CPU
seconds, the minimum of ``--runs`` calls (a shared machine slows some of them).
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch

from foley.models.denoiser import FoleyDenoiser

SHIPPED = dict(latent_dim=64, video_dim=128, hidden_dim=192, num_layers=4, curve_dim=2)


def cpu_seconds(fn, runs: int) -> float:
    """Minimum process CPU seconds of ``fn()`` over ``runs`` calls (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def inputs(model: FoleyDenoiser, batch: int) -> dict:
    """Denoiser arguments for ``batch`` windows of 3 s (half of them unguided when even)."""
    c = model.config
    g = torch.Generator().manual_seed(0)
    return dict(
        latents=torch.randn(batch, 150, c.latent_dim, generator=g),
        timestep=torch.full((batch,), 500.0),
        video_features=torch.randn(batch, 48, c.video_dim, generator=g),
        condition_latents=torch.randn(batch, 150, c.latent_dim, generator=g),
        video_keep=torch.arange(batch) < max(1, batch // 2),
        condition_keep=torch.ones(batch, dtype=torch.bool),
        sync_curves=torch.rand(batch, 150, c.curve_dim, generator=g) if c.curve_dim else None,
    )


def call(model: FoleyDenoiser, args: dict) -> torch.Tensor:
    return model(**args)


def invariant_part(model: FoleyDenoiser, args: dict) -> None:
    """What a call computes that does not change between sampler steps: the video and
    condition streams and tokens, the curve stream, and every block's cross-attention keys and
    values of that context."""
    batch = args["latents"].shape[0]
    tokens = 75
    _, video = model._video_streams(args["video_features"], args["video_keep"], batch, tokens)
    cond = model._condition_tokens(args["condition_latents"], args["condition_keep"], batch)
    context = torch.cat([video, cond], dim=1)
    if model.config.curve_dim:
        model._curve_stream(args["sync_curves"], args["video_keep"], batch, tokens, torch.float32)
    for block in model.blocks:
        block.cross_attn.to_kv(context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = [
        ("shipped size (hidden 192, 4 layers)", {}),
        ("hidden 128, 4 layers", dict(hidden_dim=128)),
        ("hidden 192, 3 layers", dict(num_layers=3)),
        ("hidden 128, 3 layers", dict(hidden_dim=128, num_layers=3)),
        ("hidden 192, 4 layers, patch 3", dict(patch_size=3)),
    ]
    print(f"torch threads {torch.get_num_threads()}; CPU s per call, min of {args.runs}")
    print(f"{'denoiser':36s} {'params M':>8s} {'batch 6':>8s} {'batch 3':>8s} {'invariant':>9s}")
    torch.manual_seed(0)
    with torch.inference_mode():
        for name, change in variants:
            model = FoleyDenoiser(**{**SHIPPED, **change}).eval()
            params = sum(p.numel() for p in model.parameters()) / 1e6
            six, three = inputs(model, 6), inputs(model, 3)
            t6 = cpu_seconds(partial(call, model, six), args.runs)
            t3 = cpu_seconds(partial(call, model, three), args.runs)
            fixed = cpu_seconds(partial(invariant_part, model, six), args.runs)
            print(f"{name:36s} {params:8.2f} {t6:8.4f} {t3:8.4f} {fixed:9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
