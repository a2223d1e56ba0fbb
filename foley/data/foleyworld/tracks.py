"""The two audio tracks of a clip: action-only (all events) and ambient-only (the scene's bed).

The mixture in the mp4 is ``action + ambient`` (both scaled together if the sum would clip).
Each event is placed at its onset sample; its ``onset``/``offset`` are snapped to the samples
actually written, so the ground truth describes the track exactly.  With a sound bank, an event
whose (material, verb) the bank holds takes a recording (trimmed to its onset, so the onset
stays the contact), varied per use by a random pitch (+-2 semitones), spectral tilt (+-6 dB per
decade) and gain (+-3 dB); its ``source`` says which (``bank:<file>`` or ``synth``).  The bed
comes from one of the bank's recordings of the video's ambient type when it has one, played
from the long video's absolute time, so the clips of a video are moments of one recording.
"""

from __future__ import annotations

import numpy as np

from foley.config import AVConfig
from foley.data.foleyworld import vocab
from foley.data.foleyworld.ambient import ambient_bed, ambient_params
from foley.data.foleyworld.bank import SoundBank
from foley.data.foleyworld.scene import ClipPlan, EventPlan, FoleyWorldSettings
from foley.data.foleyworld.synth import (
    chop,
    fade,
    impact,
    object_modes,
    pour,
    scrape,
    shaped_noise_from,
    tear,
)

MAX_PEAK = 0.95
PITCH_SEMITONES = 2.0
TILT_DB = 6.0  # per decade, around 1 kHz
GAIN_DB = 3.0


