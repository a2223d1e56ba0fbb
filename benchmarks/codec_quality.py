"""Codec reconstruction quality on dataset clips, beside mu-law references, in one run.

    python -m benchmarks.codec_quality --data DATA --model runs/codec/model
    python -m benchmarks.codec_quality --data DATA --model A/model --model B/model --quick

Prints a markdown table, mean over the clips of ``--split`` (definitions in
:mod:`foley.metrics.audio_quality`): onset F1 against the clip's ground-truth event onsets
(FoleyWorld's ``.gt.npz``; the clean audio's own F1 is the ceiling), SI-SDR (dB, higher is
better), multi-scale mel distance and log-spectral distance (dB) (lower is better), and
FD aisfx of the reconstructed set against the clean set (``--no-fd`` leaves it out).
The codec's targets (issue 21): onset F1 at least 0.95x the clean audio's, mel distance at
most half of 6-bit mu-law's, SI-SDR at least +5 dB, FD aisfx at most a third of 6-bit mu-law's.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.config import DEFAULT_CONFIG
from foley.metrics.audio_quality import mu_law, reconstruction_metrics
from foley.models.codec import FoleyCodec


def load_clips(data: str, split: str, max_clips: int) -> tuple[np.ndarray, list | None]:
    """Audio of the first ``max_clips`` clips of a split, ``(n, samples_per_clip)``, and each
    clip's audible ground-truth onsets (None when the data has no FoleyWorld ground truth)."""
    from foley.data.ego4d import ClipDataset, load_ground_truth
    from foley.evaluation.rows import audible_onsets

    dataset = ClipDataset(data, split, DEFAULT_CONFIG)
    n = min(max_clips, len(dataset)) if max_clips else len(dataset)
    waves = [dataset.load_clip(i, with_frames=False)[1] for i in tqdm(range(n), desc="clips")]
    gt_paths = [dataset.records[i].gt_path(dataset.root) for i in range(n)]
    onsets = None
    if all(p.is_file() for p in gt_paths):
        onsets = [audible_onsets(load_ground_truth(p)["events"]) for p in gt_paths]
    return np.stack(waves), onsets


@torch.inference_mode()
def reconstruct(codec: FoleyCodec, waves: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Encode and decode ``(n, N)`` waves in batches; same shape back."""
    out = []
    for first in range(0, len(waves), batch_size):
        wave = torch.from_numpy(waves[first : first + batch_size])
        out.append(codec.decode(codec.encode(wave), wave.shape[-1]).float().cpu().numpy())
    return np.concatenate(out)


def onset_f1(waves: np.ndarray, onsets: list | None) -> float:
    from foley.metrics.onsets import onset_f1 as f1

    if onsets is None:
        return float("nan")
    return float(np.mean([f1(w, o).f1 for w, o in zip(waves, onsets)]))


def row(name: str, ref: np.ndarray, est: np.ndarray, onsets, judges, ref_embed) -> str:
    m = reconstruction_metrics(ref, est, DEFAULT_CONFIG.sample_rate)
    fd = "-"
    if judges is not None:
        from foley.metrics.pretrained import fd_aisfx

        fd = f"{fd_aisfx(ref_embed, judges.embed(est, DEFAULT_CONFIG.sample_rate)):.2f}"
    return (
        f"| {name} | {onset_f1(est, onsets):.3f} | {m['si_sdr'].mean():.2f} "
        f"| {m['mel_distance'].mean():.3f} | {m['lsd'].mean():.2f} | {fd} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (<split>.tsv + clips)")
    parser.add_argument("--model", action="append", default=[], help="save_pretrained folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-clips", type=int, default=200)
    parser.add_argument(
        "--bits", type=int, nargs="+", default=[6, 8], help="mu-law references (bits)"
    )
    parser.add_argument("--no-fd", action="store_true", help="leave out FD aisfx")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="32 clips")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    waves, onsets = load_clips(args.data, args.split, 32 if args.quick else args.max_clips)
    judges = ref_embed = None
    if not args.no_fd:
        from foley.metrics.pretrained import PretrainedJudges

        judges = PretrainedJudges("cpu")
        ref_embed = judges.embed(waves, DEFAULT_CONFIG.sample_rate)
    print(f"{len(waves)} clips of {args.split} in {args.data}")
    print("| audio | onset F1 | SI-SDR (dB) | mel distance | LSD (dB) | FD aisfx |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(row("clean audio (ceiling)", waves, waves, onsets, judges, ref_embed))
    for bits in args.bits:
        refd = mu_law(waves, bits)
        print(row(f"{bits}-bit mu-law (reference)", waves, refd, onsets, judges, ref_embed))
    for path in args.model:
        codec = FoleyCodec.from_pretrained(path).eval()
        cfg = codec.config
        arch = getattr(cfg, "architecture", "seanet")
        name = f"codec {path} ({arch}, latent {cfg.latent_dim})"
        print(row(name, waves, reconstruct(codec, waves), onsets, judges, ref_embed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
