"""Time each pretrained metric adds per clip, as ``foley eval`` runs them, and the sanity checks.

    OMP_NUM_THREADS=1 python benchmarks/pretrained_metrics_time.py [--clips 8] [--rows 8]

Per clip, ``foley eval`` runs the audio networks once on all ``--rows`` soundtracks of the clip
(3 s at 16 kHz, one batch) and EfficientNet-Lite0 once on the clip's frames (48 at 16 fps, 6 of
them sampled at 2 per second). Prints the median wall and CPU seconds per clip of each network
(aisfx: FD; SoundNet: KL and AV-agree; EfficientNet: AV-agree), then the checks against the
originals: EfficientNet-Lite0's top ImageNet classes for matplotlib's sample photograph of Grace
Hopper and SoundNet's top Places / ImageNet classes for synthetic sounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchaudio

from foley.config import DEFAULT_CONFIG
from foley.metrics.networks.checks import check_sounds, efficientnet_on_grace_hopper, soundnet_on
from foley.metrics.networks.soundnet import SAMPLE_RATE as SOUNDNET_RATE
from foley.metrics.pretrained import PretrainedJudges


def _median_seconds(fn, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``fn()``; with one thread the CPU time does not depend on
    what else the machine runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def timings(judges: PretrainedJudges, clips: int, rows: int) -> dict[str, tuple[float, float]]:
    cfg = DEFAULT_CONFIG
    gen = torch.Generator().manual_seed(0)
    waves = 0.3 * torch.randn(rows, cfg.samples_per_clip, generator=gen)  # one clip's rows
    frames = torch.rand(cfg.frames_per_clip, 3, cfg.frame_size, cfg.frame_size, generator=gen)
    with torch.no_grad():
        return {
            "aisfx (FD aisfx)": _median_seconds(
                lambda: judges.embed(waves, cfg.sample_rate), clips
            ),
            "SoundNet-8 (KL SoundNet, AV-agree)": _median_seconds(
                lambda: judges.soundnet(
                    torchaudio.functional.resample(waves, cfg.sample_rate, SOUNDNET_RATE)
                ),
                clips,
            ),
            "EfficientNet-Lite0 (AV-agree)": _median_seconds(
                lambda: judges.frames(frames, cfg.fps), clips
            ),
            "all (judges.audio + judges.frames)": _median_seconds(
                lambda: (judges.audio(waves, cfg.sample_rate), judges.frames(frames, cfg.fps)),
                clips,
            ),
        }


def sanity(judges: PretrainedJudges) -> list[str]:
    def fmt(top: list) -> str:
        return ", ".join(f"{name} {p:.3f}" for name, p in top)

    photo = efficientnet_on_grace_hopper(judges.efficientnet)
    lines = [f"EfficientNet-Lite0, grace_hopper.jpg: {fmt(photo)}"]
    for name, wave in check_sounds().items():
        places, objects = soundnet_on(judges.soundnet, wave)
        lines.append(f"SoundNet-8, {name}: places {fmt(places)} | objects {fmt(objects)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8, help="timed repeats (clips)")
    parser.add_argument("--rows", type=int, default=8, help="soundtracks per clip")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    judges = PretrainedJudges("cpu")
    print(f"load the three networks: {time.perf_counter() - start:.2f} s (once per run)")
    for name, (wall, cpu) in timings(judges, args.clips, args.rows).items():
        print(f"{name}: {wall:.2f} s wall, {cpu:.2f} s CPU per clip ({args.rows} soundtracks)")
    for line in sanity(judges):
        print(line)


if __name__ == "__main__":
    main()
