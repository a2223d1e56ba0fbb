"""Time each pretrained metric adds per clip, as ``foley eval`` runs them, and the sanity checks.

    OMP_NUM_THREADS=1 python benchmarks/pretrained_metrics_time.py [--clips 8] [--rows 8]

Per clip, ``foley eval`` runs the audio networks once on all ``--rows`` soundtracks of the clip
(3 s at 16 kHz, one batch) and EfficientNet-Lite0 once on the clip's frames (48 at 16 fps, 6 of
them sampled at 2 per second). Prints the median seconds per clip of each network (aisfx: FD;
SoundNet: KL and AV-agree; EfficientNet: AV-agree), then the checks against the originals:
EfficientNet-Lite0's top ImageNet classes for matplotlib's sample photograph of Grace Hopper and
SoundNet's top Places / ImageNet classes for synthetic sounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torchaudio

from foley.config import DEFAULT_CONFIG
from foley.metrics.networks.soundnet import SAMPLE_RATE as SOUNDNET_RATE
from foley.metrics.networks.soundnet import class_names
from foley.metrics.pretrained import PretrainedJudges


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timings(judges: PretrainedJudges, clips: int, rows: int) -> dict[str, float]:
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
    from matplotlib import cbook
    from PIL import Image

    objects, places = class_names()
    lines = []
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = Image.open(f).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((224, 224))
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        p = judges.efficientnet(x).softmax(-1)[0]
    top = [f"{objects[i].split(',')[0]} {float(p[i]):.3f}" for i in p.topk(3).indices]
    lines.append("EfficientNet-Lite0, grace_hopper.jpg: " + "; ".join(top))

    sr = SOUNDNET_RATE
    t = np.arange(3 * sr) / sr
    rng = np.random.default_rng(0)
    spec = np.fft.rfft(rng.standard_normal(t.size))
    pink = np.fft.irfft(spec / np.sqrt(np.maximum(np.arange(spec.size), 1)), t.size)
    sounds = {
        "pink noise": 0.5 * pink / np.abs(pink).max(),
        "40 Hz sawtooth + noise (engine)": 0.5 * (2 * ((t * 40) % 1) - 1)
        + 0.05 * rng.standard_normal(t.size),
        "silence": np.zeros(t.size),
    }
    for name, wave in sounds.items():
        with torch.no_grad():
            obj, pla = judges.soundnet(torch.tensor(wave, dtype=torch.float32)[None])
        po, pp = obj.softmax(-1).mean(1)[0], pla.softmax(-1).mean(1)[0]
        top_p = ", ".join(places[i] for i in pp.topk(3).indices)
        top_o = ", ".join(objects[i].split(",")[0] for i in po.topk(3).indices)
        lines.append(f"SoundNet-8, {name}: places {top_p} | objects {top_o}")
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
    for name, sec in timings(judges, args.clips, args.rows).items():
        print(f"{name}: {sec:.2f} s per clip ({args.rows} soundtracks, 48 frames)")
    for line in sanity(judges):
        print(line)


if __name__ == "__main__":
    main()
