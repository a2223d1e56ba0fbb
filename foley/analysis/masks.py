"""Sounding-object masks and the alignment score of a soundtrack, with FoleyPipeline's AVS model.

:func:`sounding_masks` is what ``FoleyPipeline(..., return_masks=True)`` and the app run: the
AVS model (:class:`~foley.models.avs.AVSModel`) segments the pixels that make the given audio,
and :func:`foley.metrics.avs.alignment_score` (score (b), no ground truth) says how much better
that audio's timing explains the pixels than the same audio mistimed.

Long videos are cut into consecutive, non-overlapping windows of the AVS model's clip length
(``avs.av.clip_seconds``, what it was trained on); the last window is padded with its last frame
and silence.  The masks of the windows are concatenated and cut back to the video's frames; the
score is the mean of the windows' scores (a padded last window counts as much as a full one).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from foley.config import AVConfig
from foley.errors import InputError


def window_frames(avs, cfg: AVConfig) -> int:
    """Frames (at ``cfg.fps``) of one AVS window: the AVS model's clip length."""
    return max(1, cfg.num_frames(avs.av.clip_seconds))


@torch.no_grad()
def sounding_masks(
    avs,
    frames: torch.Tensor,
    wave: np.ndarray | torch.Tensor,
    cfg: AVConfig,
    *,
    num_shuffles: int = 8,
    max_batch_windows: int = 32,
    bar=None,
) -> tuple[np.ndarray, float]:
    """Per-frame sounding-object probabilities and the alignment score of ``wave``.

    Args:
        avs: an :class:`~foley.models.avs.AVSModel`.
        frames: (T, 3, S, S) float in [0, 1] at ``cfg.fps``.
        wave: (N,) float at ``cfg.sample_rate``, starting with the first frame; shorter audio
            is padded with silence, longer is cut to the frames.
        cfg: the time contract of ``frames`` and ``wave`` (the pipeline's).
        num_shuffles: mistimed references of the score (``alignment_score``'s argument).
        max_batch_windows: AVS windows run together (memory bound).
        bar: optional progress bar (``update()`` once per batch of windows).

    Returns:
        masks (T, S, S) float32 in [0, 1], and the alignment score in [0, 1] (0.5: the audio
        explains the pixels no better than the same audio mistimed).
    """
    from foley.audio import resample
    from foley.metrics.avs import alignment_score, predict_probs

    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        raise InputError(f"frames must be (T, 3, S, S) with T >= 1, got {tuple(frames.shape)}")
    if int(max_batch_windows) < 1:
        raise InputError(f"max_batch_windows must be >= 1, got {max_batch_windows}")
    if int(num_shuffles) < 1:
        raise InputError(f"the alignment score needs num_shuffles >= 1, got {num_shuffles}")
    acfg: AVConfig = avs.av
    num_frames, size = frames.shape[0], tuple(frames.shape[-2:])
    wave = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else wave
    wave = np.asarray(wave, np.float32)
    if sum(d > 1 for d in wave.shape) > 1 or not np.isfinite(wave).all():
        raise InputError(f"the audio must be mono (N,) and finite, got shape {wave.shape}")
    wave = resample(wave.reshape(-1), cfg.sample_rate, acfg.sample_rate)

    # windows of the AVS clip length, in this video's frames and in the AVS model's samples
    fpw = window_frames(avs, cfg)
    spw = acfg.num_samples(fpw / cfg.fps)
    n_win = int(np.ceil(num_frames / fpw))
    pad = n_win * fpw - num_frames
    x = torch.cat([frames, frames[-1:].expand(pad, -1, -1, -1)]) if pad else frames
    audio = np.zeros(n_win * spw, np.float32)
    audio[: min(wave.size, audio.size)] = wave[: audio.size]

    resize = not avs.config.input_size and size != (acfg.frame_size,) * 2
    if resize:  # the model runs at its own frame size; masks come back at the video's
        x = F.interpolate(x.float(), size=(acfg.frame_size,) * 2, mode="bilinear", antialias=True)
    flat, motion = x, getattr(avs.config, "frame_diff", False)
    x = x.reshape(n_win, fpw, *x.shape[1:])
    w = torch.from_numpy(audio).reshape(n_win, spw)
    device, dtype = avs.device, avs.dtype
    probs, scores = [], []
    for lo in range(0, n_win, int(max_batch_windows)):
        xb = x[lo : lo + int(max_batch_windows)].to(device, dtype)
        wb = w[lo : lo + int(max_batch_windows)].to(device, dtype)
        pb = None
        if motion:  # a frame_diff model's predecessors: the previous frame, across windows too
            a, z = lo * fpw, (lo + xb.shape[0]) * fpw
            pb = torch.cat([flat[max(a - 1, 0) : max(a, 1)], flat[a : z - 1]])
            pb = pb.reshape(xb.shape).to(device, dtype)
        p = predict_probs(avs, xb, wb, pb).float()  # (b, fpw, h, w)
        probs.append(p.flatten(0, 1).cpu())
        s = alignment_score(avs, xb, wb, num_shuffles=int(num_shuffles), prev_frames=pb)
        scores.append(torch.as_tensor(s).float().reshape(-1).cpu())
        if bar is not None:
            bar.update()
    masks = torch.cat(probs)[:num_frames]
    if tuple(masks.shape[-2:]) != size:
        masks = F.interpolate(masks[:, None], size=size, mode="bilinear")[:, 0]
    masks = masks.clamp(0.0, 1.0).numpy().astype(np.float32)
    return masks, float(torch.cat(scores).mean())
