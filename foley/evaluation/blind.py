"""``foley eval --no-ground-truth``: what needs no reference, on any folder of videos.

For the first clip (``cfg.clip_seconds``) of each video in a folder (real footage included), the
video's own soundtrack (when it has one), the model in each asked mode, silence and another
video's soundtrack are scored with the metrics that need no reference audio:

- ``av_agree``: SoundNet's ImageNet distribution of the audio against EfficientNet-Lite0's of
  the frames (:mod:`foley.metrics.pretrained`);
- ``sync_f1``: the model's own sync score, onset F1 (+-50 ms) of the audio's detected onsets
  against the onsets the pipeline's sync model predicts from the frames;
- ``alignment``: the model's AVS alignment score (b), ``foley.metrics.avs.alignment_score``.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.errors import InputError
from foley.evaluation.report import _clean, _mean, format_guidance, guidance_setting, table_lines

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
BLIND_ROWS: dict[str, str] = {
    "own_audio": "the video's own soundtrack (absent when the file has none)",
    "model_no_condition": "the model without audio condition",
    "model_ambient_joint": "the model, ambient-joint (retrieved nearest clip as condition)",
    "model_action_focused": "the model, action-focused (retrieved action track or quiet clip)",
    "silence": "all-zero audio (floor)",
    "random_clip": "another video's soundtrack (floor)",
}
BLIND_COLUMNS = (
    ("av_agree", "AV-agree", "{:.3f}"),
    ("sync_f1", "sync F1 (model's sync)", "{:.3f}"),
    ("alignment", "AVS alignment (b)", "{:.3f}"),
)


@dataclass
class BlindReport:
    """Means over videos per row; ``per_video``: every row's metrics per file."""

    settings: dict
    rows: dict[str, dict[str, float]]
    per_video: list[dict] = field(default_factory=list)

    def to_markdown(self) -> str:
        s = self.settings
        lines = [
            f"{s['videos']} videos of `{s['data']}` (first {s['clip_seconds']:g} s each, no "
            f"ground truth), {s['num_inference_steps']} steps, "
            f"guidance {format_guidance(s['guidance_scale'])}, seed {s['seed']}",
            "",
        ]
        lines += table_lines(self.rows, (("videos", "videos", "{:.0f}"), *BLIND_COLUMNS))
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        import json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": out / "report.md", "json": out / "report.json"}
        paths["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        payload = {
            "settings": self.settings,
            "rows": self.rows,
            "legend": {r: BLIND_ROWS[r] for r in self.rows},
            "per_video": self.per_video,
        }
        paths["json"].write_text(
            json.dumps(_clean(payload), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        return paths


def find_videos(folder: str | os.PathLike) -> list[Path]:
    """Video files under ``folder`` (recursively), sorted; a one-line error when none."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--data {root}: no such folder")
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not found:
        raise InputError(f"--data {root}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return found


def sync_f1(pipeline, frames: torch.Tensor, wave: np.ndarray) -> float:
    """Onset F1 of ``wave``'s onsets against those the pipeline's sync model predicts from
    ``frames (T, 3, S, S)``; NaN when the pipeline has no sync model."""
    from foley.metrics.onsets import detect_onsets, match_onsets
    from foley.models.sync import SyncModel, curve_onsets

    cfg = pipeline.av_config
    encoder = pipeline.video_encoder
    # sync/ beside the encoder (the pipeline's timing model when present), else a SyncModel
    # video encoder or the sync part of a sync+efficientnet one
    sync = getattr(pipeline, "sync", None)
    if sync is None:
        sync = encoder if isinstance(encoder, SyncModel) else getattr(encoder, "sync", None)
    if sync is None:
        return math.nan
    num_latents = cfg.num_latents(len(wave))
    param = next(sync.parameters())
    x = frames[None].to(param.device, param.dtype)
    with torch.no_grad():
        curve = torch.sigmoid(sync(x, num_latents)[0, :, 0]).float().cpu().numpy()
    return match_onsets(detect_onsets(wave, cfg), curve_onsets(curve, cfg)).f1


def evaluate_videos(
    data_dir: str | os.PathLike,
    pipeline,
    judges,
    *,
    modes: tuple[str, ...] = ("ambient_joint",),
    n: int | None = None,
    seed: int = 0,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    sync_shaping: float | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> BlindReport:
    """Score every row of :data:`BLIND_ROWS` on the first clip of each video under ``data_dir``.

    judges: :class:`~foley.metrics.pretrained.PretrainedJudges` (AV-agree); the pipeline's sync
    model and AVS model give the other columns (NaN without them). The model's noise for video
    ``i`` is drawn with ``seed + i``.
    """
    from foley.io import frames_to_tensor, load_video

    cfg = pipeline.av_config
    if num_inference_steps is None:
        num_inference_steps = pipeline.default_num_inference_steps
    videos = find_videos(data_dir)[: None if n is None else max(int(n), 0)]
    unknown = [m for m in modes if f"model_{m}" not in BLIND_ROWS]
    if unknown:
        raise InputError(f"unknown mode(s) {', '.join(unknown)}")
    # first pass: the soundtracks only (random_clip draws from them); frames are decoded again
    # per video in the second pass, so a large folder is never held in memory
    tracks: list[np.ndarray | None] = []
    lengths: list[int] = []
    skipped: list[str] = []
    kept: list[Path] = []
    for path in tqdm(videos, desc="load soundtracks", disable=not progress):
        try:  # the first clip of a video of any length; a file that does not decode is skipped
            video = load_video(path, cfg, until=cfg.clip_seconds)
        except InputError as err:
            print(f"foley eval: skipped {path.name}: {err}", file=sys.stderr)
            skipped.append(path.name)
            continue
        kept.append(path)
        num_samples = round(video.frames.shape[0] * cfg.samples_per_frame)
        has_audio = video.audio is not None and np.abs(video.audio).max() > 0
        tracks.append(_fit(video.audio, num_samples) if has_audio else None)
        lengths.append(num_samples)
    videos = kept
    if not videos:
        raise InputError(f"--data {data_dir}: no video could be decoded ({len(skipped)} skipped)")
    with_audio = [i for i, t in enumerate(tracks) if t is not None]
    rng = np.random.default_rng([seed, 7919])
    per_video: list[dict] = []
    bar_config = dict(getattr(pipeline, "_progress_bar_config", {}))
    pipeline.set_progress_bar_config(disable=True)
    try:
        for i, path in enumerate(tqdm(videos, desc="foley eval", disable=not progress)):
            video = load_video(path, cfg, until=cfg.clip_seconds, with_audio=False)
            frames = frames_to_tensor(video.frames)  # (T, 3, S, S) in [0, 1]
            n_samples = lengths[i]
            waves: dict[str, np.ndarray] = {}
            if tracks[i] is not None:
                waves["own_audio"] = tracks[i]
            for mode in modes:
                out = pipeline(
                    [frames],
                    mode=mode,
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale,
                    generator=torch.Generator().manual_seed(int(seed) + i),
                    sync_shaping=sync_shaping,
                )
                waves[f"model_{mode}"] = _fit(out.audios[0], n_samples)
            waves["silence"] = np.zeros(n_samples, np.float32)
            others = [j for j in with_audio if j != i]
            if others:
                waves["random_clip"] = _fit(tracks[others[rng.integers(len(others))]], n_samples)
            per_video.append({"file": str(path), "rows": _score(pipeline, judges, frames, waves)})
    finally:
        pipeline.set_progress_bar_config(**bar_config)
    rows = {}
    for name in BLIND_ROWS:
        scored = [v["rows"][name] for v in per_video if name in v["rows"]]
        if scored:
            rows[name] = {"videos": len(scored)}
            rows[name].update({k: _mean(s[k] for s in scored) for k, _, _ in BLIND_COLUMNS})
    settings = {
        "data": str(Path(data_dir)),
        "videos": len(per_video),
        "skipped": skipped,
        "clip_seconds": cfg.clip_seconds,
        "modes": list(modes),
        "num_inference_steps": int(num_inference_steps),
        "guidance_scale": guidance_setting(pipeline, guidance_scale, modes),
        "seed": int(seed),
    }
    report = BlindReport(settings, rows, per_video)
    if out_dir is not None:
        report.save(out_dir)
    return report


def _fit(wave: np.ndarray, num_samples: int) -> np.ndarray:
    out = np.zeros(num_samples, np.float32)
    wave = np.asarray(wave, np.float32).reshape(-1)[:num_samples]
    out[: wave.size] = wave
    return out


def _score(pipeline, judges, frames: torch.Tensor, waves: dict[str, np.ndarray]) -> dict:
    from foley.metrics.pretrained import av_agree

    cfg = pipeline.av_config
    names = list(waves)
    judged = judges.audio(np.stack([waves[r] for r in names]), cfg.sample_rate)
    agree = av_agree(judged.objects, judges.frames(frames, cfg.fps)[None])
    rows = {}
    for k, name in enumerate(names):
        alignment = math.nan
        if pipeline.avs is not None:
            alignment = float(pipeline.sounding_masks(frames, waves[name])[1])
        rows[name] = {
            "av_agree": float(agree[k]),
            "sync_f1": sync_f1(pipeline, frames, waves[name]),
            "alignment": alignment,
        }
    return rows
