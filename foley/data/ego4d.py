"""Ego4D-Sounds data layer: the TSV schema, per-clip ground truth and a torch ``Dataset``.

The metadata is tab-separated with the 16 columns of :data:`EGO4D_COLUMNS` (the released
``train_clips_1.2m.csv`` / ``test_clips_11k.csv`` are tab-separated despite their suffix).
A clip lives at ``<root>/<clip_file>`` when ``clip_file`` already names its ``<video_uid>/``
folder (as in the released files and in FoleyWorld), else at ``<root>/<video_uid>/<clip_file>``;
:meth:`ClipRecord.clip_path` resolves both.  FoleyWorld adds ``<video_uid>/<clip_stem>.gt.npz``
(:func:`save_ground_truth` / :func:`load_ground_truth`).

:class:`ClipDataset` yields frames ``(T, 3, S, S)`` float in [0, 1], audio ``(N,)`` at 16 kHz,
the narration and the metadata; with ``neighbours=True`` also a *neighbour*: another clip of the
same ``video_uid`` at another time, the AV-LDM training condition (same ambience, other action).
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
import zipfile
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.errors import InputError

EGO4D_COLUMNS: tuple[str, ...] = (
    "video_uid",
    "video_dur",
    "narration_source",
    "narration_ind",
    "narration_time",
    "clip_start",
    "clip_end",
    "clip_text",
    "tag_verb",
    "tag_noun",
    "positive",
    "clip_file",
    "speech",
    "background_music",
    "traffic_noise",
    "wind_noise",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")
GT_SUFFIX = ".gt.npz"


@dataclass
class ClipRecord:
    """One row of an Ego4D-Sounds metadata file (times in seconds of the long video).

    ``tag_verb`` / ``tag_noun`` are kept as written (index lists such as ``"[93]"`` in the
    released files, plain words in FoleyWorld).  ``speech`` ... ``wind_noise`` are the audio
    tagger's scores in [0, 1]; ``positive`` is 1.0 for clips whose action makes a sound.
    """

    video_uid: str
    video_dur: float
    narration_source: str
    narration_ind: int
    narration_time: float
    clip_start: float
    clip_end: float
    clip_text: str
    tag_verb: str
    tag_noun: str
    positive: float
    clip_file: str
    speech: float
    background_music: float
    traffic_noise: float
    wind_noise: float

    @property
    def clip_id(self) -> str:
        return f"{self.video_uid}_{self.narration_source}_{self.narration_ind}"

    @property
    def clip_stem(self) -> str:
        return Path(self.clip_file).stem

    def clip_path(self, root: str | os.PathLike) -> Path:
        """``<root>/<clip_file>`` if ``clip_file`` names its folder, else under ``<video_uid>/``."""
        rel = Path(self.clip_file)
        if len(rel.parts) > 1:
            return Path(root) / rel
        return Path(root) / self.video_uid / rel

    def gt_path(self, root: str | os.PathLike) -> Path:
        """FoleyWorld ground truth: ``<root>/<video_uid>/<clip_stem>.gt.npz``."""
        return Path(root) / self.video_uid / f"{self.clip_stem}{GT_SUFFIX}"

    def to_row(self) -> dict[str, str]:
        row = {}
        for f in fields(self):
            value = getattr(self, f.name)
            row[f.name] = repr(float(value)) if isinstance(value, float) else str(value)
        return row

    @classmethod
    def from_row(cls, row: dict[str, str], where: str = "") -> ClipRecord:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = row.get(f.name)
            if raw is None:
                raise InputError(f"{where}: missing value for column {f.name!r}")
            try:
                if f.type == "float":
                    values[f.name] = float(raw)
                elif f.type == "int":
                    values[f.name] = int(float(raw))
                else:
                    values[f.name] = raw
            except ValueError:
                raise InputError(f"{where}: column {f.name!r} is not a number: {raw!r}") from None
        return cls(**values)


def read_metadata(path: str | os.PathLike) -> list[ClipRecord]:
    """Read an Ego4D-Sounds metadata file (tab-separated, header row); extra columns are ignored."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such metadata file")
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        header = reader.fieldnames or []
        missing = [c for c in EGO4D_COLUMNS if c not in header]
        if missing:
            raise InputError(
                f"{p.name}: not an Ego4D-Sounds metadata file, missing columns {', '.join(missing)}"
            )
        return [
            ClipRecord.from_row(row, where=f"{p.name} line {i + 2}") for i, row in enumerate(reader)
        ]


