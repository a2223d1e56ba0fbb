"""Physically motivated action sounds: modal impacts per material and noise models.

* impacts (knock, tap, drop, cut): a bank of exponentially damped modes per object, frequencies
  and damping from the material (metal rings long and bright, wood thuds, glass and ceramic
  chime, plastic clicks, paper rustles), excited by a short contact-noise burst whose brightness
  grows with the strike strength;
* scrape: stick-slip friction noise shaped by the object's modes, loudness following the hand's
  speed; pour: a turbulent stream plus rising bubble chirps; tear: a crackle of fibre snaps.

Every event's sound starts at its onset sample and ends at its offset sample: the action track
is exactly zero outside the events, which is what the ground-truth tests check.
All functions return float32 waves at ``sample_rate``; lengths are in samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# material -> modal parameters: f0 range (Hz) for a mid-sized object, mode ratios, decay of
# the fundamental (s), how fast higher modes die (tau_i = tau * (f0/f_i)**damp), contact time
# of the excitation (s) and weight of the contact noise.
MATERIAL_SOUND: dict[str, dict] = {
    "metal": dict(
        f0=(300, 900),
        ratios=(1.0, 2.32, 4.25, 6.63, 9.38, 12.1),
        tau=(0.25, 0.5),
        damp=0.35,
        contact=0.0006,
        noise=0.08,
    ),
    "glass": dict(
        f0=(1300, 3000),
        ratios=(1.0, 2.08, 3.86, 5.3),
        tau=(0.15, 0.35),
        damp=0.5,
        contact=0.0005,
        noise=0.04,
    ),
    "ceramic": dict(
        f0=(900, 2200),
        ratios=(1.0, 1.85, 3.1, 4.6, 6.2),
        tau=(0.06, 0.15),
        damp=0.6,
        contact=0.0007,
        noise=0.12,
    ),
    "wood": dict(
        f0=(180, 520),
        ratios=(1.0, 2.7, 4.3, 6.6),
        tau=(0.025, 0.06),
        damp=0.8,
        contact=0.0015,
        noise=0.35,
    ),
    "plastic": dict(
        f0=(300, 900),
        ratios=(1.0, 1.7, 2.9, 4.4),
        tau=(0.02, 0.05),
        damp=0.8,
        contact=0.0012,
        noise=0.3,
    ),
    "paper": dict(
        f0=(250, 600),
        ratios=(1.0, 2.1, 3.4),
        tau=(0.008, 0.02),
        damp=1.0,
        contact=0.003,
        noise=0.85,
    ),
}

MAX_IMPACT_SECONDS = 1.5


@dataclass
class Modes:
    """Modal parameters of one object: frequencies (Hz), decay times (s), amplitudes."""

    material: str
    freqs: np.ndarray
    decays: np.ndarray
    amps: np.ndarray


def object_modes(material: str, size: float, seed: int, sample_rate: int = 16000) -> Modes:
    """The modes of one object; ``size`` (w + h in frame units, ~0.2..0.5) lowers the pitch."""
    p = MATERIAL_SOUND[material]
    rng = np.random.default_rng([seed, 17])
    lo, hi = p["f0"]
    position = np.clip((0.55 - size) / 0.35, 0.0, 1.0)  # big object -> low end of the range
    f0 = lo * (hi / lo) ** float(np.clip(position + rng.normal(0, 0.15), 0, 1))
    ratios = np.asarray(p["ratios"]) * (1 + rng.uniform(-0.04, 0.04, len(p["ratios"])))
    ratios[0] = 1.0
    freqs = f0 * ratios
    keep = freqs < 0.45 * sample_rate
    freqs = freqs[keep]
    tau = rng.uniform(*p["tau"])
    decays = tau * (f0 / freqs) ** p["damp"]
    amps = rng.uniform(0.3, 1.0, len(freqs)) / (1 + 0.4 * np.arange(len(freqs)))
    return Modes(material, freqs, decays, amps)


def shaped_noise(n: int, rng: np.random.Generator, gain, sample_rate: int) -> np.ndarray:
    """White noise filtered in the frequency domain by ``gain(freqs_hz) -> amplitude``."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum *= gain(np.fft.rfftfreq(n, 1.0 / sample_rate))
    return np.fft.irfft(spectrum, n)


