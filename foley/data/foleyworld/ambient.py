"""Ambient beds: six scene types plus near-silence, stationary over a long video.

A video draws its bed's parameters once (:func:`ambient_params`: mains frequency, wind band,
voices, musical key...); each clip then renders its own stretch of that bed
(:func:`ambient_bed`), so the clips of a video share type, timbre and level. Music follows the
absolute time of the long video, so two clips of one video are two moments of the same piece.
"""

from __future__ import annotations

import numpy as np

from foley.data.foleyworld.synth import shaped_noise, shaped_noise_from


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def ambient_params(kind: str, seed: int) -> dict:
    """Parameters of one video's bed (kept for all its clips)."""
    rng = np.random.default_rng([seed, 3])
    if kind == "kitchen_hum":
        return {
            "mains": float(rng.choice([50.0, 60.0])),
            "fridge_fc": _uniform(rng, 250, 600),
            "harmonics": rng.uniform(0.1, 1.0, 5).tolist(),
        }
    if kind == "traffic":
        return {
            "rumble_fc": _uniform(rng, 70, 200),
            "car_rate": _uniform(rng, 0.2, 0.6),
            "car_fc": _uniform(rng, 300, 1100),
        }
    if kind == "wind":
        return {"band": _uniform(rng, 150, 600), "gust_rate": _uniform(rng, 0.3, 1.0)}
    if kind == "rain":
        return {
            "drop_rate": _uniform(rng, 300, 1200),
            "drop_hz": _uniform(rng, 2000, 5000),
            "hiss_fc": _uniform(rng, 500, 1500),
        }
    if kind == "babble":
        voices = int(rng.integers(3, 7))
        return {"pitches": rng.uniform(90, 240, voices).tolist(), "rate": _uniform(rng, 3.5, 5.5)}
    if kind == "music":
        minor = bool(rng.random() < 0.5)
        return {
            "root": _uniform(rng, 110, 220),
            "bpm": _uniform(rng, 70, 130),
            "minor": minor,
            "progression": rng.choice([0, 3, 4, 5], 4).tolist(),
            "brightness": _uniform(rng, 0.2, 0.6),
        }
    if kind == "near_silence":
        return {}
    raise ValueError(f"unknown ambient type {kind!r}")


def _smooth(rng: np.random.Generator, n: int, points: int) -> np.ndarray:
    """A slow random curve in [0, 1] through ``points`` random values."""
    return np.interp(np.arange(n), np.linspace(0, n, points), rng.random(points))


