"""``foley prepare SRC --out DATA``: your own videos and sound library as a dataset.

    foley prepare ~/footage --out ~/foley-data [--hop 1.5] [--val-fraction 0.1]

Writes Ego4D-Sounds-format clips (3 s, 16 kHz mono) with train/val/test tables for videos and
``*_audio`` tables for audio files (retrieval and codec training only); see
:mod:`foley.data.prepare`. Rerun the same command to resume; SRC is never modified.
"""

from __future__ import annotations

import argparse

from foley.config import DEFAULT_CONFIG


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare", help="turn a folder of your videos / sounds into a dataset (resumable)"
    )
    parser.add_argument("src", help="folder of videos (with sound) and/or audio files")
    parser.add_argument("--out", required=True, help="dataset folder to write (new or resumed)")
    parser.add_argument(
        "--hop", type=float, default=DEFAULT_CONFIG.clip_seconds,
        help=f"seconds between clip starts (default {DEFAULT_CONFIG.clip_seconds:g}: no overlap)",
    )  # fmt: skip
    parser.add_argument("--val-fraction", type=float, default=0.1, help="of source files")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="of source files")
    parser.add_argument(
        "--max-seconds", type=float, default=DEFAULT_CONFIG.max_video_seconds,
        help="use at most the first this many seconds of each file",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from foley.data.prepare import PrepareSettings, prepare_folder
    from foley.errors import InputError

    if args.hop <= 0 or args.max_seconds <= 0:
        raise InputError("--hop and --max-seconds must be positive")
    settings = PrepareSettings(hop_seconds=args.hop, max_seconds=args.max_seconds)
    report = prepare_folder(
        args.src, args.out, settings, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, seed=args.seed, progress=not args.quiet,
        log=tqdm.write,
    )  # fmt: skip
    print(f"prepared {args.src} -> {args.out}: {report.summary()}")
    return 0
