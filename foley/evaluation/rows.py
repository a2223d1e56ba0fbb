"""The rows of the quality table and the per-clip metrics computed for each row.

Every row is a soundtrack for the same test clip; all rows of a clip are scored by the same
functions (:func:`clip_metrics`), so they can be compared in one table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from foley.config import AVConfig
from foley.evaluation.events import event_levels
from foley.metrics.audio import ambient_level_db
from foley.metrics.fd import mel_stats_embedding
from foley.metrics.onsets import detect_onsets, match_onsets

# row name -> what it is (the table's legend, docs/BENCHMARKS.md explains each)
ROWS: dict[str, str] = {
    "gt_mix": "ground-truth mix: the clip's own audio track (ceiling)",
    "gt_action": "ground-truth action-only track, no ambience",
    "retrieval": "retrieval-only: the audio of the clip retrieved for ambient-joint, as the output",
    "model_no_condition": "the model without audio condition (learned null condition)",
    "model_ambient_joint": "the model, ambient-joint (retrieved nearest clip as condition)",
    "model_action_focused": (
        "the model, action-focused (a retrieved clip's action track or low-ambience clip as "
        "condition)"
    ),
    "silence": "all-zero audio (floor)",
    "random_clip": "another clip's audio from the same split, another video if any (floor)",
    "unseen_videos": (
        "a real clip's audio from videos outside the evaluated clips (other splits, or "
        "--floor-data): real audio that shares no scene or recording with the reference (floor)"
    ),
}
#: rows that are drawn for comparison only and left out of the spectrogram grid
GRID_SKIPPED = ("silence", "unseen_videos")
MODEL_ROWS: dict[str, str] = {
    "no_condition": "model_no_condition",
    "ambient_joint": "model_ambient_joint",
    "action_focused": "model_action_focused",
}
RETRIEVAL_MODES = ("ambient_joint", "action_focused")
#: a model row's twin before sync shaping (same denoised audio), when the pipeline shapes
UNSHAPED_SUFFIX = "_unshaped"


def unshaped(row: str) -> str:
    """``model_ambient_joint`` -> ``model_ambient_joint_unshaped``."""
    return row + UNSHAPED_SUFFIX


def legend(row: str) -> str:
    """What a row is (:data:`ROWS`; an unshaped twin says so)."""
    if row.endswith(UNSHAPED_SUFFIX):
        return ROWS[row.removesuffix(UNSHAPED_SUFFIX)] + ", sync shaping off (same denoising)"
    return ROWS[row]


# FoleyWorld draws ambient beds at -40..-20 dBFS and near-silent rooms at -72..-62 dBFS: a scene
# is "loud" when its ground-truth ambient track is at least this level (RMS, dBFS).
LOUD_SCENE_DB = -40.0


@dataclass
class ClipTruth:
    """What a clip's rows are scored against.

    frames (T, 3, S, S) float in [0, 1]; masks (T, S, S) bool; onsets (seconds) of the audible
    ground-truth events (visible and off-screen) and spans (E, 2): their (onset, offset)
    seconds; ambient_db: RMS dBFS of the ambient track.
    """

    clip_id: str
    video_uid: str
    text: str
    frames: torch.Tensor
    mix: np.ndarray  # (N,) float32, the clip's audio track
    action: np.ndarray  # (N,) float32, action-only ground truth
    masks: torch.Tensor
    onsets: np.ndarray
    ambient_db: float
    spans: np.ndarray | None = None  # None: each event ends at its onset

    def __post_init__(self) -> None:
        if self.spans is None:
            self.spans = np.repeat(np.asarray(self.onsets, np.float64).reshape(-1, 1), 2, axis=1)

    @property
    def loud(self) -> bool:
        return self.ambient_db >= LOUD_SCENE_DB


def audible_onsets(events: list[dict]) -> np.ndarray:
    """Sorted onsets (s) of the events that make a sound, visible or off-screen."""
    from foley.data.foleyworld.vocab import SILENT_VERBS

    ons = [float(e["onset"]) for e in events if e.get("verb") not in SILENT_VERBS]
    return np.sort(np.asarray(ons, np.float64))


def fit_masks(masks: np.ndarray | torch.Tensor, num_frames: int, size: int) -> torch.Tensor:
    """Ground-truth masks (T', S', S') -> (num_frames, size, size) bool, nearest in time/space."""
    m = torch.as_tensor(np.asarray(masks)).bool()
    if tuple(m.shape) == (num_frames, size, size):
        return m
    t_idx = torch.clamp((torch.arange(num_frames) * m.shape[0]) // num_frames, max=m.shape[0] - 1)
    m = m[t_idx].float()[:, None]
    m = torch.nn.functional.interpolate(m, size=(size, size), mode="nearest")
    return m[:, 0] > 0.5


class Scorers:
    """The optional judges: MC3 (similarities, second FD), AVS (alignment J) and the pretrained
    networks (:class:`~foley.metrics.pretrained.PretrainedJudges`: FD aisfx, KL SoundNet,
    AV-agree)."""

    def __init__(self, cfg: AVConfig, mc3=None, avs=None, judges=None) -> None:
        self.cfg, self.mc3, self.avs, self.judges = cfg, mc3, avs, judges
        self._text_cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def clip_context(self, truth: ClipTruth) -> dict[str, torch.Tensor]:
        """Per clip, computed once: MC3 video and text embeddings (1, D); EfficientNet-Lite0's
        ImageNet distribution of the frames (1000,)."""
        ctx = {}
        if self.mc3 is not None:
            ctx["video"] = self.mc3.encode_video(truth.frames[None]).float().cpu()
            ctx["text"] = self.mc3.encode_text([truth.text]).float().cpu()
        if self.judges is not None:
            ctx["imagenet"] = torch.from_numpy(self.judges.frames(truth.frames, self.cfg.fps))
        return ctx

    @torch.no_grad()
    def score(
        self, waves: dict[str, np.ndarray], truth: ClipTruth, ctx: dict[str, torch.Tensor]
    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
        """Metrics of each row's soundtrack ``(N,)`` for one clip, and the rows' FD embeddings.

        Returns ``{row: {metric: value}}`` and ``{row: {"mel": (4 * n_mels,), "mc3": (D,),
        "aisfx": (512,)}}``; the networks see all rows of the clip as one batch. KL SoundNet is
        against the ``gt_mix`` row.
        """
        cfg = self.cfg
        names = list(waves)
        batch = np.stack([np.asarray(waves[r], np.float32).reshape(-1) for r in names])
        sr = cfg.sample_rate
        action_level = float(ambient_level_db(truth.action, sr))
        action_at_events = event_levels(truth.action, truth.spans, sr)[1]
        metrics: dict[str, dict[str, float]] = {}
        for name, wave in zip(names, batch):
            on = match_onsets(detect_onsets(wave, cfg), truth.onsets)
            level = float(ambient_level_db(wave, sr))
            between, at_events = event_levels(wave, truth.spans, sr)
            metrics[name] = {
                "onset_f1": on.f1,
                "onset_precision": on.precision,
                "onset_recall": on.recall,
                "onsets_detected": on.num_detected,
                "ambient_db": level,
                "ambient_gap_db": level - action_level,
                "between_events_db": between,
                "at_events_db": at_events,
                "action_gap_db": at_events - action_at_events,
                "av_sim": math.nan,
                "at_sim": math.nan,
                "avs_j": math.nan,
                "kl_soundnet": math.nan,
                "av_agree": math.nan,
            }
        mel = mel_stats_embedding(batch, cfg)  # (rows, 4 * n_mels)
        embeddings = {name: {"mel": mel[i]} for i, name in enumerate(names)}
        x = torch.from_numpy(batch)  # (rows, N)
        if self.mc3 is not None:
            a = self.mc3.encode_audio(x).float().cpu()  # (rows, D)
            av, at = (a @ ctx["video"].T)[:, 0], (a @ ctx["text"].T)[:, 0]
            for i, name in enumerate(names):
                metrics[name].update(av_sim=float(av[i]), at_sim=float(at[i]))
                embeddings[name]["mc3"] = a[i].numpy().astype(np.float64)
        if self.judges is not None:
            self._score_pretrained(batch, names, ctx, metrics, embeddings)
        if self.avs is not None:
            from foley.metrics.avs import mask_iou, predict_probs

            dev = self.avs.device
            frames = truth.frames[None].expand(len(names), *truth.frames.shape).to(dev)
            probs = predict_probs(self.avs, frames, x.to(dev)).cpu()  # (rows, T, S, S)
            j = mask_iou(probs, truth.masks[None].expand_as(probs)).mean(-1)
            for i, name in enumerate(names):
                metrics[name]["avs_j"] = float(j[i])
        return metrics, embeddings

    def _score_pretrained(
        self,
        batch: np.ndarray,
        names: list[str],
        ctx: dict[str, torch.Tensor],
        metrics: dict[str, dict[str, float]],
        embeddings: dict[str, dict[str, np.ndarray]],
    ) -> None:
        from foley.metrics.pretrained import av_agree, kl_divergence

        judged = self.judges.audio(batch, self.cfg.sample_rate)
        agree = av_agree(judged.objects, ctx["imagenet"].numpy()[None])  # (rows,)
        kl = (
            kl_divergence(judged.objects[names.index("gt_mix")][None], judged.objects)
            if "gt_mix" in names
            else np.full(len(names), math.nan)
        )
        for i, name in enumerate(names):
            metrics[name].update(kl_soundnet=float(kl[i]), av_agree=float(agree[i]))
            embeddings[name]["aisfx"] = judged.aisfx[i]