def _pink(n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    return shaped_noise(n, rng, lambda f: 1.0 / np.sqrt(np.maximum(f, 20.0)), sample_rate)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _music(params: dict, t: np.ndarray) -> np.ndarray:
    """Arpeggiated chords in a key, as a function of absolute time ``t`` (s)."""
    beat = 60.0 / params["bpm"]
    scale = [0, 2, 3, 5, 7, 8, 10] if params["minor"] else [0, 2, 4, 5, 7, 9, 11]
    beats = np.floor(t / beat).astype(np.int64)
    chord_root = np.asarray(params["progression"])[(beats // 4) % 4]
    step = np.asarray([0, 2, 4, 2])[beats % 4]  # root, third, fifth, third
    degree = chord_root + step
    semis = np.asarray(scale)[degree % 7] + 12 * (degree // 7)
    freq = params["root"] * 2.0 ** (semis / 12.0)
    since = t - beats * beat
    env = np.exp(-since / (0.35 * beat))
    b = params["brightness"]
    tone = np.sin(2 * np.pi * freq * since) + b * np.sin(4 * np.pi * freq * since)
    pad_freq = params["root"] * 2.0 ** (np.asarray(scale)[chord_root % 7] / 12.0) / 2
    pad = 0.3 * np.sin(2 * np.pi * pad_freq * t)
    return env * tone + pad


def ambient_bed(
    kind: str, params: dict, n: int, start_time: float, rng: np.random.Generator, sample_rate: int
) -> np.ndarray:
    """``n`` samples of the bed at unit RMS (the caller sets the level)."""
    t = np.arange(n) / sample_rate
    if kind == "kitchen_hum":
        hum = sum(
            a * np.sin(2 * np.pi * params["mains"] * (k + 1) * (t + start_time))
            for k, a in enumerate(params["harmonics"])
        )
        fridge = shaped_noise(
            n, rng, lambda f: 1 / (1 + (f / params["fridge_fc"]) ** 2), sample_rate
        )
        wave = 0.6 * _unit(hum) + _unit(fridge) + 0.1 * _unit(rng.standard_normal(n))
    elif kind == "traffic":
        fc = params["rumble_fc"]
        rumble = shaped_noise(n, rng, lambda f: 1 / (1 + (f / fc) ** 2), sample_rate)
        cars = shaped_noise(
            n, rng, lambda f: 1 / (1 + ((f - params["car_fc"]) / 300) ** 2), sample_rate
        )
        swell = np.zeros(n)
        for _ in range(rng.poisson(params["car_rate"] * (n / sample_rate + 4))):
            centre, width = rng.uniform(-2, n / sample_rate + 2), rng.uniform(0.8, 2.5)
            swell += rng.uniform(0.5, 1.5) * np.exp(-(((t - centre) / width) ** 2))
        wave = _unit(rumble) * (0.7 + 0.3 * _smooth(rng, n, 4)) + _unit(cars) * (0.2 + swell)
    elif kind == "wind":
        band = params["band"]
        low = shaped_noise(
            n, rng, lambda f: 1 / (1 + ((f - band) / (0.6 * band)) ** 2), sample_rate
        )
        high = shaped_noise(n, rng, lambda f: 1 / (1 + ((f - 2.5 * band) / band) ** 2), sample_rate)
        points = max(2, int(params["gust_rate"] * n / sample_rate) + 2)
        gust = _smooth(rng, n, points)
        wave = _unit(low) * (0.3 + gust**2) + 0.4 * _unit(high) * gust**3
    elif kind == "rain":
        fc = params["hiss_fc"]
        hiss = shaped_noise(n, rng, lambda f: (f / fc) / (1 + (f / fc) ** 2), sample_rate)
        drops = (rng.random(n) < params["drop_rate"] / sample_rate) * rng.pareto(2.0, n)
        k = np.arange(48) / sample_rate
        ping = np.sin(2 * np.pi * params["drop_hz"] * k) * np.exp(-k / 0.0015)
        wave = _unit(hiss) + 0.8 * _unit(np.convolve(drops, ping)[:n] + 1e-9)
    elif kind == "babble":
        wave = np.zeros(n)
        for pitch in params["pitches"]:
            f0 = pitch * (1 + 0.08 * (_smooth(rng, n, 12) - 0.5))
            phase = np.cumsum(f0) / sample_rate
            source = (phase % 1.0) - 0.5  # glottal sawtooth
            bands = [
                shaped_noise_from(
                    source, lambda f, c=c: 1 / (1 + ((f - c) / (0.25 * c)) ** 2), sample_rate
                )
                for c in (350, 700, 1200, 2300)
            ]
            syllables = max(2, int(params["rate"] * n / sample_rate))
            weights = [_smooth(rng, n, syllables + 1) for _ in bands]
            gate = (_smooth(rng, n, syllables + 1) > 0.35).astype(float)
            gate = np.convolve(gate, np.ones(400) / 400, mode="same")
            wave += gate * sum(w * _unit(b) for w, b in zip(weights, bands))
        wave = shaped_noise_from(wave, lambda f: 1 / (1 + (f / 3000) ** 4), sample_rate)
        wave = _unit(wave) + 0.15 * _unit(_pink(n, rng, sample_rate))
    elif kind == "music":
        wave = _unit(_music(params, t + start_time)) + 0.05 * _unit(rng.standard_normal(n))
    elif kind == "near_silence":
        wave = _pink(n, rng, sample_rate)
    else:
        raise ValueError(f"unknown ambient type {kind!r}")
    # soft-limit the crest factor (rain drops, gusts) so a bed never peaks above ~4x its RMS
    wave = 4.0 * np.tanh(_unit(np.asarray(wave, np.float64)) / 4.0)
    return _unit(wave).astype(np.float32)
