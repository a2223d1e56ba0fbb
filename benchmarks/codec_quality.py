"""Codec reconstruction quality on dataset clips, next to 8-bit mu-law as reference degradation.

    python -m benchmarks.codec_quality --data DATA --model runs/codec/model
    python -m benchmarks.codec_quality --data DATA --model A/model --model B/model --quick

Prints a markdown table: SI-SDR (dB, higher is better), multi-scale mel distance and
log-spectral distance (dB) (lower is better), mean over the clips of ``--split``
(definitions in :mod:`foley.metrics.audio_quality`).  The codec's aim (issue 10): a mel
distance at or below 8-bit mu-law's
(4-bit mu-law is printed too, as a coarser yardstick).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.config import DEFAULT_CONFIG
from foley.metrics.audio_quality import mu_law, reconstruction_metrics
from foley.models.codec import FoleyCodec


def load_clips(data: str, split: str, max_clips: int) -> np.ndarray:
    """Audio of the first ``max_clips`` clips of a split, ``(n, samples_per_clip)``."""
    from foley.data.ego4d import ClipDataset

    dataset = ClipDataset(data, split, DEFAULT_CONFIG)
    n = min(max_clips, len(dataset)) if max_clips else len(dataset)
    waves = [dataset.load_clip(i, with_frames=False)[1] for i in tqdm(range(n), desc="clips")]
    return np.stack(waves)


@torch.inference_mode()
def reconstruct(codec: FoleyCodec, waves: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Encode and decode ``(n, N)`` waves in batches; same shape back."""
    out = []
    for first in range(0, len(waves), batch_size):
        wave = torch.from_numpy(waves[first : first + batch_size])
        out.append(codec.decode(codec.encode(wave), wave.shape[-1]).float().cpu().numpy())
    return np.concatenate(out)


def summarize(name: str, ref: np.ndarray, est: np.ndarray) -> str:
    m = reconstruction_metrics(ref, est, DEFAULT_CONFIG.sample_rate)
    return (
        f"| {name} | {m['si_sdr'].mean():.2f} | {m['mel_distance'].mean():.3f} "
        f"| {m['lsd'].mean():.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (<split>.tsv + clips)")
    parser.add_argument("--model", action="append", default=[], help="save_pretrained folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-clips", type=int, default=200)
    parser.add_argument(
        "--bits", type=int, nargs="+", default=[8, 4], help="mu-law references (bits)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="32 clips")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    waves = load_clips(args.data, args.split, 32 if args.quick else args.max_clips)
    print(f"{len(waves)} clips of {args.split} in {args.data}")
    print("| audio | SI-SDR (dB) | mel distance | LSD (dB) |")
    print("| --- | --- | --- | --- |")
    for bits in args.bits:
        print(summarize(f"{bits}-bit mu-law (reference)", waves, mu_law(waves, bits)))
    for path in args.model:
        codec = FoleyCodec.from_pretrained(path).eval()
        cfg = codec.config
        name = f"codec {path} (n_filters {cfg.n_filters}, latent {cfg.latent_dim})"
        print(summarize(name, waves, reconstruct(codec, waves)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
