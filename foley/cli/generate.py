"""``foley generate``: put generated action sounds on silent videos.

    foley generate IN.mp4 -o OUT.mp4 [--mode ambient_joint|action_focused|no_condition]
                   [--steps 25 --guidance 3.0 --seed 0 --condition-audio FILE --wav OUT.wav]
                   [--model DIR --index DIR --ambient-max -45 --device cpu]
                   [--masks OUT.png|OUT.mp4]   # sounding-object overlay (model with avs/)
    foley generate IN_FOLDER -o OUT_FOLDER ...     # every video in the folder

The output is the input video with its video stream copied (no re-encode) and the generated
track as its audio (an existing audio track is replaced). Without ``--model`` the shipped default
model (``foley/assets/default``) is used. ``--masks`` also draws the AVS model's sounding-object
masks of the generated audio over the frames (a PNG strip, or an MP4 with the audio) and prints
the alignment score; for a folder it is a folder of ``<name>.mp4`` overlays.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from foley.errors import FoleyError, InputError

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm"}
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples"


def bundled_examples() -> dict[str, Path]:
    """The silent example clips shipped with the package, by name."""
    if not EXAMPLES_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(EXAMPLES_DIR.glob("*.mp4"))}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate synchronised action sounds for a video (or a folder)"
    )
    parser.add_argument("input", nargs="?", help="video file, or a folder of videos")
    parser.add_argument(
        "--example",
        nargs="?",
        const="",
        metavar="NAME",
        help="use a bundled silent example clip instead of INPUT (default: the first one)",
    )
    parser.add_argument("-o", "--out", required=True, help="output video (folder for a folder)")
    parser.add_argument(
        "--mode",
        default="ambient_joint",
        choices=["ambient_joint", "action_focused", "no_condition"],
        help="keep the scene's ambience (ambient_joint) or suppress it (action_focused)",
    )
    parser.add_argument("--steps", type=int, default=25, help="sampler steps (default 25)")
    parser.add_argument("--guidance", type=float, default=3.0, help="video guidance scale")
    parser.add_argument(
        "--sync-shaping",
        type=float,
        default=None,
        metavar="F",
        help="how strongly the loudness follows the contacts seen in the video (0: off; "
        "default 1 with a sync model, as the shipped one has)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--condition-audio", help="audio file to condition on (no retrieval)")
    parser.add_argument("--wav", help="also write the track as wav (a folder for a folder)")
    parser.add_argument(
        "--masks",
        metavar="OUT.png|OUT.mp4",
        help="also draw the sounding-object masks (AVS) over the frames (a folder for a folder)",
    )
    parser.add_argument("--model", help="pipeline folder (default: the shipped model)")
    parser.add_argument("--index", help="retrieval index folder (default: MODEL/index)")
    parser.add_argument("--ambient-max", type=float, default=-45.0, help="action_focused: dBFS")
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: cuda if any)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=main)


def _jobs(args: argparse.Namespace) -> list[tuple[Path, Path, Path | None, Path | None]]:
    """(input video, output video, output wav or None, mask overlay or None) per video."""
    if args.example is not None:
        examples = bundled_examples()
        if not examples:
            raise InputError(f"no bundled examples found in {EXAMPLES_DIR}")
        name = args.example or next(iter(examples))
        if name not in examples:
            raise InputError(f"no bundled example {name!r}; there are: {', '.join(examples)}")
        if args.input:
            raise InputError("give either INPUT or --example, not both")
        args.input = str(examples[name])
    if not args.input:
        raise InputError("give a video file or folder (INPUT), or --example")
    src, out = Path(args.input), Path(args.out)
    wav = Path(args.wav) if args.wav else None
    masks = Path(args.masks) if getattr(args, "masks", None) else None
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    if src.is_dir():
        videos = sorted(p for p in src.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise InputError(f"{src}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
        if out.resolve() == src.resolve():
            raise InputError("the output folder must differ from the input folder")
        return [
            (
                v,
                out / v.name,
                wav / f"{v.stem}.wav" if wav else None,
                masks / f"{v.stem}.mp4" if masks else None,
            )
            for v in videos
        ]
    if out.is_dir():
        out = out / src.name
    if out.resolve() == src.resolve():
        raise InputError(f"{out}: refusing to overwrite the input video")
    if masks is not None and masks.suffix.lower() not in (".png", ".mp4"):
        raise InputError(f"--masks {masks.name}: give a .png (strip) or an .mp4 (overlay video)")
    return [(src, out, wav, masks)]


def main(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from foley.analysis import write_overlay
    from foley.io import load_audio, load_video, mux_audio, save_audio

    jobs = _jobs(args)
    if args.steps < 1:
        raise InputError(f"--steps must be at least 1, got {args.steps}")
    from foley.pipelines.loading import load_pipeline

    pipe = load_pipeline(args.model, args.device, index=args.index, quiet=args.quiet)
    if args.masks and pipe.avs is None:
        raise InputError("--masks needs an AVS model: the model folder has no avs/")
    condition = None
    if args.condition_audio:
        condition = load_audio(args.condition_audio, pipe.av_config.sample_rate)
    many = len(jobs) > 1
    pipe.set_progress_bar_config(disable=args.quiet or many, leave=False)
    failed = 0
    for src, out, wav, masks in tqdm(
        jobs, desc="videos", unit="video", disable=args.quiet or not many
    ):
        try:
            video = load_video(src, pipe.av_config, with_audio=False) if masks else src
            result = pipe(
                video,
                mode=args.mode,
                condition_audio=condition,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                generator=torch.Generator().manual_seed(args.seed),
                ambient_db_max=args.ambient_max,
                return_masks=masks is not None,
                sync_shaping=args.sync_shaping,
            )
            audio = result.audios[0]
            mux_audio(src, audio, result.sample_rate, out)
            if wav is not None:
                save_audio(wav, audio, result.sample_rate)
            if masks is not None:
                write_overlay(masks, video.frames, result.masks[0], audio, pipe.av_config)
        except FoleyError as err:
            if not many:
                raise
            failed += 1
            print(f"foley generate: {src.name}: {err}", file=sys.stderr)
            continue
        cond = result.condition_ids[0]
        note = f", condition {cond}" if cond else ""
        if masks is not None:
            note += f"; masks {masks} (alignment score {result.alignment_scores[0]:.2f})"
        seconds = audio.size / result.sample_rate
        print(f"wrote {out.resolve()} ({seconds:.2f} s of generated audio, {args.mode}{note})")
    return 1 if failed else 0
