"""``--sound-bank DIR``: a folder of the user's recordings, mixed in by material and verb.

A file is used for events of one (material, verb) when it is named either
``DIR/<material>/<verb>*.<ext>`` or ``DIR/<material>_<verb>*.<ext>`` (case-insensitive, any
depth for the second form), with ``<ext>`` one of wav, flac, ogg, oga, mp3, wv.  Other files are
ignored (and counted in ``foleyworld.json``).  Licence files in ``DIR`` (``LICENSE*``,
``LICENCE*``, ``COPYING*``, ``COPYRIGHT*``, ``README*``, ``CREDITS*``) are recorded with their
text, so the dataset says where its sounds came from.

Real recordings under a free licence: Debian's ``minetest-data`` (CC-BY-SA 3.0 / CC0 ogg foley
in ``/usr/share/games/minetest/games/minetest_game/mods/*/sounds``), e.g.::

    mkdir -p bank/metal bank/wood bank/glass
    M=/usr/share/games/minetest/games/minetest_game/mods
    ln -s $M/default/sounds/default_dug_metal.1.ogg bank/metal/knock_1.ogg
    ln -s $M/default/sounds/default_place_node_metal.1.ogg bank/metal/drop_1.ogg
    ln -s $M/default/sounds/default_wood_footstep.1.ogg bank/wood/tap_1.ogg
    ln -s $M/default/sounds/default_dig_choppy.1.ogg bank/wood/cut_1.ogg
    ln -s $M/default/sounds/default_glass_footstep.ogg bank/glass/tap_1.ogg
    cp /usr/share/doc/minetest-data/copyright bank/LICENSE
    foley make-dataset --out d --videos 10 --clips-per-video 5 --sound-bank bank

Each recording is decoded to 16 kHz mono, trimmed to its onset (first sample above 5 % of its
peak) and its tail (below -50 dB), at most ``MAX_SECONDS`` long, and peak-normalised.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from foley.data.foleyworld import vocab
from foley.errors import InputError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".wv")
LICENCE_PREFIXES = ("license", "licence", "copying", "copyright", "readme", "credits")
MAX_SECONDS = 2.0
_VERB_RE = "|".join(sorted(vocab.SOUNDING_VERBS, key=len, reverse=True))
_MAT_RE = "|".join(vocab.MATERIALS)
_FLAT = re.compile(rf"^({_MAT_RE})[_\-. ]({_VERB_RE})(?:s|es|ing|ed)?(?![a-z])")
_NESTED = re.compile(rf"^({_VERB_RE})(?:s|es|ing|ed)?(?![a-z])")


def classify(rel: Path) -> tuple[str, str] | None:
    """(material, verb) of a bank file from its relative path, or None if it names neither."""
    stem = rel.stem.lower()
    if len(rel.parts) >= 2 and rel.parts[-2].lower() in vocab.MATERIALS:
        m = _NESTED.match(stem)
        if m:
            return rel.parts[-2].lower(), m.group(1)
    m = _FLAT.match(stem)
    if m:
        return m.group(1), m.group(2)
    return None


@dataclass
class SoundBank:
    root: Path
    entries: dict[tuple[str, str], list[str]]
    ignored: list[str]
    licence_files: list[str]
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def scan(cls, root: str | os.PathLike) -> SoundBank:
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"{root}: the sound bank must be a folder")
        entries: dict[tuple[str, str], list[str]] = {}
        ignored, licences = [], []
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(root)
            if path.name.lower().startswith(LICENCE_PREFIXES) and len(rel.parts) <= 2:
                licences.append(rel.as_posix())
                continue
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            key = classify(rel)
            if key is None:
                ignored.append(rel.as_posix())
            else:
                entries.setdefault(key, []).append(rel.as_posix())
        if not entries:
            raise InputError(
                f"{root}: no recordings named <material>/<verb>*.wav or <material>_<verb>*.wav "
                f"(materials: {' '.join(vocab.MATERIALS)}; verbs: {' '.join(vocab.SOUNDING_VERBS)})"
            )
        return cls(root, entries, ignored, licences)

    def has(self, material: str, verb: str) -> bool:
        return (material, verb) in self.entries

    def choose(self, material: str, verb: str, rng: np.random.Generator) -> str:
        files = self.entries[(material, verb)]
        return files[int(rng.integers(len(files)))]

    def load(self, rel: str, sample_rate: int) -> np.ndarray:
        """The trimmed, peak-normalised recording ``(num_samples,)`` float32."""
        if rel not in self._cache:
            from foley.io import load_audio

            wave = load_audio(self.root / rel, sample_rate)
            peak = float(np.max(np.abs(wave))) if wave.size else 0.0
            if peak <= 0:
                raise InputError(f"{rel}: the recording is silent")
            loud = np.flatnonzero(np.abs(wave) >= 0.05 * peak)
            tail = np.flatnonzero(np.abs(wave) >= 10 ** (-50 / 20) * peak)
            start, stop = int(loud[0]), int(tail[-1]) + 1
            stop = min(stop, start + int(MAX_SECONDS * sample_rate))
            self._cache[rel] = (wave[start:stop] / peak).astype(np.float32)
        return self._cache[rel]

    def describe(self) -> dict:
        """What ``foleyworld.json`` records: files (with sha256), counts and licence texts."""
        files = []
        for (material, verb), rels in sorted(self.entries.items()):
            for rel in rels:
                digest = hashlib.sha256((self.root / rel).read_bytes()).hexdigest()
                files.append({"path": rel, "material": material, "verb": verb, "sha256": digest})
        licences = []
        for rel in self.licence_files:
            text = (self.root / rel).read_bytes()[:20000].decode("utf-8", errors="replace")
            licences.append({"path": rel, "text": text})
        return {
            "path": str(self.root),
            "files": files,
            "ignored_files": len(self.ignored),
            "licence_files": licences,
            "licence": licences[0]["path"] if licences else None,
        }
