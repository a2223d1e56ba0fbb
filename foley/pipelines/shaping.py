"""Sync shaping: a generated window's loudness contour made to follow the video's sync curves.

The sync encoder (:class:`~foley.models.sync.SyncModel`) predicts from the frames alone, at the
codec's latent rate, when contacts happen (``onset``) and how loud the action is over the
clip's floor (``level``, in [0, 1] over ``LEVEL_RANGE_DB``). A denoiser trained for a few
thousand CPU steps renders transients too weak to count as onsets, even when it is given those
curves. Shaping applies them directly, as a gain envelope on each decoded window (the temporal
event condition of RMS-controlled foley models such as Video-Foley, imposed after decoding):

* ``target(t)``: an impact envelope at every predicted onset (1 at the contact, decaying with
  ``decay_s``, silent for ``attack_s`` before it), or the predicted level scaled to
  ``level_weight`` where that is larger;
* ``gain_dB(t) = strength * LEVEL_RANGE_DB * (target(t) - level_of_audio(t))``, shifted so its
  largest value is 0 dB, limited to ``-max_cut_db``, then raised by ``makeup_db``; the window
  is scaled down if a peak would pass ``PEAK_LIMIT``.

Where the audio is loud but the video shows nothing it is turned down; where a contact is seen
the window is turned down just before it and up at it, which makes an attack. The settings per
mode (:data:`MODE_SETTINGS`) were picked on FoleyWorld val clips: ambient-joint makes up all it
cuts, so the scene's floor stays where the denoiser put it and the contacts rise above it;
action-focused leaves the floor 15 dB down.
"""

from __future__ import annotations

import numpy as np

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.models.sync import LEVEL_RANGE_DB, curve_onsets

#: per-mode settings, chosen on FoleyWorld val clips (docs/BENCHMARKS.md, "Sync shaping")
MODE_SETTINGS = {
    "ambient_joint": {"strength": 1.5, "max_cut_db": 24.0, "makeup_db": 24.0},
    "action_focused": {"strength": 1.5, "max_cut_db": 30.0, "makeup_db": 15.0},
    "no_condition": {"strength": 1.5, "max_cut_db": 24.0, "makeup_db": 24.0},
}
#: largest ``sync_shaping`` factor the pipeline accepts
MAX_SHAPING = 3.0
PEAK_LIMIT = 0.98


def shaping_settings(mode: str, factor: float = 1.0) -> dict:
    """Keyword arguments of :func:`shape_to_curves` for ``mode``, strength times ``factor``."""
    settings = dict(MODE_SETTINGS[mode])
    settings["strength"] *= float(factor)
    return settings


def level_curve(wave: np.ndarray, num_latents: int, hop: int) -> np.ndarray:
    """Loudness of each latent frame above the window's 20th percentile, over
    ``LEVEL_RANGE_DB``, in [0, 1] (the sync encoder's ``level`` target)."""
    wave = np.asarray(wave, np.float32).reshape(-1)
    padded = np.pad(wave, (0, max(0, num_latents * hop - wave.size)))[: num_latents * hop]
    db = 10 * np.log10(np.mean(padded.reshape(num_latents, hop) ** 2, axis=1) + 1e-10)
    return np.clip((db - np.percentile(db, 20)) / LEVEL_RANGE_DB, 0.0, 1.0)


def shaping_gain(
    wave: np.ndarray,
    curves: np.ndarray,
    strength: float = 1.0,
    max_cut_db: float = 18.0,
    cfg: AVConfig = DEFAULT_CONFIG,
    attack_s: float = 0.04,
    decay_s: float = 0.25,
    onset_threshold: float = 0.5,
    level_weight: float = 0.5,
    makeup_db: float = 0.0,
) -> np.ndarray:
    """Per-sample linear gain ``(len(wave),)`` (at most ``makeup_db``) that moves ``wave``'s
    loudness contour toward ``curves`` ``(num_latents, 2)`` = (onset, level) probabilities."""
    wave = np.asarray(wave, np.float32).reshape(-1)
    curves = np.asarray(curves, np.float32)
    if curves.ndim != 2 or curves.shape[1] != 2:
        raise ValueError(f"curves must be (num_latents, 2), got {curves.shape}")
    n = curves.shape[0]
    hop = cfg.hop_length
    frame_s = hop / cfg.sample_rate
    t = (np.arange(n) + 0.5) * frame_s
    level = curves[:, 1] / max(float(curves[:, 1].max()), 1e-3) * level_weight
    accents = np.zeros(n, np.float32)
    width = max(1, int(round(attack_s / frame_s)))
    onsets = curve_onsets(curves[:, 0], cfg, threshold=onset_threshold)
    for t0 in onsets:  # an impact: loud at the contact, decaying after it
        after = t >= t0 - frame_s / 2
        accents = np.maximum(accents, np.where(after, np.exp(-(t - t0).clip(0) / decay_s), 0.0))
    target = np.maximum(level, accents)
    for t0 in onsets:  # quiet just before each contact: a clean attack
        j = int(t0 / frame_s)
        target[max(0, j - width) : j] = np.minimum(target[max(0, j - width) : j], 0.0)
    gain_db = float(strength) * LEVEL_RANGE_DB * (target - level_curve(wave, n, hop))
    gain_db = np.clip(gain_db - gain_db.max(), -float(max_cut_db), 0.0)
    centres = (np.arange(n) + 0.5) * hop
    per_sample = np.interp(np.arange(wave.size), centres, gain_db)
    return (10.0 ** ((per_sample + float(makeup_db)) / 20.0)).astype(np.float32)


def shape_to_curves(
    wave: np.ndarray, curves: np.ndarray, cfg: AVConfig = DEFAULT_CONFIG, **settings
) -> np.ndarray:
    """``wave`` times :func:`shaping_gain` (``settings``: its keyword arguments), scaled down if
    a peak would pass ``PEAK_LIMIT``; ``strength`` 0 returns it unchanged."""
    strength = settings.get("strength", 1.0)
    wave = np.asarray(wave, np.float32).reshape(-1)
    if strength <= 0:
        return wave.copy()
    out = wave * shaping_gain(wave, curves, cfg=cfg, **settings)
    peak = float(np.abs(out).max(initial=0.0))
    if peak > PEAK_LIMIT:  # made-up gain never clips: the whole window comes down
        out *= PEAK_LIMIT / peak
    return out
