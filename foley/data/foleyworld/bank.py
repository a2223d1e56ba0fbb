"""``--sound-bank DIR``: recordings mixed in by material and verb, and ambient beds.

DIR is either a bank built by ``foley sound-bank fetch`` (it has ``manifest.jsonl``: labels,
licences and attribution per file; see ``foley.data.soundbank``) or a folder of the user's own
recordings.  A built bank's labels reach FoleyWorld's verbs through ``BANK_VERBS`` (a footstep
on wood is a tap on wood; an arrow or a pickaxe hitting metal is a knock on metal; running
water is the pour into any container) and its ambient recordings become the beds of
``AMBIENT_SOURCES``.  In a user's folder, a file is used for events of one (material, verb)
when it is named either ``DIR/<material>/<verb>*.<ext>`` or ``DIR/<material>_<verb>*.<ext>``
(case-insensitive, any depth for the second form), with ``<ext>`` one of wav, flac, ogg, oga,
mp3, wv.  Other files are ignored (and counted in ``foleyworld.json``).  Licence files in
``DIR`` (``LICENSE*``, ``LICENCE*``, ``COPYING*``, ``COPYRIGHT*``, ``README*``, ``CREDITS*``)
are recorded with their text, so the dataset says where its sounds came from.

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

# FoleyWorld verb -> the bank verbs whose recordings sound like it
BANK_VERBS: dict[str, tuple[str, ...]] = {
    "knock": ("knock", "hit", "hammer"),
    "tap": ("tap", "step"),
    "drop": ("drop", "land"),
    "scrape": ("scrape",),
    "pour": ("pour",),
    "tear": ("tear",),
    "cut": ("cut", "chop"),
    "type": ("type",),
    "saw": ("saw",),
}
# bank materials heard for any container material (the sound is the liquid's)
ANY_MATERIAL = {"pour": ("water",)}
# FoleyWorld ambient type -> bank ambient types recorded for it
AMBIENT_SOURCES: dict[str, tuple[str, ...]] = {
    "kitchen_hum": ("hum",),
    "traffic": ("traffic",),
    "wind": ("wind",),
    "rain": ("rain",),
    "babble": ("babble",),
    "water": ("water", "waves"),
    "fire": ("fire",),
}

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
    ambients: dict[str, list[str]] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)  # manifest row per file (built bank)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def scan(cls, root: str | os.PathLike, *, shippable_only: bool = False) -> SoundBank:
        """Read a built bank (``manifest.jsonl``) or a folder named by material and verb;
        ``shippable_only`` keeps a built bank's CC0/CC-BY/CC-BY-SA recordings only."""
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"{root}: the sound bank must be a folder")
        if (root / "manifest.jsonl").is_file():
            return cls.from_manifest(root, shippable_only=shippable_only)
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

    @classmethod
    def from_manifest(cls, root: Path, *, shippable_only: bool = False) -> SoundBank:
        from foley.data.soundbank import load_manifest

        entries: dict[tuple[str, str], list[str]] = {}
        ambients: dict[str, list[str]] = {}
        records, ignored = {}, []
        rows = load_manifest(root)
        for row in rows:
            rel = row["file"]
            if shippable_only and not row["shippable"]:
                continue
            keys = []
            if row["kind"] == "ambient":
                for kind, accepted in AMBIENT_SOURCES.items():
                    if row["ambient"] in accepted:
                        ambients.setdefault(kind, []).append(rel)
                        keys.append(kind)
            else:
                for verb, accepted in BANK_VERBS.items():
                    if row["verb"] not in accepted:
                        continue
                    if row["material"] in ANY_MATERIAL.get(verb, ()):
                        materials = vocab.verb_materials(verb)
                    elif row["material"] in vocab.MATERIALS:
                        materials = (row["material"],)
                    else:
                        continue
                    for material in materials:
                        entries.setdefault((material, verb), []).append(rel)
                        keys.append(verb)
            if keys:
                records[rel] = row
            else:
                ignored.append(rel)
        if not entries and not ambients:
            raise InputError(f"{root}: the sound bank has no recording FoleyWorld can use")
        return cls(root, entries, ignored, [], ambients=ambients, records=records)

    def extra_vocabulary(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(verbs, ambient types) beyond the base vocabulary that this bank has recordings of."""
        verbs = tuple(v for v in vocab.EXTRA_VERBS if any(k[1] == v for k in self.entries))
        ambients = tuple(a for a in vocab.EXTRA_AMBIENTS if a in self.ambients)
        return verbs, ambients

    def has(self, material: str, verb: str) -> bool:
        return (material, verb) in self.entries

    def choose(self, material: str, verb: str, rng: np.random.Generator) -> str:
        files = self.entries[(material, verb)]
        return files[int(rng.integers(len(files)))]

    def choose_ambient(self, kind: str, rng: np.random.Generator) -> str | None:
        files = self.ambients.get(kind)
        return files[int(rng.integers(len(files)))] if files else None

    def load_bed(self, rel: str, sample_rate: int) -> np.ndarray:
        """An ambient recording at unit RMS ``(num_samples,)`` float32 (no trimming)."""
        key = f"bed:{rel}"
        if key not in self._cache:
            from foley.io import load_audio

            wave = load_audio(self.root / rel, sample_rate)
            rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
            if rms <= 0:
                raise InputError(f"{rel}: the recording is silent")
            self._cache[key] = (wave / rms).astype(np.float32)
        return self._cache[key]

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

    def describe(self, used: dict[str, int] | None = None) -> dict:
        """What ``foleyworld.json`` records: files (with sha256), counts and licence texts;
        for a built bank, every recording ``used`` (file -> uses) with licence and attribution."""
        if self.records:
            keep = ("package", "source", "licence", "shippable", "attribution", "material",
                    "verb", "ambient")  # fmt: skip
            listed = [
                {"file": rel, "uses": n, **{k: self.records[rel][k] for k in keep}}
                for rel, n in sorted((used or {}).items())
            ]
            licences: dict[str, int] = {}
            for row in listed:
                licences[row["licence"]] = licences.get(row["licence"], 0) + row["uses"]
            return {
                "path": str(self.root),
                "kind": "built",
                "usable_files": len(self.records),
                "ignored_files": len(self.ignored),
                "used": listed,
                "licence": " + ".join(sorted(licences)) or None,
                "uses_by_licence": licences,
            }
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
