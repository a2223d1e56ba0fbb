"""FoleyWorld generation speed: clips per second end to end, and a per-stage breakdown.

    python benchmarks/foleyworld_speed.py                 # 200 clips, 2 workers, extrapolated
    python benchmarks/foleyworld_speed.py --quick         # 40 clips
    python benchmarks/foleyworld_speed.py --clips 10000   # the full 10,000-clip run
    python benchmarks/foleyworld_speed.py --sound-bank BANK   # with real recordings

Runs the same code as ``foley make-dataset`` (``generate_dataset``) into a temporary folder,
then times the stages (plan + audio, render, mp4 + ground-truth writing) on a few clips in
this process.  The 10,000-clip time is extrapolated linearly unless ``--clips 10000``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time

from foley.config import DEFAULT_CONFIG
from foley.data.foleyworld import FoleyWorldSettings, generate_dataset, plan_clip, plan_video
from foley.data.foleyworld.generate import write_clip
from foley.data.foleyworld.render import render_clip, sounding_masks
from foley.data.foleyworld.tracks import clip_audio

TARGET_CLIPS, TARGET_MINUTES = 10_000, 30.0


def stage_breakdown(num_clips: int, out_dir: str) -> dict[str, float]:
    """Mean CPU seconds per clip of each stage, single process (robust to other jobs)."""
    from foley.data.foleyworld.generate import make_clip

    settings = FoleyWorldSettings(videos=max(1, num_clips // 4), clips_per_video=4, seed=123)
    cfg = DEFAULT_CONFIG
    totals = {"plan+audio": 0.0, "render+masks": 0.0, "write mp4+gt": 0.0}
    done = 0
    for v in range(settings.videos):
        video = plan_video(settings, v, "train")
        for c in range(settings.clips_per_video):
            t0 = time.process_time()
            plan = plan_clip(settings, video, c, cfg)
            clip_audio(plan, settings, cfg)
            t1 = time.process_time()
            rendered = render_clip(plan, cfg)
            sounding_masks(plan, rendered, cfg)
            t2 = time.process_time()
            clip = make_clip(settings, video, c, cfg)
            t3 = time.process_time()
            write_clip(out_dir, clip, cfg)
            t4 = time.process_time()
            totals["plan+audio"] += t1 - t0
            totals["render+masks"] += t2 - t1
            totals["write mp4+gt"] += t4 - t3
            done += 1
    return {k: v / done for k, v in totals.items()}


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--clips-per-video", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="40 clips")
    parser.add_argument("--sound-bank", default=None, help="a bank from foley sound-bank fetch")
    args = parser.parse_args()
    clips = 40 if args.quick else args.clips
    videos = max(1, clips // args.clips_per_video)
    clips = videos * args.clips_per_video
    settings = FoleyWorldSettings(videos=videos, clips_per_video=args.clips_per_video, seed=0)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} (other jobs share the CPUs)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        generate_dataset(
            os.path.join(tmp, "d"),
            settings,
            sound_bank=args.sound_bank,
            workers=args.workers,
            progress=False,
        )
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        breakdown = stage_breakdown(8, os.path.join(tmp, "stages"))
    per_clip = wall / clips
    full_minutes = per_clip * TARGET_CLIPS / 60
    print(f"generated {clips} clips ({videos} videos) with {args.workers} workers in {wall:.1f} s")
    print(f"throughput: {clips / wall:.2f} clips/s, {per_clip:.3f} s/clip wall")
    label = "measured" if clips >= TARGET_CLIPS else "extrapolated linearly"
    print(
        f"10,000 clips: {full_minutes:.1f} min ({label}); target < {TARGET_MINUTES:.0f} min: "
        f"{'PASS' if full_minutes < TARGET_MINUTES else 'FAIL'}"
    )
    # On a shared machine the wall clock measures the other jobs too; CPU time does not.
    cpu_minutes = cpu / clips * TARGET_CLIPS / 60 / args.workers
    print(
        f"CPU time: {cpu / clips:.3f} s/clip (all processes, incl. worker start-up); "
        f"10,000 clips on {args.workers} otherwise idle cores: {cpu_minutes:.1f} min "
        "(estimated from CPU time)"
    )
    print(
        "single-process stage CPU times (s/clip): "
        + ", ".join(f"{k} {v:.3f}" for k, v in breakdown.items())
    )
    print(f"  (load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
