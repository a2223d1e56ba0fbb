"""Seconds to generate 8 s of audio with FoleyPipeline (batch 1), end to end and broken down.

    python benchmarks/generate_speed.py                    # CPU, random weights, median of 5
    python benchmarks/generate_speed.py --quick            # CPU, median of 3 runs
    python benchmarks/generate_speed.py --device cuda      # GPU: batch 1 and batch-32 throughput
    python benchmarks/generate_speed.py --model DIR        # a trained pipeline ("default": shipped)
    python benchmarks/generate_speed.py --model default --solver euler --steps 8 --threads 2 \
        --codec /work/runs/codec-stft-step3500-model --breakdown   # issue 22's figure
    python benchmarks/generate_speed.py --model default --steps 8 --threads 2 --against DIR
        # two models side by side: their runs interleaved, so machine noise hits both alike

Without ``--model`` the components are built at their default sizes with random weights (speed
does not depend on the weights). ``--codec DIR`` swaps the pipeline's codec for another one
(e.g. the frame-rate "stft" codec); when its latent_dim differs from the denoiser's, the denoiser
is rebuilt with the same configuration and that latent_dim, randomly initialised (its output is
noise, its cost is the point). The input is 8 s of 112 x 112 frames at 16 fps already in memory
(video decoding is not timed: "from frames"). With a retriever (a trained pipeline) the
conditioning clip is retrieved (MC3 video embedding, FAISS search, decoding the clip); else a
random condition wave is passed. The time covers frame preparation, retrieval, condition
encoding, video encoding, the sampler loop with classifier-free guidance (two branches per step,
one batch), codec decoding, sync shaping and the crossfade of the three 3 s windows.

``--breakdown`` times each part (the minimum over the runs of its seconds per call of
``__call__``; wall clock, and process CPU seconds of all threads): on a shared machine the
minimum is the least disturbed run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch

from foley.pipelines.loading import load_pipeline


def build_pipeline(model: str | None, codec_dir: str | None = None):
    """The pipeline to time: ``model`` (a folder, "default" for the shipped one) or the default
    sizes with random weights; ``codec_dir`` replaces its codec (see the module docstring)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from foley.models.codec import FoleyCodec
    from foley.models.denoiser import FoleyDenoiser
    from foley.models.video_encoder import VideoEncoder
    from foley.pipelines.foley_pipeline import FoleyPipeline

    torch.manual_seed(0)
    if model:
        pipe = load_pipeline(None if model == "default" else model, "cpu", quiet=True)
    else:
        codec = FoleyCodec()
        video_encoder = VideoEncoder()
        denoiser = FoleyDenoiser(
            latent_dim=codec.config.latent_dim, video_dim=video_encoder.config.dim
        )
        pipe = FoleyPipeline(codec, video_encoder, denoiser, FlowMatchEulerDiscreteScheduler())
    if codec_dir:
        codec = FoleyCodec.from_pretrained(codec_dir).eval()
        swap = {"codec": codec}
        if codec.config.latent_dim != pipe.denoiser.config.latent_dim:
            config = {k: v for k, v in pipe.denoiser.config.items() if not k.startswith("_")}
            config["latent_dim"] = codec.config.latent_dim
            swap["denoiser"] = FoleyDenoiser(**config).eval()
        pipe = FoleyPipeline.from_pipe(pipe, **swap)
    return pipe