def modal_gain(modes: Modes, freqs: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """Magnitude response of the modes as resonators (Lorentzian peaks), for noise shaping."""
    bw = 1.0 / (np.pi * modes.decays) + 20.0  # Hz
    peaks = modes.amps[:, None] / (
        1.0 + ((freqs[None, :] - modes.freqs[:, None]) / bw[:, None]) ** 2
    )
    return floor + peaks.sum(axis=0)


def fade(wave: np.ndarray, attack: int, release: int) -> np.ndarray:
    n = wave.shape[0]
    env = np.ones(n)
    a, r = min(attack, n), min(release, n)
    if a:
        env[:a] = np.linspace(0.0, 1.0, a + 1)[1:]
    if r:
        env[n - r :] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, r))
    return wave * env


def _normalise(wave: np.ndarray, peak: float) -> np.ndarray:
    m = float(np.max(np.abs(wave))) if wave.size else 0.0
    return (wave * (peak / m)).astype(np.float32) if m > 0 else wave.astype(np.float32)


def impact(modes: Modes, strength: float, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One strike: peak ``strength``; harder strikes excite the high modes more."""
    p = MATERIAL_SOUND[modes.material]
    n = int(min(MAX_IMPACT_SECONDS, 4.6 * float(modes.decays.max()) + 0.012) * sample_rate)
    t = np.arange(n) / sample_rate
    freqs = modes.freqs * (1 + rng.normal(0, 0.004, len(modes.freqs)))
    rank = np.arange(len(freqs)) / max(1, len(freqs) - 1)
    amps = modes.amps * rng.uniform(0.8, 1.2, len(freqs)) * strength ** (1.2 * rank)
    ring = (
        amps[:, None]
        * np.exp(-t[None, :] / modes.decays[:, None])
        * np.sin(2 * np.pi * freqs[:, None] * t[None, :])
    ).sum(axis=0)
    contact = p["contact"] * (1.5 - 0.5 * strength)
    burst = rng.standard_normal(n) * np.exp(-t / contact)
    # contact noise weighted so a soft material is mostly noise, a hard one mostly ring
    ring = ring / (np.max(np.abs(ring)) + 1e-9)
    burst = burst / (np.max(np.abs(burst)) + 1e-9)
    wave = (1 - p["noise"]) * ring + p["noise"] * burst
    wave = fade(wave, 0, max(1, int(0.3 * n)))
    return _normalise(wave, strength)


def chop(modes: Modes, strength: float, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A knife chop: blade tick plus the object's thud (paper: a crisp snip)."""
    body = impact(modes, strength * 0.8, rng, sample_rate)
    n = body.shape[0]
    t = np.arange(n) / sample_rate
    blade = np.sin(2 * np.pi * rng.uniform(3500, 6000) * t) * np.exp(-t / rng.uniform(0.004, 0.008))
    wave = body + 0.5 * strength * blade
    if modes.material == "paper":
        snip = shaped_noise(n, rng, lambda f: (f > 2000) / (1 + f / 8000), sample_rate)
        wave = wave + strength * snip / (np.abs(snip).max() + 1e-9) * np.exp(-t / 0.012)
    return _normalise(fade(wave, 0, max(1, int(0.3 * n))), strength)


_FRICTION_TILT = {
    "metal": lambda f: (f / 1500) / (1 + f / 5000),
    "glass": lambda f: (f / 2000) / (1 + f / 6000),
    "ceramic": lambda f: (f / 1200) / (1 + f / 5000),
    "wood": lambda f: 1 / (1 + (f / 1500) ** 2),
    "plastic": lambda f: 1 / (1 + (f / 2500) ** 2),
    "paper": lambda f: (f / 3000) / (1 + (f / 6000) ** 2),
}


def scrape(
    modes: Modes, n: int, amp: float, period: float, rng: np.random.Generator, sample_rate: int
) -> np.ndarray:
    """Friction noise for ``n`` samples; loudness follows |hand speed| (period ``period`` s)."""
    t = np.arange(n) / sample_rate
    speed = np.abs(np.cos(2 * np.pi * t / period))
    rate = 150 + 600 * speed  # stick-slip events per second: a dense, even grain
    slips = (rng.random(n) < rate / sample_rate) * rng.exponential(1.0, n)
    slips[0] = 1.0
    grain = np.convolve(slips, np.exp(-np.arange(24) / 4.0))[:n]
    excitation = 0.6 * rng.standard_normal(n) + 0.5 * grain
    tilt = _FRICTION_TILT[modes.material]
    shaped = shaped_noise_from(
        excitation, lambda f: (tilt(f) + 0.02) * modal_gain(modes, f, 0.3), sample_rate
    )
    wobble = np.interp(
        t, np.linspace(0, t[-1] + 1e-3, max(2, n // 800)), rng.random(max(2, n // 800))
    )
    env = (0.55 + 0.45 * speed**0.7) * (0.85 + 0.3 * wobble)
    return _normalise(
        fade(shaped * np.clip(env, 0.05, None), int(0.004 * sample_rate), int(0.03 * sample_rate)),
        1.0,
    )


def shaped_noise_from(x: np.ndarray, gain, sample_rate: int) -> np.ndarray:
    """Filter ``x`` in the frequency domain by ``gain(freqs_hz)``."""
    n = x.shape[0]
    spectrum = np.fft.rfft(x) * gain(np.fft.rfftfreq(n, 1.0 / sample_rate))
    return np.fft.irfft(spectrum, n)


def pour(modes: Modes, n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Water poured into a container for ``n`` samples: stream noise plus rising bubbles."""
    t = np.arange(n) / sample_rate
    stream = shaped_noise(
        n,
        rng,
        lambda f: (f / 400) / (1 + (f / 400) ** 2) + 0.3 / (1 + (f / 3000) ** 2),
        sample_rate,
    )
    stream = stream / (np.abs(stream).max() + 1e-9)
    stream *= 0.6 + 0.4 * np.interp(t, np.linspace(0, t[-1] + 1e-3, 12), rng.random(12))
    bubbles = np.zeros(n)
    count = int(rng.uniform(40, 90) * n / sample_rate)
    for start in np.sort(rng.integers(0, max(1, n - 1), count)):
        progress = start / n
        f0 = np.exp(rng.uniform(np.log(600), np.log(2400))) * (1 + 0.6 * progress)
        d = rng.uniform(0.02, 0.05)
        length = min(n - start, int(d * sample_rate))
        tb = np.arange(length) / sample_rate
        phase = 2 * np.pi * f0 * (tb + 0.5 * rng.uniform(1.5, 3.0) * tb**2 / d)
        bubbles[start : start + length] += (
            rng.uniform(0.3, 1.0) * np.sin(phase) * np.exp(-3 * tb / d)
        )
    bubbles = bubbles / (np.abs(bubbles).max() + 1e-9)
    wave = 0.6 * stream + 0.5 * bubbles
    wave = shaped_noise_from(wave, lambda f: 1.0 + 0.5 * modal_gain(modes, f, 0.0), sample_rate)
    return _normalise(fade(wave, int(0.015 * sample_rate), int(0.06 * sample_rate)), 1.0)


def tear(n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Paper tearing for ``n`` samples: a dense crackle of fibre snaps in bursts."""
    t = np.arange(n) / sample_rate
    rate = rng.uniform(800, 2000)
    snaps = (rng.random(n) < rate / sample_rate) * rng.pareto(1.5, n)
    snaps[0] = 3.0
    grain = rng.standard_normal(32) * np.exp(-np.arange(32) / 6.0)
    crackle = np.convolve(snaps, grain)[:n]
    crackle = shaped_noise_from(
        crackle,
        lambda f: (f / 1500) ** 2 / (1 + (f / 1500) ** 2) / (1 + (f / 6500) ** 2),
        sample_rate,
    )
    bursts = 0.35 + 0.65 * np.interp(t, np.linspace(0, t[-1] + 1e-3, 8), rng.random(8))
    return _normalise(
        fade(crackle * bursts, int(0.002 * sample_rate), int(0.02 * sample_rate)), 1.0
    )
