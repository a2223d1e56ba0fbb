"""Seconds to generate 8 s of audio with FoleyPipeline (default sizes and steps, batch 1).

    python benchmarks/generate_speed.py                    # CPU, median of 5 runs
    python benchmarks/generate_speed.py --quick            # CPU, median of 3 runs
    python benchmarks/generate_speed.py --device cuda      # GPU: batch 1 and batch-32 throughput
    python benchmarks/generate_speed.py --model DIR        # a trained pipeline instead

Without ``--model`` the components are built at their default sizes with random weights (speed
does not depend on the weights). The input is 8 s of 112 x 112 frames at 16 fps already in
memory (video decoding is not timed); the time covers video encoding, conditioning-clip
encoding, the sampler loop with classifier-free guidance (two branches per step), codec
decoding and the crossfade of the three 3 s windows.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from foley.pipelines.loading import load_pipeline


def build_pipeline(model: str | None):
    from diffusers import FlowMatchEulerDiscreteScheduler

    from foley.models.codec import FoleyCodec
    from foley.models.denoiser import FoleyDenoiser
    from foley.models.video_encoder import VideoEncoder
    from foley.pipelines.foley_pipeline import FoleyPipeline

    if model:
        return load_pipeline(model, "cpu")
    torch.manual_seed(0)
    codec = FoleyCodec()
    video_encoder = VideoEncoder()
    denoiser = FoleyDenoiser(latent_dim=codec.config.latent_dim, video_dim=video_encoder.config.dim)
    return FoleyPipeline(codec, video_encoder, denoiser, FlowMatchEulerDiscreteScheduler())


def timed(fn, runs: int, sync) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each run (after one warm-up run)."""
    fn()  # warm-up
    sync()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="pipeline folder (default: random weights, default sizes)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32, help="GPU throughput batch")
    parser.add_argument("--quick", action="store_true", help="3 runs, no throughput")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = 3 if args.quick else args.runs

    pipe = build_pipeline(args.model).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    cfg = pipe.av_config
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (cfg.num_frames(args.seconds), cfg.frame_size, cfg.frame_size, 3))
    frames = frames.astype(np.uint8)
    condition = rng.normal(0, 0.1, cfg.samples_per_clip).astype(np.float32)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    params = sum(p.numel() for p in pipe.denoiser.parameters()) / 1e6

    def run(batch: int) -> None:
        pipe(
            [frames] * batch if batch > 1 else frames,
            condition_audio=condition,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            generator=torch.Generator().manual_seed(0),
        )

    device = torch.cuda.get_device_name() if cuda else f"{platform.processor() or 'cpu'}"
    print(
        f"device: {device}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}; "
        f"denoiser {params:.1f} M params, {args.steps} steps, guidance {args.guidance}"
    )
    times, cpu = timed(lambda: run(1), runs, sync)
    median = statistics.median(times)
    print(
        f"batch 1: {median:.3f} s for {args.seconds:g} s of audio (median of {runs}; "
        f"min {min(times):.3f}, max {max(times):.3f}); "
        f"real-time factor {args.seconds / median:.2f}x"
    )
    if not cuda:  # on a shared machine, CPU seconds show what a quiet one would take
        print(f"batch 1: {statistics.median(cpu):.3f} CPU seconds per run (all threads)")
    if cuda and not args.quick:
        t = statistics.median(timed(lambda: run(args.batch), max(1, runs // 2), sync)[0])
        print(
            f"batch {args.batch}: {t:.3f} s for {args.batch} x {args.seconds:g} s; "
            f"throughput {args.batch * args.seconds / t:.1f} s of audio per second"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
