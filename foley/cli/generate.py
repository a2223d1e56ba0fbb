"""``foley generate``: put generated action sounds on silent videos.

    foley generate IN.mp4 -o OUT.mp4 [--mode ambient_joint|action_focused|no_condition]
                   [--steps N --guidance G --seed 0 --condition-audio FILE --wav OUT.wav]
                   [--solver euler|heun|dpm|unipc --shift S]  # default: the model's scheduler
                   [--model DIR --index DIR --ambient-max -45 --device cpu]
                   [--masks OUT.png|OUT.mp4]   # sounding-object overlay (model with avs/)
                   [--overwrite]               # replace outputs that exist
    foley generate IN_FOLDER -o OUT_FOLDER ...     # every video in the folder

No output may be an input (after symlinks and ``..``); an existing output needs ``--overwrite``;
both are checked before any work. In a folder, a file that fails is one line on stderr and the
rest go on (exit code 1 if any failed).

The output is the input video with its video stream copied (no re-encode) and the generated
track as its audio (an existing audio track is replaced). Without ``--model`` the shipped default
model (``foley/assets/default``) is used. ``--masks`` also draws the AVS model's sounding-object
masks of the generated audio over the frames (a PNG strip, or an MP4 with the audio) and prints
the alignment score; for a folder it is a folder of ``<name>.mp4`` overlays.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from foley.cli.batch import Job, plan_jobs, run_jobs, warn
from foley.defaults import mc3_dir_or_default
from foley.errors import InputError, ModelMismatchError
from foley.pipelines.solvers import SOLVERS, check_solver

MAX_GUIDANCE = 100.0
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
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="sampler steps (default: the model's, saved with it; 25 if it names none)",
    )
    parser.add_argument(
        "--solver",
        choices=SOLVERS,
        default=None,
        help="sampler (default: the model folder's scheduler); dpm and unipc are second order "
        "at one denoiser call per step, heun at two",
    )
    parser.add_argument(
        "--shift",
        type=float,
        default=None,
        help="time shift of the sampler's noise schedule (> 1: more steps at high noise; "
        "default: the model's)",
    )
    parser.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="video guidance scale (default: the model's for the mode; the shipped model's: 3, "
        "action-focused 5)",
    )
    parser.add_argument(
        "--sync-shaping",
        type=float,
        default=None,
        metavar="F",
        help="how strongly the loudness follows the contacts seen in the video (0: off; "
        "default: the model's saved choice, off for the shipped one; else 1 with a sync model)",
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
    parser.add_argument(
        "--overwrite", action="store_true", help="replace outputs that already exist"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=main)


def _jobs(args: argparse.Namespace) -> list[Job]:
    """The jobs of INPUT or ``--example`` (:func:`foley.cli.batch.plan_jobs`)."""
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
    return plan_jobs(args)


def _check_settings(args: argparse.Namespace) -> None:
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be at least 1, got {args.steps}")
    if args.guidance is not None and not (
        math.isfinite(args.guidance) and 0 <= args.guidance <= MAX_GUIDANCE
    ):
        raise InputError(f"--guidance must be between 0 and {MAX_GUIDANCE:g}")
    check_solver(args.solver, args.shift)
    if not 0 <= args.seed < 2**63:
        raise InputError("--seed must be between 0 and 2**63 - 1")


def _check_index_model(pipe, model: str | None) -> None:
    """An index built by other MC3 weights (even of the same dimension) is refused."""
    from foley.models.mc3_embed import WEIGHTS_NAME, model_id

    index = getattr(pipe, "index", None)
    mc3_dir = mc3_dir_or_default(model)
    if index is None or pipe.mc3 is None or not (mc3_dir / WEIGHTS_NAME).is_file():
        return
    mid = model_id(mc3_dir)
    if index.model_id != mid:
        raise ModelMismatchError(
            f"the index was built with model {index.model_id}, the pipeline's MC3 is {mid}; "
            "rebuild the index with this model (foley index build)"
        )


def _generate_one(pipe, args, condition, job: Job) -> str:
    """One video: decode (warnings about truncation are printed), generate, write outputs;
    returns the line that says what was written."""
    from foley.analysis import write_overlay
    from foley.io import load_video, mux_audio, save_audio

    src, out, wav, masks = job
    video = load_video(src, pipe.av_config, with_audio=False)
    warn("generate", video.warnings)
    result = pipe(
        video,
        mode=args.mode,
        condition_audio=condition,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        generator=torch_generator(args.seed),
        ambient_db_max=args.ambient_max,
        return_masks=masks is not None,
        sync_shaping=args.sync_shaping,
        solver=args.solver,
        shift=args.shift,
    )
    audio = result.audios[0]
    mux_audio(src, audio, result.sample_rate, out)
    if wav is not None:
        save_audio(wav, audio, result.sample_rate)
    if masks is not None:
        write_overlay(masks, video.frames, result.masks[0], audio, pipe.av_config)
    cond = result.condition_ids[0]
    note = f", condition {cond}" if cond else ""
    if masks is not None:
        note += f"; masks {masks} (alignment score {result.alignment_scores[0]:.2f})"
    seconds = audio.size / result.sample_rate
    return f"wrote {out.resolve()} ({seconds:.2f} s of generated audio, {args.mode}{note})"


def torch_generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def main(args: argparse.Namespace) -> int:
    from foley.io import read_audio

    _check_settings(args)
    jobs = _jobs(args)
    from foley.pipelines.loading import load_pipeline

    pipe = load_pipeline(args.model, args.device, index=args.index, quiet=args.quiet)
    if args.masks and pipe.avs is None:
        raise InputError("--masks needs an AVS model: the model folder has no avs/")
    _check_index_model(pipe, args.model)
    condition = None
    if args.condition_audio:
        decoded = read_audio(args.condition_audio, pipe.av_config.sample_rate)
        warn("generate", decoded.warnings)
        condition = decoded.wave
    pipe.set_progress_bar_config(disable=args.quiet or len(jobs) > 1, leave=False)
    return run_jobs(
        "generate", jobs, lambda job: _generate_one(pipe, args, condition, job), quiet=args.quiet
    )
