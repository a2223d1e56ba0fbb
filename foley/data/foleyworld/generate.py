"""``foley make-dataset``: write a FoleyWorld dataset in Ego4D-Sounds format with ground truth.

Layout (``DATA`` = the output folder)::

    DATA/train.tsv val.tsv test.tsv [test_shifted.tsv]   Ego4D-Sounds metadata, split by video
    DATA/<video_uid>/<video_uid>_narration_pass_1_<i>.mp4  3 s, H.264 + 16 kHz mono AAC
    DATA/<video_uid>/<same stem>.gt.npz                    action, ambient, masks, events...
    DATA/foleyworld.json                                   settings, seed, vocabulary, licences

Clips are independent work items (a clip depends only on ``(seed, video, clip)``), spread over
worker processes; the output bytes do not depend on the number of workers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from foley.audio import dbfs
from foley.config import DEFAULT_CONFIG, AVConfig
from foley.data.ego4d import (
    ClipRecord,
    read_metadata,
    save_ground_truth,
    split_path,
    write_metadata,
)
from foley.data.foleyworld import vocab
from foley.data.foleyworld.bank import SoundBank
from foley.data.foleyworld.render import render_clip, sounding_masks
from foley.data.foleyworld.scene import (
    NARRATION_SOURCE,
    ClipPlan,
    FoleyWorldSettings,
    VideoPlan,
    assign_splits,
    held_out_combinations,
    plan_clip,
    plan_video,
)
from foley.data.foleyworld.tracks import clip_audio
from foley.errors import InputError

GENERATOR_VERSION = "1.0"
SPLIT_NAMES = ("train", "val", "test", "test_shifted")


@dataclass
class Clip:
    """Everything one clip writes: media, ground truth and its metadata row."""

    record: ClipRecord
    frames: np.ndarray  # (T, S, S, 3) uint8
    mixture: np.ndarray  # (N,) float32 = action + ambient
    action: np.ndarray  # (N,) float32
    ambient: np.ndarray  # (N,) float32
    masks: np.ndarray  # (T, S, S) bool
    events: list[dict]
    ambient_type: str
    ambient_db: float
    gap: np.ndarray  # (T,) contact distance in pixels (for tests; not written)
    plan: ClipPlan
    offscreen: np.ndarray | None = None  # (N,) float32: the off-screen events in ``action``
    # --speech only: the spoken narration (N,), the named object's masks (T, S, S), span (s)
    speech: np.ndarray | None = None
    spoken_masks: np.ndarray | None = None
    speech_span: tuple[float, float] | None = None


def clip_record(video: VideoPlan, plan: ClipPlan, cfg: AVConfig) -> ClipRecord:
    t = video.narration_times[plan.clip_index]
    half = cfg.clip_seconds / 2
    stem = f"{video.uid}_{NARRATION_SOURCE}_{plan.clip_index}"
    tag = vocab.AMBIENT_TAGS.get(video.ambient_type)
    return ClipRecord(
        video_uid=video.uid,
        video_dur=video.video_dur,
        narration_source=NARRATION_SOURCE,
        narration_ind=plan.clip_index,
        narration_time=t,
        clip_start=round(t - half, 4),
        clip_end=round(t + half, 4),
        clip_text=plan.text,
        tag_verb=plan.verb,
        tag_noun=video.objects[plan.target].noun,
        positive=1.0 if plan.sounding else 0.0,
        clip_file=f"{video.uid}/{stem}.mp4",
        speech=float(tag == "speech"),
        background_music=float(tag == "background_music"),
        traffic_noise=float(tag == "traffic_noise"),
        wind_noise=float(tag == "wind_noise"),
    )


def make_clip(
    settings: FoleyWorldSettings,
    video: VideoPlan,
    clip_index: int,
    cfg: AVConfig = DEFAULT_CONFIG,
    bank: SoundBank | None = None,
) -> Clip:
    """Plan, synthesise and render one clip (in memory)."""
    plan = plan_clip(settings, video, clip_index, cfg)
    action, ambient = clip_audio(plan, settings, cfg, bank)
    rendered = render_clip(plan, cfg)
    masks = sounding_masks(plan, rendered, cfg)
    events = sorted((e.to_json(cfg.fps) for e in plan.events), key=lambda e: e["onset"])
    spoken = {}
    if settings.speech:
        from foley.data.foleyworld.speech import speech_track, spoken_masks

        rng = np.random.default_rng([plan.synth_seed, 5107])
        track, on, off = speech_track(plan.text, cfg, rng)
        spoken = dict(
            speech=track,
            spoken_masks=spoken_masks(
                rendered.labels, rendered.regions, plan.target, (on, off), cfg.fps
            ),
            speech_span=(on, off),
        )
    record = clip_record(video, plan, cfg)
    if settings.speech:  # Ego4D-Sounds' speech column: someone talks in the clip
        record = dataclasses.replace(record, speech=1.0)
    return Clip(
        record=record,
        frames=rendered.frames,
        mixture=action + ambient + spoken.get("speech", 0.0),
        action=action,
        ambient=ambient,
        masks=masks,
        events=events,
        ambient_type=video.ambient_type,
        ambient_db=round(dbfs(ambient), 3),
        gap=rendered.gap,
        plan=plan,
        offscreen=plan.offscreen,
        **spoken,
    )


def write_clip(root: str | os.PathLike, clip: Clip, cfg: AVConfig = DEFAULT_CONFIG) -> None:
    from foley.io import write_video

    record = clip.record
    write_video(record.clip_path(root), clip.frames, cfg.fps, clip.mixture, cfg.sample_rate)
    spoken = {}
    if clip.speech is not None:
        spoken = dict(
            speech=clip.speech, spoken_masks=clip.spoken_masks, speech_span=clip.speech_span
        )
    save_ground_truth(
        record.gt_path(root),
        action=clip.action,
        ambient=clip.ambient,
        masks=clip.masks,
        events=clip.events,
        ambient_type=clip.ambient_type,
        ambient_db=clip.ambient_db,
        offscreen=clip.offscreen,
        **spoken,
    )


@functools.lru_cache(maxsize=4)
def _bank(path: str | None, shippable_only: bool = False) -> SoundBank | None:
    return SoundBank.scan(path, shippable_only=shippable_only) if path else None


def recordings_used(clip: Clip) -> list[str]:
    """The bank files a clip's events and bed were made from (one entry per use)."""
    sources = [e["source"] for e in clip.events] + [clip.plan.ambient_source]
    return [s.removeprefix("bank:") for s in sources if s.startswith("bank:")]


