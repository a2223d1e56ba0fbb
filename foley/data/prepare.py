"""``foley prepare SRC --out DATA``: a folder of the user's own videos and sounds as an
Ego4D-Sounds-format dataset.

Every video (any container PyAV reads, any length, rate, size and channel count) is decoded
through :mod:`foley.io` at the contract's rate and size with its sound at 16 kHz mono, and cut
into ``cfg.clip_seconds`` clips every ``hop_seconds``. Audio files become *audio-only* entries:
usable for retrieval and codec training, never for video training, so they are listed apart::

    DATA/train.tsv val.tsv test.tsv                  clips with video (Ego4D-Sounds columns)
    DATA/train_audio.tsv val_audio.tsv test_audio.tsv  audio-only clips (same columns)
    DATA/<video_uid>/<video_uid>_NNNN.mp4             a video clip: frames at cfg.fps/frame_size,
                                                      16 kHz mono AAC
    DATA/<video_uid>/<video_uid>_NNNN.flac            an audio-only clip, 16 kHz mono
    DATA/prepare.json                                 settings, and per source file: its clips
                                                      (with their ambient level, dBFS) or why it
                                                      was skipped; what makes a rerun resume

Narration comes from a sidecar (``name.txt``, or ``name.srt`` whose cues overlapping a clip
give its narration) or else from the file name. Splits are by source file (a hash of its path),
so clips of one recording never straddle train and test. SRC is only read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.data.ego4d import SPLITS, ClipDataset, ClipRecord, write_metadata
from foley.errors import InputError
from foley.paths import is_within, resolved

MANIFEST = "prepare.json"
AUDIO_SPLIT_SUFFIX = "_audio"
VIDEO_SUFFIXES = frozenset(
    ".mp4 .mov .mkv .avi .webm .m4v .mpg .mpeg .ts .mts .flv .wmv .3gp .ogv".split()
)
AUDIO_SUFFIXES = frozenset(".wav .flac .ogg .oga .mp3 .m4a .aac .opus .aif .aiff .wma".split())
SIDECAR_SUFFIXES = frozenset({".txt", ".srt"})
SILENCE_DBFS = -60.0  # a file whose peak is below this has no sound to learn from


def audio_split(split: str) -> str:
    """The split name of the audio-only entries of ``split`` (``train`` -> ``train_audio``)."""
    return f"{split}{AUDIO_SPLIT_SUFFIX}"


@dataclass(frozen=True)
class PrepareSettings:
    """What the clips depend on; a rerun must use the same (else: a new ``--out``)."""

    clip_seconds: float = DEFAULT_CONFIG.clip_seconds
    hop_seconds: float = DEFAULT_CONFIG.clip_seconds
    fps: float = DEFAULT_CONFIG.fps
    frame_size: int = DEFAULT_CONFIG.frame_size
    sample_rate: int = DEFAULT_CONFIG.sample_rate
    max_seconds: float = DEFAULT_CONFIG.max_video_seconds  # longer files: the first part only
    min_seconds: float = 0.02  # shorter files are skipped


@dataclass
class PrepareReport:
    """What a run did: files prepared now / reused from an earlier run, skips with reasons."""

    prepared: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # relative path -> one-line reason
    clips: Counter = field(default_factory=Counter)  # tsv name -> clips

    def summary(self) -> str:
        done = len(self.prepared) + len(self.reused)
        parts = [f"{n} {name}" for name, n in sorted(self.clips.items())]
        line = f"{done} files -> {sum(self.clips.values())} clips ({', '.join(parts) or 'none'})"
        line += f"; {len(self.reused)} reused from an earlier run"
        if self.skipped:
            reasons = Counter(r.split(":")[0] for r in self.skipped.values())
            line += f"; skipped {len(self.skipped)}: " + ", ".join(
                f"{n} {why}" for why, n in reasons.most_common()
            )
        return line


# ---- names and narration ---------------------------------------------------------------------


def video_uid(rel: str) -> str:
    """A filesystem-safe ASCII id of a source file, unique by its relative path."""
    stem = Path(rel).stem
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_stem).strip("-").lower()[:40] or "clip"
    return f"{slug}-{hashlib.sha1(rel.encode('utf-8')).hexdigest()[:8]}"


def name_narration(path: Path) -> str:
    """Narration from a file name: ``door_slam-02.wav`` -> ``door slam``."""
    words = re.split(r"[\s_.\-]+", path.stem)
    words = [w for w in words if w and not w.isdigit()]
    return " ".join(words).lower() or "a sound"


_SRT_TIME = r"(\d+):(\d\d):(\d\d)[,.](\d{1,3})"


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """(start s, end s, text) of each cue of a SubRip file."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = block.strip().split("\n")
        for i, line in enumerate(lines):
            m = re.match(rf"\s*{_SRT_TIME}\s*-->\s*{_SRT_TIME}", line)
            if m:
                g = [int(x) for x in m.groups()]
                t0 = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 10 ** len(m.group(4))
                t1 = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 10 ** len(m.group(8))
                words = " ".join(s.strip() for s in lines[i + 1 :] if s.strip())
                words = re.sub(r"<[^>]+>", "", words)
                if words:
                    cues.append((t0, t1, words))
                break
    return cues


