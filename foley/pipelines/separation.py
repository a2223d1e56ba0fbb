"""On-screen / off-screen separation of a whole soundtrack with AudioScope.

A video of any length is cut into clip-length windows (``foley.pipelines.windows``, as
generation does); each window's mixture is separated and its sources weighted by their
on-screen weights (``AudioScope.weights``: the model's ``weighting`` rule on the classifier's
logits); the windows' on-screen tracks are joined with the crossfade, and the
off-screen track is the rest of the mixture, so ``on + off == mixture`` exactly. Shared by
``foley separate``, the app's Separate tab and ``benchmarks/audioscope_eval.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.pipelines.windows import plan_windows, stitch

KEEP = ("on-screen", "off-screen")


@dataclass
class Separation:
    on_screen: np.ndarray  # (N,) float32
    off_screen: np.ndarray  # (N,) float32, mixture - on_screen
    probabilities: list[np.ndarray]  # per window: (M,) on-screen probability of each source

    def track(self, keep: str) -> np.ndarray:
        if keep not in KEEP:
            raise ValueError(f"keep must be one of {KEEP}, not {keep!r}")
        return self.on_screen if keep == "on-screen" else self.off_screen


@torch.no_grad()
def separate_track(
    model,
    wave: np.ndarray,
    frames: np.ndarray | None,
    cfg: AVConfig = DEFAULT_CONFIG,
    *,
    overlap_seconds: float | None = None,
    batch_size: int = 8,
    weighting: str | None = None,
) -> Separation:
    """Split ``wave`` (N,) float32 at ``cfg.sample_rate`` into on- and off-screen tracks.

    frames: (T, S, S, 3) uint8 at ``cfg.fps`` (the video), or None for the audio-only mode
    (the classifier's null video context). Windows of ``cfg.clip_seconds`` overlapping by
    ``overlap_seconds`` (default a sixth of a clip). ``weighting``: how the sources'
    probabilities become weights (``foley.models.audioscope.source_weights``; default the
    model's own, ``config.weighting``).
    """
    from foley.models.audioscope import video_input

    c = model.config
    if c.sample_rate != cfg.sample_rate:
        raise ValueError(f"the model works at {c.sample_rate} Hz, the config at {cfg.sample_rate}")
    wave = np.asarray(wave, np.float32)
    n = wave.shape[0]
    num_frames = frames.shape[0] if frames is not None else int(np.ceil(n / cfg.samples_per_frame))
    overlap = cfg.clip_seconds / 6 if overlap_seconds is None else overlap_seconds
    plan = plan_windows(
        max(num_frames, 1),
        cfg.frames_per_clip,
        round(overlap * cfg.fps),
        cfg.samples_per_frame,
        n,
    )
    w = plan.window_samples
    padded = np.pad(wave, (0, max(0, plan.start_samples[-1] + w - n)))
    device = next(model.parameters()).device
    ons, probs = [], []
    for lo in range(0, len(plan.start_samples), batch_size):
        starts = range(lo, min(lo + batch_size, len(plan.start_samples)))
        mix = torch.from_numpy(np.stack([padded[plan.start_samples[k] :][:w] for k in starts]))
        video = None
        if frames is not None:
            clips = []
            for k in starts:
                f = frames[plan.start_frames[k] : plan.start_frames[k] + cfg.frames_per_clip]
                if f.shape[0] < cfg.frames_per_clip:  # a video shorter than one clip
                    f = np.concatenate([f, np.repeat(f[-1:], cfg.frames_per_clip - len(f), 0)])
                clips.append(video_input(f, cfg.fps, c.video_fps, c.frame_size))
            video = torch.stack(clips).to(device)
        on, _, out = model.on_screen(mix.to(device), video, weighting)
        ons.append(on.cpu().numpy())
        probs += list(torch.sigmoid(out.logits).cpu().numpy())
    on_track = stitch(np.concatenate(ons), plan, "adaptive")
    return Separation(on_screen=on_track, off_screen=wave - on_track, probabilities=probs)