def _work(task: tuple) -> tuple[int, int, ClipRecord, list[str]]:
    out_dir, settings, cfg, bank_key, video_index, split, clip_index = task
    video = _video(settings, video_index, split)
    clip = make_clip(settings, video, clip_index, cfg, _bank(*bank_key))
    write_clip(out_dir, clip, cfg)
    return video_index, clip_index, clip.record, recordings_used(clip)


@functools.lru_cache(maxsize=64)
def _video(settings: FoleyWorldSettings, index: int, split: str) -> VideoPlan:
    return plan_video(settings, index, split)


def _clear_previous(out: Path, overwrite: bool) -> None:
    """Refuse a used folder unless ``overwrite``; then remove the previous dataset's files."""
    previous = [split_path(out, s) for s in SPLIT_NAMES if split_path(out, s).exists()]
    marker = out / "foleyworld.json"
    if not previous and not marker.exists():
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise InputError(
                f"{out}: the folder is not empty; choose a new --out or pass --overwrite"
            )
        return
    if not overwrite:
        raise InputError(f"{out}: already holds a dataset; choose a new --out or pass --overwrite")
    for tsv in previous:
        for uid in {r.video_uid for r in read_metadata(tsv)}:
            if (out.resolve() / uid).resolve().parent == out.resolve():  # never outside out
                shutil.rmtree(out / uid, ignore_errors=True)
        tsv.unlink()
    marker.unlink(missing_ok=True)


