"""The per-file loop of ``foley generate`` and ``foley separate``.

INPUT is a video or a folder of videos; ``-o`` (and ``--wav``, ``--masks``) a file or a folder
to match. :func:`plan_jobs` names every output and checks them all before any work: no output
may be an input (after symlinks and ``..``) or another output, and an existing one needs
``--overwrite``. :func:`run_jobs` then runs one file at a time: for a single file an error is
the command's one-line error; in a folder a file that fails is one line on stderr and the rest
go on, and the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from foley.errors import FoleyError, InputError, one_line
from foley.paths import check_outputs

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm"}  # what a folder's videos are
OUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")  # what -o may end with
WAV_SUFFIXES = (".wav", ".flac", ".ogg")  # what --wav may end with
MASK_SUFFIXES = (".png", ".mp4")  # what --masks may end with
Job = tuple[Path, Path, Path | None, Path | None]
"""(input video, output video, output wav or None, mask overlay or None)."""


def check_suffix(option: str, path: Path, allowed: tuple[str, ...]) -> None:
    if path.suffix.lower() not in allowed:
        raise InputError(f"{option} {path.name}: give a file ending in {', '.join(allowed)}")


def video_out_name(video: Path) -> str:
    """The output name of a video of a folder: its own name when -o may end with its suffix."""
    return video.name if video.suffix.lower() in OUT_SUFFIXES else f"{video.stem}.mp4"


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    """One :data:`Job` per video of ``args.input`` (``args``: ``input``, ``out``, ``wav``, and
    optionally ``masks``, ``condition_audio`` (one more input) and ``overwrite``).

    Every output is checked against every input and against the other outputs, and must not
    exist unless ``--overwrite``: all before any work.
    """
    if not args.input:
        raise InputError("give a video file or folder (INPUT)")
    src, out = Path(args.input), Path(args.out)
    wav = Path(args.wav) if args.wav else None
    masks = Path(args.masks) if getattr(args, "masks", None) else None
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    if src.is_dir():
        videos = sorted(
            p for p in src.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
        )
        if not videos:
            raise InputError(f"{src}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
        for option, folder in (("-o", out), ("--wav", wav), ("--masks", masks)):
            if folder is not None and folder.is_file():
                raise InputError(f"{option} {folder}: is a file; for a folder give a folder")
        jobs = [
            (
                v,
                out / video_out_name(v),
                wav / f"{v.stem}.wav" if wav else None,
                masks / f"{v.stem}.mp4" if masks else None,
            )
            for v in videos
        ]
    else:
        if out.is_dir():
            out = out / video_out_name(src)
        check_suffix("-o", out, OUT_SUFFIXES)
        if wav is not None:
            check_suffix("--wav", wav, WAV_SUFFIXES)
        if masks is not None:
            check_suffix("--masks", masks, MASK_SUFFIXES)
        jobs = [(src, out, wav, masks)]
    inputs = [j[0] for j in jobs]
    if getattr(args, "condition_audio", None):
        inputs.append(Path(args.condition_audio))
    outputs = [
        (option, path)
        for _, o, w, m in jobs
        for option, path in (("-o", o), ("--wav", w), ("--masks", m))
        if path is not None
    ]
    check_outputs(inputs, outputs, overwrite=getattr(args, "overwrite", False))
    return jobs


def warn(command: str, warnings: Iterable[str]) -> None:
    """Print decoder warnings (what was recovered from a damaged file), one line each."""
    for warning in warnings:
        print(f"foley {command}: warning: {warning}", file=sys.stderr)


def run_jobs(
    command: str, jobs: list[Job], process: Callable[[Job], str], *, quiet: bool = False
) -> int:
    """Run ``process(job)`` on every job and print the line it returns; 1 if any failed.

    A single job's error is raised as one line (a :class:`FoleyError` as it is, anything else
    as an ``InputError``); in a batch it is printed as ``foley COMMAND: NAME: error: ...`` on
    stderr and the batch goes on.
    """
    from tqdm.auto import tqdm

    many = len(jobs) > 1
    failed = 0
    for job in tqdm(jobs, desc="videos", unit="video", disable=quiet or not many):
        try:
            line = process(job)
        except Exception as err:  # noqa: BLE001 - one line per file, the batch goes on
            message = one_line(err)
            if not many:
                raise (err if isinstance(err, FoleyError) else InputError(message)) from None
            failed += 1
            print(f"foley {command}: {job[0].name}: error: {message}", file=sys.stderr)
            continue
        print(line)
    return 1 if failed else 0