def vary(sample: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A recording re-pitched, tilted and re-gained; the onset stays at sample 0."""
    factor = 2 ** (rng.uniform(-PITCH_SEMITONES, PITCH_SEMITONES) / 12)  # > 1: higher, shorter
    n_out = max(1, int(sample.shape[0] / factor))
    sample = np.interp(np.arange(n_out) * factor, np.arange(sample.shape[0]), sample)
    tilt = rng.uniform(-TILT_DB, TILT_DB)
    pad = int(0.05 * sample_rate)  # zero-phase filter: its pre-ring falls in the cut padding
    padded = np.pad(sample, (pad, pad))
    padded = shaped_noise_from(
        padded, lambda f: (np.maximum(f, 50.0) / 1000.0) ** (tilt / 20), sample_rate
    )
    sample = padded[pad : pad + n_out]
    peak = float(np.max(np.abs(sample))) + 1e-12
    return (sample / peak * 10 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20)).astype(np.float32)


def _event_sound(
    plan: ClipPlan,
    event: EventPlan,
    index: int,
    length: int,
    cfg: AVConfig,
    bank: SoundBank | None,
    bank_probability: float,
    variety: bool = True,
) -> np.ndarray:
    """The event's wave, peak ``strength`` before gain; ``length`` samples for continuous verbs."""
    sr = cfg.sample_rate
    rng = np.random.default_rng([plan.synth_seed, index])
    use_bank = rng.random() < bank_probability  # drawn always: same stream with or without bank
    if event.object is not None:
        obj = plan.video.objects[event.object]
        modes = object_modes(obj.material, obj.w + obj.h, obj.sound_seed, sr)
    else:
        modes = object_modes(event.material, float(rng.uniform(0.2, 0.5)), event.sound_seed, sr)
    if bank is not None and use_bank and bank.has(event.material, event.verb):
        rel = bank.choose(event.material, event.verb, rng)
        sample = bank.load(rel, sr)
        if variety:
            sample = vary(sample, np.random.default_rng([plan.synth_seed, index, 17]), sr)
        event.source = f"bank:{rel}"
        if vocab.is_continuous(event.verb):
            sample = np.tile(sample, length // max(1, sample.shape[0]) + 1)[:length]
            return fade(sample, int(0.004 * sr), int(0.03 * sr)).astype(np.float32) * event.strength
        return fade(sample, 0, int(0.01 * sr)).astype(np.float32) * event.strength
    verb = vocab.motion(event.verb)  # no recording: synthesise as the base verb
    if verb == "scrape":
        return scrape(modes, length, event.params["amp"], event.params["period"], rng, sr)
    if verb == "pour":
        return pour(modes, length, rng, sr)
    if verb == "tear":
        return tear(length, rng, sr)
    if verb == "cut":
        return chop(modes, event.strength, rng, sr)
    return impact(modes, event.strength, rng, sr)


def action_track(
    plan: ClipPlan,
    cfg: AVConfig,
    bank: SoundBank | None = None,
    bank_probability: float = 1.0,
    variety: bool = True,
) -> np.ndarray:
    """``(cfg.samples_per_clip,)`` float32; fills each event's onset, offset and source, and
    ``plan.offscreen``: the off-screen events' part of the track."""
    sr, n = cfg.sample_rate, cfg.samples_per_clip
    track = np.zeros(n, np.float64)
    offscreen = np.zeros(n, np.float64)
    for i, event in enumerate(plan.events):
        start = min(int(round(event.onset * sr)), n - 1)
        length = 0
        if vocab.is_continuous(event.verb):
            length = max(1, int(round((event.onset + event.duration) * sr)) - start)
        sound = _event_sound(plan, event, i, length, cfg, bank, bank_probability, variety)
        if not event.visible:  # off-screen: farther away, duller
            sound = shaped_noise_from(sound, lambda f: 1 / (1 + (f / 2500) ** 2), sr)
            sound = fade(sound, 0, max(1, int(0.005 * sr)))
        sound = sound * 10 ** (event.gain_db / 20)
        stop = min(n, start + sound.shape[0])
        track[start:stop] += sound[: stop - start]
        if not event.visible:
            offscreen[start:stop] += sound[: stop - start]
        event.onset, event.offset = start / sr, stop / sr
    plan.offscreen = offscreen.astype(np.float32)
    return track.astype(np.float32)


def ambient_track(plan: ClipPlan, cfg: AVConfig, bank: SoundBank | None = None) -> np.ndarray:
    """The video's bed over this clip at the video's level, ``(cfg.samples_per_clip,)``;
    sets ``plan.ambient_source``."""
    video = plan.video
    level = 10 ** (video.ambient_db / 20)
    rel = None
    if bank is not None:
        rel = bank.choose_ambient(
            video.ambient_type, np.random.default_rng([video.ambient_seed, 5])
        )
    if rel is not None:
        bed = bank.load_bed(rel, cfg.sample_rate)
        start = int(round((video.narration_times[plan.clip_index] - cfg.clip_seconds / 2)
                          * cfg.sample_rate))  # fmt: skip
        plan.ambient_source = f"bank:{rel}"
        return (
            np.take(bed, np.arange(start, start + cfg.samples_per_clip), mode="wrap") * level
        ).astype(np.float32)
    params = ambient_params(video.ambient_type, video.ambient_seed)
    rng = np.random.default_rng([video.ambient_seed, 1 + plan.clip_index])
    start_time = video.narration_times[plan.clip_index] - cfg.clip_seconds / 2
    bed = ambient_bed(
        video.ambient_type, params, cfg.samples_per_clip, start_time, rng, cfg.sample_rate
    )
    return (bed * 10 ** (video.ambient_db / 20)).astype(np.float32)


def clip_audio(
    plan: ClipPlan, settings: FoleyWorldSettings, cfg: AVConfig, bank: SoundBank | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(action, ambient), each ``(N,)`` float32; the action is turned down if the mix would
    peak above 0.95 (the ambient never is: its level is the video's)."""
    action = action_track(plan, cfg, bank, settings.bank_probability, settings.bank_variety)
    ambient = ambient_track(plan, cfg, bank)
    peak = float(np.max(np.abs(action + ambient)))
    if peak > MAX_PEAK and np.any(action):
        headroom = MAX_PEAK - float(np.max(np.abs(ambient)))
        gain = max(headroom, 0.05) / float(np.max(np.abs(action)))
        action *= gain
        plan.offscreen = plan.offscreen * np.float32(gain)
    return action, ambient
