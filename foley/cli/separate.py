"""``foley separate``: keep the sounds you can see (or the ones you can't), with AudioScope.

    foley separate IN.mp4 -o OUT.mp4 [--keep on-screen|off-screen] [--wav OUT.wav]
                   [--model DIR] [--audio-only] [--weighting probability|relative]
                   [--device cpu] [--overwrite]
    foley separate IN_FOLDER -o OUT_FOLDER ...     # every video in the folder

The output is the input video with its video stream copied and the kept part of its soundtrack
as audio; ``--wav`` also writes that track. Any length is separated in clip-length windows
joined by a crossfade (as generation does). Outputs are checked before any work, as
``foley generate`` does (no output may be an input; existing outputs need ``--overwrite``); in a
folder a file that fails is one line on stderr and the rest go on (exit code 1 if any failed).
``--model``: an AudioScope folder (``OUT/model`` of ``foley train audioscope``, or a pipeline
folder holding ``audioscope/``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from foley.defaults import model_dir_or_default
from foley.errors import InputError
from foley.pipelines.separation import KEEP

# foley.models.audioscope.WEIGHTINGS, spelled out so that the CLI starts without torch models
WEIGHTINGS = ("probability", "relative")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "separate", help="keep the on-screen (or off-screen) sounds of a video (or a folder)"
    )
    parser.add_argument("input", help="video file with sound, or a folder of videos")
    parser.add_argument("-o", "--out", required=True, help="output video (folder for a folder)")
    parser.add_argument("--keep", default="on-screen", choices=KEEP, help="default on-screen")
    parser.add_argument("--wav", help="also write the kept track as wav (a folder for a folder)")
    parser.add_argument("--model", help="AudioScope folder (default: MODEL/audioscope)")
    parser.add_argument(
        "--audio-only", action="store_true", help="classify sources without the video (ablation)"
    )
    parser.add_argument(
        "--weighting",
        choices=WEIGHTINGS,
        help="how on-screen probabilities become source weights (default: the model's own;"
        " relative: sources close to the clip's most on-screen one, scaled by its probability)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: cuda if any)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=main)


def load_audioscope(path: str | None, device: str | None = None):
    """An AudioScope model from ``path`` (its folder, or a pipeline folder's ``audioscope/``)."""
    from foley.defaults import default_device
    from foley.models.audioscope import AudioScope

    folder = model_dir_or_default(path)
    if not (folder / "config.json").is_file() and (folder / "audioscope").is_dir():
        folder = folder / "audioscope"
    if not (folder / "config.json").is_file():
        raise InputError(
            f"{folder}: no AudioScope model there; train one (foley train audioscope DATA -o RUN)"
            " and pass --model RUN/model"
        )
    try:
        model = AudioScope.from_pretrained(folder)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise InputError(f"{folder}: not an AudioScope model ({type(err).__name__})") from None
    return model.to(device or default_device()).eval()


def separate_file(
    model, src: Path, keep: str, *, audio_only: bool = False, weighting: str | None = None
):
    """Decode one video (any length) and separate it -> (Separation, sample rate, warnings)."""
    from foley.config import DEFAULT_CONFIG
    from foley.io import load_video
    from foley.pipelines.separation import separate_track

    video = load_video(src, DEFAULT_CONFIG, with_audio=True)
    if video.audio is None or video.audio.size == 0:
        raise InputError(f"{src.name}: the video has no sound to separate")
    frames = None if audio_only else video.frames
    result = separate_track(model, video.audio, frames, DEFAULT_CONFIG, weighting=weighting)
    return result, video.warnings


def main(args: argparse.Namespace) -> int:
    from foley.cli.batch import Job, plan_jobs, run_jobs, warn
    from foley.config import DEFAULT_CONFIG
    from foley.io import mux_audio, save_audio

    jobs = plan_jobs(args)
    model = load_audioscope(args.model, args.device)
    sr = DEFAULT_CONFIG.sample_rate

    def separate_one(job: Job) -> str:
        src, out, wav, _ = job
        result, warnings = separate_file(
            model, src, args.keep, audio_only=args.audio_only, weighting=args.weighting
        )
        warn("separate", warnings)
        track = result.track(args.keep)
        mux_audio(src, track, sr, out)
        if wav is not None:
            save_audio(wav, track, sr)
        return f"wrote {out.resolve()} ({track.size / sr:.2f} s, {args.keep})"

    return run_jobs("separate", jobs, separate_one, quiet=args.quiet)
