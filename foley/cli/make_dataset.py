"""``foley make-dataset``: generate a FoleyWorld dataset (Ego4D-Sounds format + ground truth)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Write a procedural FoleyWorld dataset: long videos of a hand knocking, tapping, dropping,
scraping, pouring into, tearing and cutting objects of six materials (and silently holding or
looking at them), each video one scene with a persistent ambient bed.  Output: train.tsv,
val.tsv, test.tsv (Ego4D-Sounds columns, split by video_uid), <video_uid>/*.mp4 (3 s, 16 kHz
mono audio), <video_uid>/*.gt.npz (action/ambient tracks, sounding-object masks, events) and
foleyworld.json.  Same --seed, same bytes.

--sound-bank DIR mixes in your recordings: DIR/<material>/<verb>*.wav or
DIR/<material>_<verb>*.wav (also flac, ogg, mp3, wv), e.g. DIR/metal/knock_01.ogg.
Materials: metal wood glass ceramic plastic paper; verbs: knock tap drop scrape pour tear cut.
A LICENSE/COPYING/README file in DIR is copied into foleyworld.json."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-dataset",
        help="generate the FoleyWorld dataset (Ego4D-Sounds format with ground truth)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--videos", type=int, required=True, help="long videos (scenes) to generate")
    p.add_argument("--clips-per-video", type=int, required=True, help="3-second clips per video")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--sound-bank", default=None, metavar="DIR", help="folder of recordings")
    p.add_argument(
        "--bank-probability",
        type=float,
        default=1.0,
        help="chance that an event with a matching recording uses it (default 1)",
    )
    p.add_argument("--shippable-only", action="store_true", help="CC0/CC-BY(-SA) recordings only")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--shifted-test-videos",
        type=int,
        default=0,
        metavar="M",
        help="also write M videos whose material x ambient pairs never occur in train "
        "(test_shifted.tsv)",
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of videos in val")
    p.add_argument("--test-fraction", type=float, default=0.1, help="share of videos in test")
    p.add_argument(
        "--speech",
        action="store_true",
        help="speak each narration over its clip (needs espeak-ng); the ground truth gains the "
        "speech track and the spoken object's masks",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from foley.data.foleyworld import FoleyWorldSettings, generate_dataset
    from foley.errors import InputError

    for name in ("val_fraction", "test_fraction", "bank_probability"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise InputError(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.overwrite:
        check_previous_dataset(args.out)
    settings = FoleyWorldSettings(
        videos=args.videos,
        clips_per_video=args.clips_per_video,
        seed=args.seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        shifted_test_videos=args.shifted_test_videos,
        bank_probability=args.bank_probability,
        speech=args.speech,
    )
    summary = generate_dataset(
        args.out,
        settings,
        sound_bank=args.sound_bank,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet,
        shippable_only=args.shippable_only,
    )
    counts = ", ".join(
        f"{s} {c['videos']} videos / {c['clips']} clips" for s, c in summary["splits"].items()
    )
    print(f"wrote {args.out}: {counts}")
    return 0


def check_previous_dataset(out: str) -> None:
    """Before ``--overwrite`` removes a previous dataset's ``<out>/<video_uid>`` folders: every
    ``video_uid`` of its TSVs must name a folder directly inside ``out`` (an absolute or ``..``
    uid would delete something else)."""
    from foley.data.ego4d import read_metadata, split_path
    from foley.data.foleyworld.generate import SPLIT_NAMES
    from foley.errors import InputError
    from foley.paths import resolved

    root = resolved(out)
    tsvs = [split_path(out, s) for s in SPLIT_NAMES]
    for tsv in (t for t in tsvs if t.is_file()):
        for record in read_metadata(tsv):
            folder = resolved(root / record.video_uid)
            if folder.parent != root:
                raise InputError(
                    f"{tsv.name}: video_uid {record.video_uid!r} is not a folder inside {out}; "
                    "refusing to delete it (remove the previous dataset by hand)"
                )