def write_metadata(path: str | os.PathLike, records: list[ClipRecord]) -> Path:
    """Write records as a tab-separated Ego4D-Sounds file (atomically: temp file, rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=EGO4D_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow(record.to_row())
    os.replace(tmp, p)
    return p


def split_path(root: str | os.PathLike, split: str) -> Path:
    """``<root>/<split>.tsv`` for a split name (train, val, test, test_shifted...)."""
    return Path(root) / f"{split}.tsv"


# ---- ground truth (FoleyWorld) ---------------------------------------------------------------


def save_ground_truth(
    path: str | os.PathLike,
    *,
    action: np.ndarray,
    ambient: np.ndarray,
    masks: np.ndarray,
    events: list[dict],
    ambient_type: str,
    ambient_db: float,
    offscreen: np.ndarray | None = None,
    speech: np.ndarray | None = None,
    spoken_masks: np.ndarray | None = None,
    speech_span: tuple[float, float] | None = None,
) -> Path:
    """Write a ``.gt.npz`` whose bytes depend only on the arrays (no zip timestamps).

    ``action``/``ambient``: ``(N,)`` float32 with mixture = action + ambient; ``masks``:
    ``(T, S, S)`` bool; ``events``: list of ``{onset, offset, verb, material, visible, ...}``;
    ``offscreen``: ``(N,)`` float32, the off-screen events' part of ``action`` (on screen =
    action - offscreen; off screen = offscreen + ambient).
    """
    arrays = {
        "action": np.asarray(action, np.float32),
        "ambient": np.asarray(ambient, np.float32),
        "masks": np.asarray(masks, bool),
        "events_json": np.array(json.dumps(events, sort_keys=True)),
        "ambient_type": np.array(str(ambient_type)),
        "ambient_db": np.array(float(ambient_db), np.float64),
    }
    if offscreen is not None:
        arrays["offscreen"] = np.asarray(offscreen, np.float32)
    if speech is not None:  # make-dataset --speech: the spoken narration and the named object
        arrays["speech"] = np.asarray(speech, np.float32)
        arrays["spoken_masks"] = np.asarray(spoken_masks, bool)
        arrays["speech_span"] = np.asarray(speech_span, np.float64)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            buf = _io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=1)
    return p


def load_ground_truth(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``.gt.npz``: arrays as numpy, ``events`` parsed to a list of dicts."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no ground-truth file (only FoleyWorld clips have one)")
    with np.load(p, allow_pickle=False) as data:
        spoken = {k: data[k] for k in ("speech", "spoken_masks", "speech_span") if k in data}
        return spoken | {
            "action": data["action"],
            "ambient": data["ambient"],
            "masks": data["masks"],
            "events": json.loads(str(data["events_json"])),
            "ambient_type": str(data["ambient_type"]),
            "ambient_db": float(data["ambient_db"]),
            # older datasets lack it: None (then off-screen events are only in events_json)
            "offscreen": data["offscreen"] if "offscreen" in data.files else None,
        }


# ---- dataset ---------------------------------------------------------------------------------


def _fit_frames(frames: np.ndarray, num_frames: int) -> np.ndarray:
    if frames.shape[0] >= num_frames:
        return frames[:num_frames]
    pad = np.repeat(frames[-1:], num_frames - frames.shape[0], axis=0)
    return np.concatenate([frames, pad])


def _fit_audio(wave: np.ndarray, num_samples: int) -> np.ndarray:
    if wave.shape[0] >= num_samples:
        return wave[:num_samples]
    return np.pad(wave, (0, num_samples - wave.shape[0]))


class ClipDataset(Dataset):
    """Clips of one split of an Ego4D-Sounds (or FoleyWorld) folder.

    Args:
        root: the data folder (clips under ``<root>/<video_uid>/``).
        split: a split name (reads ``<root>/<split>.tsv``) or a path to a metadata file.
        cfg: timing/shape contract; every clip is fitted to ``cfg.frames_per_clip`` frames and
            ``cfg.samples_per_clip`` samples (crop or pad).
        neighbours: also return a neighbour clip of the same ``video_uid`` (see
            :meth:`neighbour_index`); ``has_neighbour`` is False (and the neighbour zeros)
            for a video with a single clip.
        neighbour_frames: also decode the neighbour's frames (audio only otherwise).
        ground_truth: also return the FoleyWorld ``.gt.npz`` (InputError if missing).
        seed: seed of neighbour sampling; with :meth:`set_epoch`, item ``i`` of epoch ``e``
            always draws the same neighbour.

    An item is a dict: ``frames`` (T, 3, S, S) float32, ``audio`` (N,) float32, ``text`` str,
    ``meta`` dict of the record's columns plus ``clip_id`` and ``index``; optionally ``gt``
    (``action``/``ambient`` (N,), ``masks`` (T, S, S) bool, ``events_json`` str, ``ambient_type``,
    ``ambient_db``) and ``neighbour`` (``audio``, ``frames`` if asked, ``meta``, ``index``).
    Items collate with torch's default collate function.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | os.PathLike = "train",
        cfg: AVConfig = DEFAULT_CONFIG,
        *,
        neighbours: bool = False,
        neighbour_frames: bool = False,
        ground_truth: bool = False,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        split_str = str(split)
        is_name = split_str in SPLITS or not (
            split_str.endswith((".tsv", ".csv")) or os.sep in split_str
        )
        self.metadata_path = split_path(self.root, split_str) if is_name else Path(split)
        self.records = read_metadata(self.metadata_path)
        self.cfg = cfg
        self.neighbours = neighbours
        self.neighbour_frames = neighbour_frames
        self.ground_truth = ground_truth
        self.seed = seed
        self.epoch = 0
        by_video: dict[str, list[int]] = defaultdict(list)
        for i, record in enumerate(self.records):
            by_video[record.video_uid].append(i)
        self._by_video = dict(by_video)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Change the neighbour draw (call once per epoch for fresh conditions)."""
        self.epoch = int(epoch)

    def clips_of(self, video_uid: str) -> list[int]:
        """Indices of the clips of one long video."""
        return list(self._by_video.get(video_uid, []))

    def neighbour_candidates(self, index: int) -> list[int]:
        """Other clips of the same video, those not overlapping ``index`` in time if any."""
        record = self.records[index]
        others = [j for j in self._by_video[record.video_uid] if j != index]
        apart = [
            j
            for j in others
            if abs(self.records[j].narration_time - record.narration_time) >= self.cfg.clip_seconds
        ]
        return apart or others

    def neighbour_index(self, index: int, rng: np.random.Generator | None = None) -> int | None:
        """A random other clip of the same ``video_uid`` at another time, or None if none."""
        candidates = self.neighbour_candidates(index)
        if not candidates:
            return None
        if rng is None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
        return int(candidates[int(rng.integers(len(candidates)))])

    def load_clip(
        self, index: int, *, with_frames: bool = True
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """Decode one clip: frames ``(T, S, S, 3)`` uint8 (or None) and audio ``(N,)`` float32."""
        from foley.io import load_audio, load_video

        path = self.records[index].clip_path(self.root)
        if with_frames:
            video = load_video(path, self.cfg, with_audio=True)
            if video.audio is None:
                raise InputError(f"{path.name}: the clip has no audio track")
            frames = _fit_frames(video.frames, self.cfg.frames_per_clip)
            wave = video.audio
        else:
            frames = None
            wave = load_audio(path, self.cfg.sample_rate)
        return frames, _fit_audio(wave, self.cfg.samples_per_clip).astype(np.float32)

    def meta(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        return {**asdict(record), "clip_id": record.clip_id, "index": index}

    def __getitem__(self, index: int) -> dict[str, Any]:
        from foley.io import frames_to_tensor

        record = self.records[index]
        frames, wave = self.load_clip(index)
        item: dict[str, Any] = {
            "frames": frames_to_tensor(frames),
            "audio": torch.from_numpy(wave),
            "text": record.clip_text,
            "meta": self.meta(index),
        }
        if self.ground_truth:
            gt = load_ground_truth(record.gt_path(self.root))
            item["gt"] = {
                "action": torch.from_numpy(_fit_audio(gt["action"], self.cfg.samples_per_clip)),
                "ambient": torch.from_numpy(_fit_audio(gt["ambient"], self.cfg.samples_per_clip)),
                "masks": torch.from_numpy(_fit_frames(gt["masks"], self.cfg.frames_per_clip)),
                "events_json": json.dumps(gt["events"]),
                "ambient_type": gt["ambient_type"],
                "ambient_db": gt["ambient_db"],
            }
        if self.neighbours:
            item.update(self._neighbour_item(index))
        return item

    def _neighbour_item(self, index: int) -> dict[str, Any]:
        j = self.neighbour_index(index)
        cfg = self.cfg
        if j is None:
            neighbour = {
                "audio": torch.zeros(cfg.samples_per_clip),
                "meta": self.meta(index),
                "index": -1,
            }
            if self.neighbour_frames:
                size = cfg.frame_size
                neighbour["frames"] = torch.zeros(cfg.frames_per_clip, 3, size, size)
            return {"neighbour": neighbour, "has_neighbour": False}
        from foley.io import frames_to_tensor

        frames, wave = self.load_clip(j, with_frames=self.neighbour_frames)
        neighbour = {"audio": torch.from_numpy(wave), "meta": self.meta(j), "index": j}
        if frames is not None:
            neighbour["frames"] = frames_to_tensor(frames)
        return {"neighbour": neighbour, "has_neighbour": True}
