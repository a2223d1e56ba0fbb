"""Before / after a fine-tune: the denoising loss of two pipelines on extracted features.

    python -m benchmarks.finetune_eval --before default --after OUT/model \
        --features OUT/features:val /tmp/fw-test-features:test

For each features split (``FOLDER:SPLIT``, extracted with the *before* pipeline's codec and
video encoder, e.g. by ``foley train denoiser --init-from``), prints the mean denoising MSE at
fixed noise and timesteps (``training.finetune.denoising_loss``, 8 draws per clip) of each
pipeline's denoiser over the same frozen video features: lower is better.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from foley.models.denoiser import FoleyDenoiser
from foley.models.objectives import Objective
from training.features import SplitFeatures, load_video_encoder
from training.finetune import denoising_loss, init_dir
from training.train_denoiser import AVLDM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="default", help="pipeline folder or 'default'")
    parser.add_argument("--after", required=True, help="fine-tuned pipeline folder")
    parser.add_argument("--features", nargs="+", required=True, help="FOLDER:SPLIT ...")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    models = {"before": init_dir(args.before), "after": init_dir(args.after)}
    rows = []
    for spec in args.features:
        folder, split = spec.rsplit(":", 1)
        feats = SplitFeatures(folder, split)
        encoder = load_video_encoder(Path(folder) / "video_encoder")
        curves = feats.sync_curves is not None
        losses = {}
        for name, pipe_dir in models.items():
            sched = json.loads((pipe_dir / "scheduler" / "scheduler_config.json").read_text())
            objective = Objective("flow", float(sched.get("shift", 1.0)))
            model = AVLDM(encoder, FoleyDenoiser.from_pretrained(pipe_dir / "denoiser"), True)
            losses[name] = denoising_loss(model, feats, objective, frozen=True, curves=curves,
                                          repeats=args.repeats)  # fmt: skip
        rows.append((spec, len(feats), losses["before"], losses["after"]))
    print("| features | clips | before | after | change |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for spec, n, before, after in rows:
        print(f"| {spec} | {n} | {before:.4f} | {after:.4f} | {100 * (after / before - 1):+.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