class PartTimers:
    """Wall and CPU seconds spent in named callables, wrapped in place for the timing."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list = []

    def wrap(self, owner, attr: str, name: str) -> None:
        if owner is None or not hasattr(owner, attr):
            return
        fn = getattr(owner, attr)

        def timed_call(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[name] += time.perf_counter() - w
                self.cpu[name] += time.process_time() - c
                self.calls[name] += 1

        had = attr in vars(owner)
        setattr(owner, attr, timed_call)
        self._undo.append((owner, attr, fn, had))

    def reset(self) -> None:
        self.wall.clear(), self.cpu.clear(), self.calls.clear()

    def restore(self) -> None:
        for owner, attr, fn, had in reversed(self._undo):
            if had and not isinstance(owner, torch.nn.Module):
                setattr(owner, attr, fn)
            else:
                delattr(owner, attr)
        self._undo.clear()


@contextmanager
def breakdown_timers(pipe):
    """Timers around every part of ``pipe.__call__`` (module functions and instance methods)."""
    from foley.pipelines import foley_pipeline as fp

    t = PartTimers()
    t.wrap(pipe, "_prepare_video", "frame preparation")
    t.wrap(pipe, "retrieve", "retrieval (total)")
    if pipe.retriever is not None:
        t.wrap(pipe.retriever, "embed_videos", "  MC3 video embedding")
        t.wrap(pipe.retriever.index, "search", "  FAISS search")
        t.wrap(pipe.retriever, "clip_audio", "  decoding the clip")
    t.wrap(pipe, "_encode_conditions", "condition: codec encode")
    t.wrap(pipe, "_encode_video", "video encoder (+ sync curves)")
    t.wrap(pipe, "_denoise", "sampler loop (total)")
    t.wrap(pipe.denoiser, "forward", "  denoiser calls (2x batch if guided)")
    t.wrap(pipe.codec, "decode", "codec decode")
    t.wrap(fp, "shape_to_curves", "sync shaping")
    t.wrap(fp, "stitch", "windows + crossfade")
    try:
        yield t
    finally:
        t.restore()


def timed(fn, runs: int, sync, timers: PartTimers | None = None):
    """Wall-clock and process CPU seconds of each run (after one warm-up run), and per part the
    (wall, cpu, calls) of the run where it was fastest."""
    fn()  # warm-up
    sync()
    wall, cpu = [], []
    parts: dict[str, tuple[float, float, int]] = {}
    for _ in range(runs):
        if timers is not None:
            timers.reset()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        for name, w in (timers.wall if timers is not None else {}).items():
            if name not in parts or w < parts[name][0]:
                parts[name] = (w, timers.cpu[name], timers.calls[name])
    return wall, cpu, parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="pipeline folder, or 'default' (the shipped model)")
    parser.add_argument("--codec", help="codec folder replacing the pipeline's codec")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--solver", default=None, help="euler|heun|dpm|unipc (default: saved)")
    parser.add_argument("--shift", type=float, default=None)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--mode", default="ambient_joint")
    parser.add_argument(
        "--no-retrieval", action="store_true", help="pass a random condition wave instead"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32, help="GPU throughput batch")
    parser.add_argument("--quick", action="store_true", help="3 runs, no throughput")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--breakdown", action="store_true", help="time each part")
    parser.add_argument(
        "--against", metavar="MODEL", help="a second pipeline timed in the same run, each "
        "round running both (the shipped one: 'default')",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = 3 if args.quick else args.runs

    pipe = build_pipeline(args.model, args.codec).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    cfg = pipe.av_config
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (cfg.num_frames(args.seconds), cfg.frame_size, cfg.frame_size, 3))
    frames = frames.astype(np.uint8)
    retrieve = pipe.retriever is not None and not args.no_retrieval
    condition = None
    if not retrieve and args.mode != "no_condition":
        condition = rng.normal(0, 0.1, cfg.samples_per_clip).astype(np.float32)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    params = sum(p.numel() for p in pipe.denoiser.parameters()) / 1e6

    def run(batch: int, target=None) -> None:
        (target or pipe)(
            [frames] * batch if batch > 1 else frames,
            mode=args.mode,
            condition_audio=condition,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            generator=torch.Generator().manual_seed(0),
            solver=args.solver,
            shift=args.shift,
        )

    device = torch.cuda.get_device_name() if cuda else f"{platform.processor() or 'cpu'}"
    load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"device: {device}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
        f"{load}; denoiser {params:.2f} M params (hidden {pipe.denoiser.config.hidden_dim}, "
        f"latent_dim {pipe.denoiser.config.latent_dim}), codec "
        f"{getattr(pipe.codec.config, 'architecture', 'seanet')}; {args.mode}, "
        f"{'retrieval' if retrieve else 'given condition'}, solver {args.solver or 'saved'}, "
        f"{args.steps} steps, guidance {args.guidance}"
    )
    if args.against:
        return _side_by_side(pipe, args, run, runs, sync)
    if args.breakdown:
        with breakdown_timers(pipe) as timers:
            times, cpu, parts = timed(lambda: run(1), runs, sync, timers)
    else:
        times, cpu, parts = timed(lambda: run(1), runs, sync)
    median = statistics.median(times)
    print(
        f"batch 1: {median:.3f} s for {args.seconds:g} s of audio (median of {runs}; "
        f"min {min(times):.3f}, max {max(times):.3f}); "
        f"real-time factor {args.seconds / median:.2f}x"
    )
    if not cuda:  # on a shared machine, CPU seconds show what a quiet one would take
        print(
            f"batch 1: {statistics.median(cpu):.3f} CPU seconds per run (all threads; "
            f"min {min(cpu):.3f})"
        )
    if parts:
        print(f"{'part (fastest of the runs)':40s} {'wall s':>8s} {'CPU s':>8s} {'calls':>6s}")
        for name, (w, c, n) in parts.items():
            print(f"{name:40s} {w:8.4f} {c:8.4f} {n:6d}")
    if cuda and not args.quick:
        t = statistics.median(timed(lambda: run(args.batch), max(1, runs // 2), sync)[0])
        print(
            f"batch {args.batch}: {t:.3f} s for {args.batch} x {args.seconds:g} s; "
            f"throughput {args.batch * args.seconds / t:.1f} s of audio per second"
        )
    return 0


def _side_by_side(pipe, args, run, runs: int, sync) -> int:
    """``--against``: rounds of one run of each pipeline (alternating which goes first) after a
    warm-up of each; medians and minima of each, and the median of the per-round ratio."""
    other = build_pipeline(args.against, args.codec).to(args.device)
    other.set_progress_bar_config(disable=True)
    models = {args.model or "random weights": pipe, args.against: other}
    names = list(models)
    times: dict[str, list[float]] = {n: [] for n in names}

    def one(name: str) -> float:
        start = time.perf_counter()
        run(1, models[name])
        sync()
        return time.perf_counter() - start

    for name in names:  # warm-up
        run(1, models[name])
    for r in range(runs):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(one(name))
    for name in names:
        t = times[name]
        print(f"{name}: {statistics.median(t):.3f} s for {args.seconds:g} s of audio (median of "
              f"{runs}; min {min(t):.3f}, max {max(t):.3f})")  # fmt: skip
    ratio = statistics.median(b / a for a, b in zip(times[names[0]], times[names[1]]))
    print(f"median per-round ratio {names[1]} / {names[0]}: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
