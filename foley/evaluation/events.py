"""Levels measured around the ground-truth events: what action-focused promises.

Two windows, both from FoleyWorld's event ground truth (audible events: visible and off-screen,
silent verbs left out):

* **between events**: every sample outside ``[onset - BEFORE_EVENT_S, offset + AFTER_EVENT_S]``
  of every event, i.e. where only the ambience should sound. Action-focused promises that it is
  at least ``SUPPRESSION_TARGET_DB`` below ambient-joint's there, in loud scenes.
* **at events**: ``[onset, onset + AT_EVENT_S]`` after every onset, where the contact sounds.
  Action-focused promises that it is within ``ACTION_LEVEL_TARGET_DB`` of the ground-truth
  action-only track's level in the same windows.

Levels are RMS dBFS over the window's samples (:func:`foley.audio.dbfs`: silence -100); a clip
with fewer than ``MIN_WINDOW_S`` of window has no level (NaN).
"""

from __future__ import annotations

import math

import numpy as np

from foley.audio import dbfs

BEFORE_EVENT_S = 0.05  # window around an event: from 50 ms before its onset...
AFTER_EVENT_S = 0.15  # ...to 150 ms after its offset (the end of its ground-truth sound)
AT_EVENT_S = 0.10  # the contact: the first 100 ms after each onset
MIN_WINDOW_S = 0.05
SUPPRESSION_TARGET_DB = 20.0
ACTION_LEVEL_TARGET_DB = 3.0


def audible_spans(events: list[dict]) -> np.ndarray:
    """``(E, 2)`` (onset, offset) seconds of the events that make a sound, sorted by onset; an
    event without an offset ends at its onset."""
    from foley.data.foleyworld.vocab import SILENT_VERBS

    spans = [
        (float(e["onset"]), float(e.get("offset", e["onset"])))
        for e in events
        if e.get("verb") not in SILENT_VERBS
    ]
    return np.asarray(sorted(spans), np.float64).reshape(-1, 2)


def _mask(num_samples: int, windows: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(num_samples,)`` bool, True inside any ``(start, end)`` seconds window."""
    mask = np.zeros(num_samples, bool)
    for start, end in windows:
        a = max(0, int(round(start * sample_rate)))
        b = min(num_samples, int(round(end * sample_rate)))
        mask[a:b] = True
    return mask


def between_events_mask(num_samples: int, spans: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(num_samples,)`` bool: the samples outside every event's window."""
    spans = np.asarray(spans, np.float64).reshape(-1, 2)
    windows = np.stack([spans[:, 0] - BEFORE_EVENT_S, spans[:, 1] + AFTER_EVENT_S], axis=1)
    return ~_mask(num_samples, windows, sample_rate)


def at_events_mask(num_samples: int, spans: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(num_samples,)`` bool: the first ``AT_EVENT_S`` after every onset."""
    onsets = np.asarray(spans, np.float64).reshape(-1, 2)[:, 0]
    return _mask(num_samples, np.stack([onsets, onsets + AT_EVENT_S], axis=1), sample_rate)


def masked_db(wave: np.ndarray, mask: np.ndarray, sample_rate: int) -> float:
    """RMS dBFS of ``wave``'s samples where ``mask`` is True (NaN under ``MIN_WINDOW_S``)."""
    wave = np.asarray(wave).reshape(-1)
    mask = mask[: wave.size]
    if mask.sum() < MIN_WINDOW_S * sample_rate:
        return math.nan
    return dbfs(wave[: mask.size][mask])


def event_levels(wave: np.ndarray, spans: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """``(between_events_db, at_events_db)`` of one soundtrack ``(N,)``."""
    n = np.asarray(wave).size
    return (
        masked_db(wave, between_events_mask(n, spans, sample_rate), sample_rate),
        masked_db(wave, at_events_mask(n, spans, sample_rate), sample_rate),
    )