def _sidecar(path: Path, suffix: str) -> Path | None:
    for candidate in (path.with_suffix(suffix), path.with_name(path.name + suffix)):
        if candidate.is_file():
            return candidate
    return None


def narrator(path: Path):
    """``narrate(start s, end s) -> str`` for a source file: its ``.srt`` cues overlapping the
    window, else its ``.txt``, else its file name."""
    fallback = name_narration(path)
    txt = _sidecar(path, ".txt")
    if txt is not None:
        fallback = " ".join(txt.read_text(encoding="utf-8", errors="replace").split()) or fallback
    srt = _sidecar(path, ".srt")
    cues = parse_srt(srt.read_text(encoding="utf-8", errors="replace")) if srt else []

    def narrate(start: float, end: float) -> str:
        hits = [words for t0, t1, words in cues if t0 < end and t1 > start]
        return " ".join(hits) if hits else fallback

    return narrate


# ---- one source file -------------------------------------------------------------------------


def clip_windows(duration: float, clip_seconds: float, hop_seconds: float) -> list[float]:
    """Start times (s) of the clips of a recording: whole clips every hop; a recording shorter
    than one clip is one (short) clip."""
    if duration <= clip_seconds + 1e-6:
        return [0.0]
    count = int(np.floor((duration - clip_seconds) / hop_seconds + 1e-6)) + 1
    return [round(i * hop_seconds, 6) for i in range(count)]


def _decode(path: Path, settings: PrepareSettings) -> tuple[np.ndarray | None, np.ndarray, str]:
    """(frames (T, S, S, 3) uint8 or None for an audio file, audio (N,) float32, note)."""
    from foley.io import load_video, probe_video, read_audio

    cfg = settings_config(settings)
    if path.suffix.lower() in AUDIO_SUFFIXES:
        audio = read_audio(path, settings.sample_rate, max_seconds=settings.max_seconds)
        return None, audio.wave, "; ".join(audio.warnings)
    info = probe_video(path)
    if not info.has_audio:
        raise InputError(f"no audio track: {path.name} (a video needs its own sound)")
    video = load_video(path, cfg, with_audio=True, until=settings.max_seconds)
    if video.audio is None or video.audio.size == 0:
        raise InputError(f"no audio track: {path.name} (a video needs its own sound)")
    note = "; ".join(video.warnings)
    if info.duration > settings.max_seconds + 1:
        note = f"used the first {settings.max_seconds:g} s of {info.duration:.0f} s"
    return video.frames, video.audio, note


def settings_config(settings: PrepareSettings) -> AVConfig:
    from dataclasses import replace

    return replace(
        DEFAULT_CONFIG,
        clip_seconds=settings.clip_seconds,
        fps=settings.fps,
        frame_size=settings.frame_size,
        sample_rate=settings.sample_rate,
    )


