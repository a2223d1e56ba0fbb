"""Cutting a recording into single events, trimming and loudness-normalising (16 kHz mono).

Onsets are found on a 10 ms log-energy envelope: a frame starts an event when it is loud
(within ``ACTIVE_DB`` of the file's peak) and has risen ``RISE_DB`` above the quietest of the
previous ``RISE_S``, at least ``MIN_GAP_S`` after the previous onset.  An event runs to the next
onset, its tail trimmed where it falls ``TAIL_DB`` below its own peak.
"""

from __future__ import annotations

import numpy as np

HOP = 160  # samples per envelope frame at 16 kHz: 10 ms
ACTIVE_DB = -35.0
RISE_DB = 9.0
RISE_S = 0.03
MIN_GAP_S = 0.08
GUARD_S = 0.02
TAIL_DB = -45.0
MIN_EVENT_S = 0.03
MAX_EVENT_S = 2.0
MAX_TEXTURE_S = 8.0
MAX_AMBIENT_S = 60.0
TARGET_DB = -20.0  # loudness: RMS of the frames within 30 dB of the peak, dBFS
MAX_PEAK = 0.95


def envelope_db(wave: np.ndarray) -> np.ndarray:
    """(frames,) RMS per 10 ms frame in dB relative to the loudest frame."""
    n = max(1, wave.shape[0] // HOP)
    frames = wave[: n * HOP].reshape(n, HOP) if wave.shape[0] >= HOP else wave[None, :]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-10
    return 20 * np.log10(rms / rms.max())


def onsets(wave: np.ndarray, sample_rate: int = 16000) -> list[int]:
    """Onset samples of the events in ``wave`` (N,)."""
    db = envelope_db(wave)
    look = max(1, int(RISE_S * sample_rate / HOP))
    gap = max(1, int(MIN_GAP_S * sample_rate / HOP))
    found: list[int] = []
    for i in np.flatnonzero(db > ACTIVE_DB):
        if found and i - found[-1] < gap:
            continue
        before = db[max(0, i - look) : i]
        if not found or (before.size and db[i] - before.min() >= RISE_DB):
            found.append(int(i))
    return [max(0, f * HOP - HOP // 2) for f in found]


def trim(wave: np.ndarray, max_seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Cut the silence before the first loud frame and the tail below ``TAIL_DB``."""
    if wave.size == 0 or not np.any(wave):
        return wave[:0]
    db = envelope_db(wave)
    loud = np.flatnonzero(db > TAIL_DB)
    first = np.flatnonzero(db > ACTIVE_DB)[0]
    start, stop = max(0, first * HOP - HOP // 2), (loud[-1] + 1) * HOP
    return wave[start : min(stop, start + int(max_seconds * sample_rate))]


def normalise(wave: np.ndarray) -> tuple[np.ndarray, float]:
    """(wave at ``TARGET_DB`` loudness, peak at most ``MAX_PEAK``), and the gain applied (dB)."""
    db = envelope_db(wave)
    n = db.shape[0]
    frames = wave[: n * HOP].reshape(n, HOP) if wave.shape[0] >= HOP else wave[None, :]
    loud = frames[db > -30.0]
    rms = float(np.sqrt(np.mean(loud.astype(np.float64) ** 2))) + 1e-12
    gain = 10 ** (TARGET_DB / 20) / rms
    peak = float(np.max(np.abs(wave))) * gain
    if peak > MAX_PEAK:
        gain *= MAX_PEAK / peak
    return (wave * gain).astype(np.float32), float(20 * np.log10(gain))


def split_events(wave: np.ndarray, kind: str, sample_rate: int = 16000) -> list[np.ndarray]:
    """The pieces of one labelled recording: single events, or the whole texture/bed."""
    if kind != "event":
        limit = MAX_TEXTURE_S if kind == "texture" else MAX_AMBIENT_S
        pieces = [trim(wave, limit, sample_rate)]
    else:
        starts = onsets(wave, sample_rate)
        # an event ends GUARD_S before the next onset: codec pre-echo stays with the next one
        stops = [max(a + 1, b - int(GUARD_S * sample_rate)) for a, b in zip(starts, starts[1:])]
        stops.append(wave.shape[0])
        pieces = [trim(wave[a:b], MAX_EVENT_S, sample_rate) for a, b in zip(starts, stops)]
    return [p for p in pieces if p.shape[0] >= MIN_EVENT_S * sample_rate]
