"""FD aisfx between sets of real FoleyWorld audio: how much of it is which videos a set holds.

FoleyWorld draws each video's ambient bed and recordings once for all its clips, so two sets of
real clips that share videos are close in aisfx and two sets of other videos are far apart, real
audio on both sides. This measures both, for every pair of the given splits and within each
(video-disjoint halves against random halves of the same clips):

    python -m benchmarks.fd_floor /work/data/fw-real-eval:test /work/data/fw-real:test \
        /work/data/fw-real:val /work/data/fw-real-shifted:test_shifted \
        /work/data/fw-real-shifted:test --n 80 --threads 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _embed(judges, waves: list[np.ndarray], sample_rate: int) -> np.ndarray:
    return np.concatenate(
        [judges.embed(np.stack(waves[i : i + 16]), sample_rate) for i in range(0, len(waves), 16)]
    )


def load_set(spec: str, n: int, judges, cfg) -> tuple[list[str], np.ndarray]:
    """``DIR:SPLIT`` -> the video of each of its first ``n`` clips and their aisfx embeddings."""
    from foley.data.ego4d import ClipDataset

    root, split = spec.rsplit(":", 1)
    data = ClipDataset(root, split, cfg)
    idx = range(min(n, len(data)))
    waves = [data.load_clip(i, with_frames=False)[1] for i in idx]
    return [data.records[i].video_uid for i in idx], _embed(judges, waves, cfg.sample_rate)


def halves(videos: list[str], emb: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """FD aisfx between video-disjoint halves (every other video) and between random halves."""
    from foley.metrics.pretrained import fd_aisfx

    order = sorted(set(videos))
    first = set(order[::2])
    mask = np.array([v in first for v in videos])
    perm = np.random.default_rng(seed).permutation(len(videos))
    h = len(videos) // 2
    return fd_aisfx(emb[mask], emb[~mask]), fd_aisfx(emb[perm[:h]], emb[perm[h:]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sets", nargs="+", help="DIR:SPLIT of FoleyWorld (or any) data")
    p.add_argument("--n", type=int, default=80, help="the first N clips of each split")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    import torch

    from foley.config import DEFAULT_CONFIG
    from foley.metrics.pretrained import PretrainedJudges, fd_aisfx

    if args.threads:
        torch.set_num_threads(args.threads)
    for spec in args.sets:
        if ":" not in spec or not Path(spec.rsplit(":", 1)[0]).is_dir():
            p.error(f"{spec}: give DIR:SPLIT with an existing DIR")
    judges = PretrainedJudges()
    sets = {s: load_set(s, args.n, judges, DEFAULT_CONFIG) for s in args.sets}
    print("| set A | set B | clips | FD aisfx |\n| --- | --- | ---: | ---: |")
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            clips = f"{len(sets[a][0])} / {len(sets[b][0])}"
            print(f"| {a} | {b} | {clips} | {fd_aisfx(sets[a][1], sets[b][1]):.1f} |")
    print(
        "\n| set | videos | video-disjoint halves | random halves |\n| --- | ---: | ---: | ---: |"
    )
    for a in names:
        videos, emb = sets[a]
        disjoint, random = halves(videos, emb)
        print(f"| {a} | {len(set(videos))} | {disjoint:.1f} | {random:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