def prepare_file(path: Path, rel: str, out: Path, settings: PrepareSettings) -> dict:
    """Cut one source file into clips under ``out/<video_uid>/``; returns its manifest entry
    (``kind``, ``video_uid``, ``clips``: ClipRecord rows with ``ambient_db``). Raises
    :class:`InputError` (the skip reason) for a file that cannot be used."""
    from foley.io import save_audio, write_video
    from foley.metrics.audio import ambient_level_db

    frames, wave, note = _decode(path, settings)
    sr = settings.sample_rate
    duration = wave.size / sr  # seconds of sound (the video is cut to match it)
    if duration < settings.min_seconds:
        raise InputError(f"too short: {duration:.3f} s of sound (under {settings.min_seconds} s)")
    peak = float(np.max(np.abs(wave)))
    if peak <= 0 or 20 * np.log10(peak) < SILENCE_DBFS:
        raise InputError(f"silent: peak below {SILENCE_DBFS:g} dBFS")
    uid = video_uid(rel)
    narrate = narrator(path)
    kind = "audio" if frames is None else "video"
    folder = out / uid
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i, start in enumerate(clip_windows(duration, settings.clip_seconds, settings.hop_seconds)):
        s0 = int(round(start * sr))
        piece = wave[s0 : s0 + int(round(settings.clip_seconds * sr))]
        end = start + piece.size / sr
        name = f"{uid}/{uid}_{i:04d}" + (".flac" if kind == "audio" else ".mp4")
        tmp = out / f"{name}.part"
        if kind == "audio":
            save_audio(tmp.with_suffix(".part.flac"), piece, sr)
            os.replace(tmp.with_suffix(".part.flac"), out / name)
        else:
            f0 = int(round(start * settings.fps))
            n = max(1, int(round((end - start) * settings.fps)))
            clip_frames = frames[f0 : f0 + n] if f0 < len(frames) else frames[-1:]
            write_video(tmp.with_suffix(".part.mp4"), clip_frames, settings.fps, piece, sr)
            os.replace(tmp.with_suffix(".part.mp4"), out / name)
        record = ClipRecord(
            video_uid=uid,
            video_dur=round(duration, 3),
            narration_source="prepare" if kind == "video" else "prepare_audio",
            narration_ind=i,
            narration_time=round((start + end) / 2, 3),
            clip_start=round(start, 3),
            clip_end=round(end, 3),
            clip_text=narrate(start, end),
            tag_verb="",
            tag_noun="",
            positive=1.0,
            clip_file=name,
            speech=0.0,
            background_music=0.0,
            traffic_noise=0.0,
            wind_noise=0.0,
        )
        level = float(ambient_level_db(piece, sr))
        clips.append({**asdict(record), "ambient_db": round(level, 2)})
    return {"kind": kind, "video_uid": uid, "clips": clips, "note": note}


# ---- the folder ------------------------------------------------------------------------------


def source_files(src: Path) -> list[Path]:
    """Every non-hidden file under ``src`` but sidecars, in a stable order."""
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            p = Path(root) / name
            if not name.startswith(".") and p.suffix.lower() not in SIDECAR_SUFFIXES:
                files.append(p)
    return files


def _file_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def split_of(rel: str, val_fraction: float, test_fraction: float, seed: int = 0) -> str:
    """train / val / test of a source file, by a hash of its relative path."""
    digest = hashlib.sha1(f"{seed}:{rel}".encode()).hexdigest()
    u = int(digest[:12], 16) / 16**12
    return "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"


def assign_splits(
    entries: dict[str, dict], val_fraction: float, test_fraction: float, seed: int = 0
) -> dict[str, str]:
    """Split of each prepared source (by kind); a kind with two or more sources and no val
    source gets its first train source as val, so early stopping has something to watch."""
    splits = {rel: split_of(rel, val_fraction, test_fraction, seed) for rel in entries}
    if val_fraction > 0:
        for kind in ("video", "audio"):
            mine = sorted(r for r, e in entries.items() if e["kind"] == kind)
            if len(mine) >= 2 and not any(splits[r] == "val" for r in mine):
                train = [r for r in mine if splits[r] == "train"]
                if train:
                    splits[train[0]] = "val"
    return splits


def _load_manifest(out: Path, src: Path, settings: PrepareSettings) -> dict:
    path = out / MANIFEST
    if not path.is_file():
        if out.exists() and any(out.iterdir()):
            raise InputError(
                f"{out}: exists and is not a prepared folder; give a new or empty --out"
            )
        return {"source": str(src), "settings": asdict(settings), "files": {}}
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("settings") != asdict(settings):
        raise InputError(
            f"{out} was prepared with other settings ({manifest.get('settings')}); "
            "use the same options or a new --out"
        )
    return manifest


def _save_manifest(out: Path, manifest: dict) -> None:
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out / MANIFEST)


