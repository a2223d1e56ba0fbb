"""What one generation request produces, and the functions that write it to disk.

Each function writes into a per-request folder: candidate wavs and spectrograms (onsets
marked), the muxed video, the conditioning clip, the AVS mask overlay (PNG strip and MP4) with
the alignment score, and DenseAV's "where the sound comes from" heatmaps of the generated
soundtrack and of the upload's own soundtrack.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from foley.errors import FoleyError


@dataclass
class Candidate:
    seed: int
    audio_path: str  # wav
    spectrogram_path: str  # png, detected onsets marked
    onsets: list[float]  # seconds
    ambient_db: float  # dBFS of the quietest 0.5 s


@dataclass
class ConditionClip:
    id: str  # index id, or "uploaded"
    audio_path: str  # wav: the clip-length audio the model was conditioned on
    narration: str | None = None
    ambient_db: float | None = None
    score: float | None = None  # MC3 video-to-audio similarity of a retrieved clip
    clip_path: str | None = None
    track: str = "mix"  # "action": the retrieved clip's action-only track (action-focused)


@dataclass
class AVSResult:
    score: float  # alignment score in [0, 1] (0.5: no better than shuffled audio)
    strip_path: str  # png: frames with the sounding-object mask
    video_path: str  # mp4: the overlay with the generated audio
    seconds: float  # how much of the video the masks cover


@dataclass
class GenerateResult:
    video_path: str  # the uploaded video with the first candidate muxed in
    candidates: list[Candidate]
    mode: str
    seconds: float
    condition: ConditionClip | None
    avs: AVSResult | None
    avs_note: str  # why there is no overlay, when there is none
    elapsed: float
    index_version: str | None = None
    sync_shaping: float = 0.0  # the factor used (0: the denoiser's audio as it is)
    warnings: list[str] = field(default_factory=list)  # e.g. "decoded 1.9 s of 5.3 s"
    # DenseAV heatmaps (score: its alignment score) of the generated and the upload's own audio
    heatmap: AVSResult | None = None
    own_heatmap: AVSResult | None = None

    def details(self) -> dict:
        """JSON-able summary (the app's details panel and the API's ``details`` output)."""
        return {
            "mode": self.mode,
            "sync_shaping": self.sync_shaping,
            "seconds": round(self.seconds, 3),
            "elapsed_s": round(self.elapsed, 2),
            "candidates": [
                {
                    "seed": c.seed,
                    "onsets_s": [round(t, 3) for t in c.onsets],
                    "ambient_db": round(c.ambient_db, 1),
                }
                for c in self.candidates
            ],
            "condition": None
            if self.condition is None
            else {k: v for k, v in asdict(self.condition).items() if k != "audio_path"},
            "alignment_score": None if self.avs is None else round(self.avs.score, 3),
            "avs_note": self.avs_note or None,
            "denseav_score": None if self.heatmap is None else round(self.heatmap.score, 3),
            "denseav_score_own_audio": None
            if self.own_heatmap is None
            else round(self.own_heatmap.score, 3),
            "index_version": self.index_version,
            "warnings": self.warnings,
        }


def write_candidate(
    out_dir: Path, k: int, seed: int, wave: np.ndarray, sr: int, cfg, plot_lock: threading.Lock
) -> Candidate:
    """Candidate ``k``: its wav, its spectrogram with the detected onsets, its ambient level."""
    from foley.io import save_audio
    from foley.metrics.audio import ambient_level_db
    from foley.metrics.onsets import detect_onsets
    from foley.viz.spectrogram import spectrogram_png

    wav = save_audio(out_dir / f"candidate{k + 1}_seed{seed}.wav", wave, sr)
    onsets = [float(t) for t in detect_onsets(wave, cfg)]
    png = out_dir / f"candidate{k + 1}_spectrogram.png"
    with plot_lock:  # pyplot is not thread-safe
        spectrogram_png(
            wave,
            sr,
            png,
            onsets=onsets,
            title=f"seed {seed}: {len(onsets)} onsets detected",
            cfg=cfg,
        )
    return Candidate(seed, str(wav), str(png), onsets, float(ambient_level_db(wave, sr)))


def mux_result(video, decoded, wave: np.ndarray, sr: int, out: Path) -> Path:
    """The upload's own video stream with the audio; re-encoded frames if it cannot be
    copied into an mp4."""
    import av

    from foley.io import mux_audio, write_video

    try:
        return mux_audio(video, wave, sr, out)
    except (FoleyError, av.error.FFmpegError, ValueError):
        return write_video(out, decoded.frames, decoded.fps, audio=wave, sample_rate=sr)


def condition_clip(out_dir: Path, first, cond_wave, upload, sr: int) -> ConditionClip | None:
    """The clip the model was conditioned on (``first``: the first pipeline output, whose
    ``retrieved`` carries the retrieved clip's index metadata)."""
    from foley.io import save_audio
    from foley.metrics.audio import ambient_level_db

    wave = first.condition_audios[0]
    if wave is None:
        return None
    wav = str(save_audio(out_dir / "condition.wav", wave, sr))
    if cond_wave is not None:
        return ConditionClip(
            "uploaded",
            wav,
            narration=Path(upload).name,
            ambient_db=float(ambient_level_db(cond_wave, sr)),
        )
    found = first.retrieved[0] if first.retrieved else None
    meta = found.metadata if found is not None else {}
    track = found.track if found is not None else "mix"
    # an action-only track's own level, not the clip's: that is what the model heard
    level = float(ambient_level_db(wave, sr)) if track == "action" else meta.get("ambient_db")
    return ConditionClip(
        first.condition_ids[0],
        wav,
        narration=meta.get("narration"),
        ambient_db=level,
        score=first.condition_scores[0],
        clip_path=meta.get("clip_path"),
        track=track,
    )


def avs_overlay(
    pipe, decoded, wave: np.ndarray, sr: int, out_dir: Path, limits
) -> tuple[AVSResult | None, str]:
    """Masks of the sounding object from the generated audio, and the alignment score.

    ``pipe``: the request's FoleyPipeline (its AVS model draws the masks,
    :meth:`~foley.pipelines.foley_pipeline.FoleyPipeline.sounding_masks`); ``decoded``: the
    upload decoded at the pipeline's rate and size; ``wave``: the first candidate at ``sr``.
    """
    if getattr(pipe, "avs", None) is None:
        return None, (
            "No AVS model loaded (the model folder has no avs/ and no --avs was given): "
            "no mask overlay or alignment score."
        )
    from foley.analysis import write_overlay

    cfg = pipe.av_config
    masks, score = pipe.sounding_masks(
        decoded, wave, num_shuffles=limits.avs_shuffles, max_seconds=limits.avs_max_seconds
    )  # (T, S, S) in [0, 1]
    frames = decoded.frames[: len(masks)]  # (T, S, S, 3) uint8
    # readable on screen: >= 160 px frames
    strip = write_overlay(out_dir / "avs_overlay.png", frames, masks, None, cfg, min_size=160)
    clip = write_overlay(out_dir / "avs_overlay.mp4", frames, masks, wave, cfg)
    return AVSResult(score, str(strip), str(clip), len(frames) / cfg.fps), ""


def heatmap_overlay(
    pipe, decoded, wave: np.ndarray | None, out_dir: Path, limits, name: str
) -> AVSResult | None:
    """DenseAV's heatmaps of ``wave`` on the upload (``name``: file stem) and their alignment
    score; None without a DenseAV model or without audio."""
    if getattr(pipe, "denseav", None) is None or wave is None or not np.any(wave):
        return None
    from foley.analysis import write_overlay

    cfg = pipe.av_config
    heat, score = pipe.sound_heatmaps(
        decoded, wave, num_shuffles=limits.avs_shuffles, max_seconds=limits.avs_max_seconds
    )  # (T, S, S) in [0, 1]
    frames = decoded.frames[: len(heat)]  # (T, S, S, 3) uint8
    strip = write_overlay(out_dir / f"{name}.png", frames, heat, None, cfg, min_size=160)
    clip = write_overlay(out_dir / f"{name}.mp4", frames, heat, wave, cfg)
    return AVSResult(score, str(strip), str(clip), len(frames) / cfg.fps)
