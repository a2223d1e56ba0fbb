"""Spoken narration for ``foley make-dataset --speech`` (Debian's ``espeak-ng``).

Each clip's narration ("C knocks the metal pan") is spoken once, starting at a random time in
the clip, at a natural speaking level (active-speech RMS drawn in ``SPEECH_DBFS``), over the
clip's sounds. The ground truth gains the speech track and the *spoken* object's mask (the
target object's visible pixels on the frames while the words sound) beside the sounding one.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

from foley.audio import resample
from foley.config import AVConfig
from foley.errors import InputError

ESPEAK = "espeak-ng"
SPEECH_DBFS = (-28.0, -20.0)  # RMS of the voiced part; hand sounds peak around -20 to -6 dBFS
WORDS_PER_MINUTE = (150, 185)


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def spoken_text(narration: str) -> str:
    """Ego4D's ``#C C knocks ...`` -> ``C knocks ...`` (the camera wearer is "C")."""
    return narration.replace("#C", "").strip()


def synthesize(text: str, sample_rate: int, words_per_minute: int = 165) -> np.ndarray:
    """``espeak-ng`` speaking ``text`` -> ``(N,)`` float32 at ``sample_rate``."""
    if not espeak_available():
        raise InputError(f"--speech needs {ESPEAK}: install it (apt-get install -y espeak-ng)")
    run = subprocess.run(
        [ESPEAK, "--stdout", "-v", "en-us", "-s", str(int(words_per_minute)), text],
        capture_output=True,
        check=True,
        timeout=60,
    )
    data = run.stdout
    if data[:4] != b"RIFF" or b"fmt " not in data[:64] or b"data" not in data[:128]:
        raise RuntimeError(f"{ESPEAK} wrote no WAV for {text!r}")
    fmt = data.index(b"fmt ") + 8
    rate = int.from_bytes(data[fmt + 4 : fmt + 8], "little")
    start = data.index(b"data") + 8  # espeak streams: the chunk size field is not reliable
    pcm = np.frombuffer(data[start : start + (len(data) - start) // 2 * 2], "<i2")
    return resample(pcm.astype(np.float32) / 32768.0, rate, sample_rate).astype(np.float32)


def speech_track(
    narration: str, cfg: AVConfig, rng: np.random.Generator
) -> tuple[np.ndarray, float, float]:
    """The narration spoken at a random time: ``(N,)`` float32 track and its (onset, offset)
    in seconds (offset <= clip length; speech longer than the clip is cut)."""
    n = cfg.samples_per_clip
    voice = synthesize(
        spoken_text(narration), cfg.sample_rate, int(rng.integers(*WORDS_PER_MINUTE))
    )
    loud = np.flatnonzero(np.abs(voice) > 1e-3)
    voice = voice[loud[0] : loud[-1] + 1] if loud.size else voice  # trim espeak's silences
    voice = voice[:n]
    rms = float(np.sqrt(np.mean(voice**2))) + 1e-12
    voice = voice * (10 ** (rng.uniform(*SPEECH_DBFS) / 20.0) / rms)
    start = int(rng.integers(0, n - voice.size + 1))
    track = np.zeros(n, np.float32)
    track[start : start + voice.size] = voice
    return track, start / cfg.sample_rate, (start + voice.size) / cfg.sample_rate


def spoken_masks(
    labels: np.ndarray, regions: np.ndarray, target: int, span: tuple[float, float], fps: float
) -> np.ndarray:
    """``(T, S, S)`` bool: the named object's visible pixels (its region where the hand hides
    it all) on the frames overlapping the speech ``span`` (s)."""
    masks = np.zeros(labels.shape, bool)
    k_on = int(np.floor(span[0] * fps))
    k_off = min(labels.shape[0], int(np.ceil(span[1] * fps)))
    for k in range(k_on, k_off):
        obj = labels[k] == target + 1
        masks[k] = obj if obj.any() else regions[k] == target + 1
    return masks
