"""Codec speed: encode + decode of 10 s of 16 kHz audio on CPU, median of several runs.

    python -m benchmarks.codec_speed                 # default FoleyCodec size, 2 threads
    python -m benchmarks.codec_speed --model OUT/model --runs 9
    python -m benchmarks.codec_speed --quick         # 3 runs

Target (issue 10): under 1 s on the 2-core CPU for the default size.  Weights do not change the
speed, so an untrained model of the default size measures the same as a trained one.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from foley.config import DEFAULT_CONFIG
from foley.models.codec import FoleyCodec


def time_codec(codec: FoleyCodec, seconds: float = 10.0, runs: int = 7, warmup: int = 1):
    """(wall seconds, process CPU seconds) per encode+decode of one ``seconds`` long wave."""
    n = DEFAULT_CONFIG.num_samples(seconds)
    wave = 0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0))
    times, cpu_times = [], []
    with torch.inference_mode():
        for i in range(warmup + runs):
            start, cpu_start = time.perf_counter(), time.process_time()
            out = codec.decode(codec.encode(wave), n)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            assert out.shape == wave.shape
            if i >= warmup:
                times.append(elapsed)
                cpu_times.append(cpu)
    return times, cpu_times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a save_pretrained folder (default: default-size codec)")
    parser.add_argument("--n-filters", type=int, help="override the default width")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model:
        codec = FoleyCodec.from_pretrained(args.model)
    elif args.n_filters:
        codec = FoleyCodec(n_filters=args.n_filters)
    else:
        codec = FoleyCodec()
    codec.eval()
    runs = 3 if args.quick else args.runs
    times, cpu_times = time_codec(codec, args.seconds, runs)
    params = sum(p.numel() for p in codec.parameters()) / 1e6
    cfg = codec.config
    print(
        f"codec n_filters={cfg.n_filters} latent_dim={cfg.latent_dim} lstm={cfg.lstm_layers} "
        f"({params:.2f} M params), {args.seconds:g} s audio, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"encode+decode runs (s): {' '.join(f'{t:.3f}' for t in times)}")
    print(f"median encode+decode of {args.seconds:g} s: {statistics.median(times):.3f} s")
    print(f"median process CPU time per run: {statistics.median(cpu_times):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
