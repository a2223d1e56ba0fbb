"""DenseAV heatmaps of any (video, audio) pair and an alignment score that needs no masks.

``sound_heatmaps(model, frames, wave, cfg)`` -> where the sound comes from on each frame
(``DenseAVModel.heatmaps``: time-averaged similarity, min-max normalised) and the alignment
score: each frame is compared with the audio around it (``window_s``), the aggregated
similarity (max over space, mean over the window's voiced steps, max over heads) averaged over
frames, and ranked against the same audio shuffled in time (``num_shuffles`` copies): 1.0 means
the true timing explains the frames better than every shuffle, 0.5 no better than chance.
"""

from __future__ import annotations

import numpy as np
import torch

from foley.config import AVConfig
from foley.errors import InputError


@torch.no_grad()
def frame_scores(model, frames: torch.Tensor, wave: torch.Tensor, cfg: AVConfig, window_s: float):
    """Aggregated similarity of each frame ``(T, 3, S, S)`` with the audio ``(N,)`` within
    ``window_s`` / 2 of the frame's time: ``(T,)``."""
    audio = model.audio_features(wave.reshape(1, -1))[0]  # (K, D, Ta)
    steps = audio.shape[-1]
    voiced = model.voiced(wave.reshape(1, -1), steps)[0]  # (Ta,)
    step_s = wave.numel() / cfg.sample_rate / steps
    half = max(1, int(round(window_s / 2 / step_s)))
    out = []
    for lo in range(0, frames.shape[0], 16):
        vis = model.visual_features(frames[lo : lo + 16])  # (t, K, D, h, w)
        sim = torch.einsum("kdt,vkdhw->vkhwt", audio, vis).flatten(2, 3).max(2).values  # (t,K,Ta)
        for j in range(sim.shape[0]):
            c = int(round((lo + j) / cfg.fps / step_s))
            a, b = max(0, c - half), min(steps, c + half + 1)
            w = voiced[a:b].float()
            if not w.any():
                w = torch.ones_like(w)
            out.append(((sim[j, :, a:b] * w).sum(-1) / w.sum()).max())
    return torch.stack(out)


@torch.no_grad()
def sound_heatmaps(
    model,
    frames: torch.Tensor,
    wave: np.ndarray | torch.Tensor,
    cfg: AVConfig,
    *,
    head: int | None = None,
    num_shuffles: int = 8,
    window_s: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """``frames (T, 3, S, S)`` in [0, 1] at ``cfg.fps``, ``wave (N,)`` from the first frame ->
    heatmaps ``(T, S, S)`` float32 in [0, 1] and the alignment score in [0, 1]."""
    from foley.metrics.avs import shuffle_in_time

    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        raise InputError(f"frames must be (T, 3, S, S) with T >= 1, got {tuple(frames.shape)}")
    if int(num_shuffles) < 1:
        raise InputError(f"the alignment score needs num_shuffles >= 1, got {num_shuffles}")
    w = torch.as_tensor(np.asarray(wave, np.float32)).reshape(-1)
    n = cfg.num_samples(frames.shape[0] / cfg.fps)
    w = torch.nn.functional.pad(w[:n], (0, max(0, n - w.numel())))
    frames = frames.float()
    maps, _ = model.heatmaps(frames, w, head)
    true = frame_scores(model, frames, w, cfg, window_s).mean()
    g = torch.Generator().manual_seed(seed)
    block = max(1, int(cfg.sample_rate * window_s / 2))
    wins = []
    for _ in range(int(num_shuffles)):
        shuffled = shuffle_in_time(w[None], block, g)[0]
        ref = frame_scores(model, frames, shuffled, cfg, window_s).mean()
        wins.append(1.0 if true > ref else 0.5 if true == ref else 0.0)
    return maps.numpy().astype(np.float32), float(np.mean(wins))
