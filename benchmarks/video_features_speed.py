"""CPU cost of the video encoders for 8 s of video (128 frames at 16 fps, 112 x 112).

    OMP_NUM_THREADS=1 python benchmarks/video_features_speed.py [--threads 1] [--repeats 2]

Rows: frozen EfficientNet-Lite0 (:class:`~foley.models.pretrained_video.PretrainedVideoEncoder`)
at several input sizes and frame strides, and the shipped sync encoder for comparison. Each row
is the best of ``--repeats`` runs after a warm-up: wall time and the process's CPU time (on a
shared machine the CPU time is the steadier figure).
"""

from __future__ import annotations

import argparse
import time

import torch

from foley.defaults import DEFAULT_MODEL_DIR


def _best(fn, repeats: int) -> tuple[float, float]:
    """(wall s, CPU s) of the fastest of ``repeats`` calls (after one warm-up)."""
    fn()
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w, time.process_time() - c))
    return best


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    from foley.models.pretrained_video import PretrainedVideoEncoder
    from foley.models.sync import SyncModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 112, 160])
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = torch.rand(1, 128, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    rows = []
    for size in args.sizes:
        for stride in args.strides:
            enc = PretrainedVideoEncoder(image_size=size, frame_stride=stride).eval()
            wall, cpu = _best(lambda enc=enc: enc(frames), args.repeats)
            computed = -(-frames.shape[1] // stride)
            rows.append((f"EfficientNet-Lite0, {size} px, every {stride} frame(s)", wall, cpu,
                         1000 * cpu / computed))  # fmt: skip
    sync = SyncModel.from_pretrained(DEFAULT_MODEL_DIR / "video_encoder").eval()
    wall, cpu = _best(lambda: sync.encode(frames, 400), args.repeats)
    rows.append(
        ("sync encoder (shipped SyncModel, 56 px, every frame)", wall, cpu, 1000 * cpu / 128)
    )
    print(f"8 s clip = 128 frames of 112 x 112, {args.threads} thread(s), best of {args.repeats}")
    print("| encoder | wall ms / 8 s | CPU ms / 8 s | CPU ms / computed frame |")
    print("| --- | ---: | ---: | ---: |")
    for name, wall, cpu, per_frame in rows:
        print(f"| {name} | {1000 * wall:.0f} | {1000 * cpu:.0f} | {per_frame:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