def prepare_folder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    settings: PrepareSettings = PrepareSettings(),
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    log=print,
) -> PrepareReport:
    """Prepare every file of ``src`` into ``out`` (see the module docstring); resumes a previous
    run into the same ``out``. One line per skipped file goes to ``log``."""
    from tqdm.auto import tqdm

    src_p, out_p = resolved(src), resolved(out)
    if not src_p.is_dir():
        raise InputError(f"{src}: no such folder")
    if is_within(out_p, src_p) or is_within(src_p, out_p):
        raise InputError("--out must lie outside SRC (SRC is never written to), and vice versa")
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 - val_fraction:
        raise InputError("--val-fraction and --test-fraction must be in [0, 1) and sum below 1")
    manifest = _load_manifest(out_p, src_p, settings)
    out_p.mkdir(parents=True, exist_ok=True)
    files = source_files(src_p)
    if not files:
        raise InputError(f"{src}: no files to prepare")
    report = PrepareReport()
    entries: dict[str, dict] = manifest["files"]
    bar = tqdm(files, desc="preparing", unit="file", disable=not progress)
    for path in bar:
        rel = path.relative_to(src_p).as_posix()
        key = _file_key(path)
        old = entries.get(rel)
        if old and old.get("key") == key and _complete(out_p, old):
            if "clips" in old:
                report.reused.append(rel)
            else:
                report.skipped[rel] = old["skipped"]
                log(f"skipped {rel}: {old['skipped']}")
            continue
        suffix = path.suffix.lower()
        try:
            if suffix not in VIDEO_SUFFIXES | AUDIO_SUFFIXES:
                raise InputError(f"not a media file: {suffix or 'no suffix'}")
            entry = prepare_file(path, rel, out_p, settings)
            report.prepared.append(rel)
            if entry["note"]:
                log(f"note {rel}: {entry['note']}")
        except (InputError, OSError, ValueError, RuntimeError) as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            if not isinstance(err, InputError):
                reason = f"unreadable: {reason}"
            entry = {"skipped": reason}
            report.skipped[rel] = reason
            log(f"skipped {rel}: {reason}")
        entries[rel] = {"key": key, **entry}
        _save_manifest(out_p, manifest)
    bar.close()
    for rel in list(entries):  # files gone from SRC since the last run leave the tables
        if not (src_p / rel).is_file():
            del entries[rel]
    _write_tables(out_p, entries, val_fraction, test_fraction, seed, report)
    _save_manifest(out_p, manifest)
    return report


def _complete(out: Path, entry: dict) -> bool:
    return all((out / c["clip_file"]).is_file() for c in entry.get("clips", []))


def _write_tables(out, entries, val_fraction, test_fraction, seed, report) -> None:
    prepared = {rel: e for rel, e in entries.items() if "clips" in e}
    splits = assign_splits(prepared, val_fraction, test_fraction, seed)
    tables: dict[str, list[ClipRecord]] = {}
    for split in SPLITS:
        tables[split], tables[audio_split(split)] = [], []
    for rel in sorted(prepared):
        entry = prepared[rel]
        name = splits[rel] if entry["kind"] == "video" else audio_split(splits[rel])
        entry["split"] = splits[rel]
        for clip in entry["clips"]:
            row = {k: clip[k] for k in ClipRecord.__dataclass_fields__}
            tables[name].append(ClipRecord(**row))
    for name, records in tables.items():
        write_metadata(out / f"{name}.tsv", records)
        if records:
            report.clips[name] = len(records)


class AudioClipDataset(ClipDataset):
    """The audio-only entries of a prepared folder (``split`` e.g. ``train_audio``): items are
    ``audio`` (N,) float32 fitted to ``cfg.samples_per_clip``, ``text`` and ``meta``; no frames."""

    def __getitem__(self, index: int) -> dict:
        """``meta["warnings"]``: what decoding recovered from a damaged file (one line each)."""
        import torch

        from foley.data.ego4d import _fit_audio
        from foley.io import read_audio

        record = self.records[index]
        audio = read_audio(record.clip_path(self.root), self.cfg.sample_rate)
        wave = _fit_audio(audio.wave, self.cfg.samples_per_clip).astype(np.float32)
        meta = {**self.meta(index), "warnings": audio.warnings}
        return {"audio": torch.from_numpy(wave), "text": record.clip_text, "meta": meta}

    @staticmethod
    def collate(items: list[dict]) -> tuple:
        """(audio (batch, N), [meta])."""
        import torch

        return torch.stack([it["audio"] for it in items]), [it["meta"] for it in items]