def generate_dataset(
    out_dir: str | os.PathLike,
    settings: FoleyWorldSettings,
    cfg: AVConfig = DEFAULT_CONFIG,
    *,
    sound_bank: str | os.PathLike | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    shippable_only: bool = False,
) -> dict:
    """Write the dataset; returns the summary also written to ``foleyworld.json``.

    With a sound bank, ``settings`` gains the extra verbs and ambient types the bank has
    recordings of (``vocab.EXTRA_VERBS`` / ``EXTRA_AMBIENTS``); ``shippable_only`` uses only
    its CC0/CC-BY/CC-BY-SA recordings (for data whose audio is shipped, e.g. an index)."""
    if settings.videos < 1 or settings.clips_per_video < 1:
        raise InputError("--videos and --clips-per-video must be at least 1")
    if workers < 1:
        raise InputError("--workers must be at least 1")
    if settings.shifted_test_videos < 0:
        raise InputError("--shifted-test-videos must be 0 or more")
    if settings.speech:
        from foley.data.foleyworld.speech import ESPEAK, espeak_available

        if not espeak_available():
            raise InputError(f"--speech needs {ESPEAK}: install it (apt-get install -y espeak-ng)")
    out = Path(out_dir)
    bank_key = (str(Path(sound_bank).resolve()) if sound_bank else None, shippable_only)
    bank = _bank(*bank_key)  # scan (and fail) before any work
    if bank is not None and bank.records:
        verbs, ambients = bank.extra_vocabulary()
        settings = dataclasses.replace(settings, extra_verbs=verbs, extra_ambients=ambients)
    _clear_previous(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    splits = assign_splits(settings)
    tasks = [
        (str(out), settings, cfg, bank_key, v, splits[v], c)
        for v in range(len(splits))
        for c in range(settings.clips_per_video)
    ]
    results = []
    bar = tqdm(total=len(tasks), desc="FoleyWorld clips", unit="clip", disable=not progress)
    if workers == 1:
        for task in tasks:
            results.append(_work(task))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) as pool:
            # a chunk holds consecutive clips of one video: its scene is drawn once per worker
            chunk = max(1, min(settings.clips_per_video, 16))
            for result in pool.imap_unordered(_work, tasks, chunksize=chunk):
                results.append(result)
                bar.update()
    bar.close()
    results.sort(key=lambda r: (r[0], r[1]))
    by_split: dict[str, list[ClipRecord]] = {s: [] for s in SPLIT_NAMES}
    used: dict[str, int] = {}
    for video_index, _, record, recordings in results:
        by_split[splits[video_index]].append(record)
        for rel in recordings:
            used[rel] = used.get(rel, 0) + 1
    for split in SPLIT_NAMES:
        if split != "test_shifted" or settings.shifted_test_videos:
            write_metadata(split_path(out, split), by_split[split])
    summary = {
        "generator": "FoleyWorld",
        "version": GENERATOR_VERSION,
        "seed": settings.seed,
        "settings": asdict(settings),
        "config": cfg.to_dict(),
        "splits": {
            s: {"videos": len({r.video_uid for r in rs}), "clips": len(rs)}
            for s, rs in by_split.items()
            if rs or s != "test_shifted"
        },
        "held_out_combinations": {
            k: list(v)
            for k, v in held_out_combinations(settings.seed, settings.ambient_types).items()
        },
        "vocabulary": {
            "materials": list(vocab.MATERIALS),
            "nouns": {
                m: [n for n, _ in ns]
                + [
                    e[1][0]
                    for v, e in vocab.EXTRA_NOUNS.items()
                    if v in settings.extra_verbs and e[0] == m
                ]
                for m, ns in vocab.NOUNS.items()
            },
            "sounding_verbs": list(settings.sounding_verbs),
            "silent_verbs": list(vocab.SILENT_VERBS),
            "ambient_types": list(settings.ambient_types),
        },
        "ground_truth": (
            "<video_uid>/<clip_stem>.gt.npz: action (N,) and ambient (N,) float32 with "
            "mixture = action + ambient; masks (T, S, S) bool, true on the sounding object's "
            "visible pixels while a visible event sounds; events_json: list of {onset, offset "
            "(s), frames [on, off), verb, material, visible, object, source}; ambient_type; "
            "ambient_db (dBFS of the ambient track); offscreen (N,) float32: the off-screen "
            "events' part of action (on screen = action - offscreen, off screen = offscreen "
            "+ ambient)"
            + (
                "; --speech: speech (N,) float32 (the narration spoken by espeak-ng, so mixture "
                "= action + ambient + speech), spoken_masks (T, S, S) bool (the named object's "
                "visible pixels while the words sound), speech_span (onset, offset) in s"
                if settings.speech
                else ""
            )
        ),
        "licence": "synthetic; no third-party media unless listed under sound_bank",
        "sound_bank": bank.describe(used) if bank else None,
    }
    with open(out / "foleyworld.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    return summary
