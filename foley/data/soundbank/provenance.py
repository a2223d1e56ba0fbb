"""Which bank recordings each FoleyWorld clip is made of, and what may ship.

A clip's action events name their recording in the ground truth (``events_json``: ``source`` is
``bank:<file>`` or ``synth``).  Its ambient bed is one recording per long video, chosen from the
bank's recordings of the video's ambient type; the ground truth does not name it, so where the
dataset used several beds of that type it is identified from the audio: the clip's ambient
track is that bed read from the clip's start time (``foley.data.foleyworld.tracks``), so the
right candidate correlates at 1.0 and the others near 0.  A clip whose bed cannot be identified
(the bank is gone) is *unknown*, never assumed shippable.

The packed clips' record, ``retriever/clip_recordings.json``, lets ``ship`` and
``check_install`` verify a pipeline folder without the dataset: every recording in it, with its
licence and attribution, and the recordings of each clip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from foley.data.soundbank.packages import SHIPPABLE_LICENCES
from foley.errors import InputError

ATTRIBUTION_NAME = "ATTRIBUTION.md"  # in the pipeline folder (shipped as assets/default/...)
RECORD_NAME = "clip_recordings.json"  # in the retriever folder, beside clips/
MATCH = 0.99  # cosine similarity of a clip's ambient track with its bed (1.0 up to rounding)


def foleyworld_meta(data: str | os.PathLike) -> dict | None:
    """``foleyworld.json`` of a dataset folder, or None if it is not FoleyWorld."""
    path = Path(data) / "foleyworld.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def used_recordings(meta: dict) -> dict[str, dict]:
    """The bank recordings a FoleyWorld dataset used, by bank file: package, source, licence,
    ``shippable``, attribution (``foleyworld.json``).  A folder of the user's own recordings
    has no licence record: its files are listed as not shippable."""
    bank = meta.get("sound_bank") or {}
    if bank.get("kind") == "built":
        return {row["file"]: row for row in bank["used"]}
    return {
        f["path"]: {"file": f["path"], "package": "user", "source": f["path"],
                    "licence": "unknown", "shippable": False, "ambient": None,
                    "attribution": f'"{f["path"]}" from a sound bank with no licence record'}
        for f in bank.get("files", [])
    }  # fmt: skip


def is_shippable(row: dict) -> bool:
    return bool(row.get("shippable")) and row.get("licence") in SHIPPABLE_LICENCES


class _Beds:
    """The ambient recordings a dataset used, by FoleyWorld ambient type, and their audio."""

    def __init__(self, rows: dict[str, dict], bank: Path | None, sample_rate: int) -> None:
        from foley.data.foleyworld.bank import AMBIENT_SOURCES

        self.by_type = {
            kind: sorted(f for f, r in rows.items() if r.get("ambient") in accepted)
            for kind, accepted in AMBIENT_SOURCES.items()
        }
        self.bank, self.sample_rate = bank, sample_rate
        self._audio: dict[str, np.ndarray] = {}

    def identify(self, kind: str, ambient: np.ndarray, start: int) -> list[str] | None:
        """[the bed] of a clip whose ambient track ``(N,)`` starts at sample ``start`` of it;
        [] for a procedural bed; None when it cannot be told."""
        candidates = self.by_type.get(kind, [])
        if len(candidates) <= 1:
            return candidates
        if self.bank is None or not self.bank.is_dir():
            return None
        norm = float(np.linalg.norm(ambient))
        if norm == 0:
            return None
        scores = []
        for rel in candidates:
            if rel not in self._audio:
                from foley.io import load_audio

                self._audio[rel] = load_audio(self.bank / rel, self.sample_rate)
            seg = np.take(self._audio[rel], np.arange(start, start + ambient.shape[0]), mode="wrap")
            scores.append(float(seg @ ambient) / (float(np.linalg.norm(seg)) * norm + 1e-12))
        best = int(np.argmax(scores))
        return [candidates[best]] if scores[best] >= MATCH else None


def clip_recordings(
    data: str | os.PathLike, records: list, bank: str | os.PathLike | None = None
) -> tuple[list[list[str] | None], dict[str, dict]]:
    """(per clip of ``records`` (ClipRecords of ``data``), the bank files it is made of, or
    None where that is unknown; the dataset's used recordings by file).

    Not FoleyWorld: every clip unknown.  ``bank``: the sound bank's folder (default: the one
    ``foleyworld.json`` names), needed only to tell apart several beds of one ambient type."""
    meta = foleyworld_meta(data)
    if meta is None:
        return [None] * len(records), {}
    rows = used_recordings(meta)
    if not rows:  # procedural only
        return [[] for _ in records], {}
    cfg = meta.get("config", {})
    sample_rate, clip_seconds = int(cfg.get("sample_rate", 16000)), cfg.get("clip_seconds", 3.0)
    bank_dir = Path(bank) if bank else Path((meta.get("sound_bank") or {}).get("path", ""))
    beds = _Beds(rows, bank_dir if str(bank_dir) not in ("", ".") else None, sample_rate)
    out: list[list[str] | None] = []
    for record in records:
        gt_path = record.gt_path(data)
        if not gt_path.is_file():
            out.append(None)
            continue
        with np.load(gt_path, allow_pickle=False) as gt:
            events = json.loads(str(gt["events_json"]))
            start = int(round((record.narration_time - clip_seconds / 2) * sample_rate))
            bed = beds.identify(str(gt["ambient_type"]), gt["ambient"].astype(np.float64), start)
        if bed is None:
            out.append(None)
            continue
        files = {e["source"].removeprefix("bank:") for e in events if e["source"] != "synth"}
        out.append(sorted(files | set(bed)))
    return out, rows


def write_record(folder: Path, data: Path, clips: dict[str, list[str] | None], rows: dict) -> Path:
    """``folder/clip_recordings.json``: the packed clips' recordings (None: unknown)."""
    used = sorted({f for files in clips.values() for f in files or ()})
    record = {
        "data": str(data),
        "clips": clips,
        "recordings": {f: rows[f] for f in used},
    }
    path = folder / RECORD_NAME
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def check_shippable(pipeline: str | os.PathLike) -> str:
    """Refuse (InputError) a pipeline folder whose packed clips hold a recording that may not
    ship, or whose origin is not recorded, or whose recordings lack ``ATTRIBUTION.md``;
    returns a one-line summary."""
    pipeline = Path(pipeline)
    folder = pipeline / "retriever"
    clips = folder / "clips"
    if not clips.is_dir() or not any(clips.iterdir()):
        return "no packed clips"
    if not (folder / RECORD_NAME).is_file():
        raise InputError(
            f"{folder}: no {RECORD_NAME} says which recordings its clips hold: rebuild it with "
            "`foley train all` (pack_index) before shipping"
        )
    record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    unknown = [c for c, files in record["clips"].items() if files is None]
    if unknown:
        raise InputError(
            f"{folder}: {len(unknown)} clips of unknown origin (not FoleyWorld data) may not "
            "ship: pass --index-data DIR (foley make-dataset --shippable-only)"
        )
    bad = sorted({r["licence"] for r in record["recordings"].values() if not is_shippable(r)})
    if bad:
        raise InputError(
            f"{folder}: its clips hold {', '.join(bad)} recordings, which may not ship "
            "(training only): pass --index-data DIR (foley make-dataset --shippable-only)"
        )
    return check_attribution(pipeline)


def check_attribution(pipeline: str | os.PathLike) -> str:
    """A pipeline folder whose packed clips hold bank recordings must credit each of them in
    ``ATTRIBUTION.md`` (InputError otherwise); cheap (two small files read)."""
    pipeline = Path(pipeline)
    path = pipeline / "retriever" / RECORD_NAME
    if not path.is_file():
        return "no record of bank recordings in its clips"
    rows = json.loads(path.read_text(encoding="utf-8"))["recordings"]
    if not rows:
        return "its clips hold no bank recording"
    attribution = pipeline / ATTRIBUTION_NAME
    if not attribution.is_file():
        raise InputError(
            f"{pipeline}: its clips hold {len(rows)} recordings: no {ATTRIBUTION_NAME}"
        )
    text = attribution.read_text(encoding="utf-8")
    missing = [f for f, r in rows.items() if r["attribution"] not in text]
    if missing:
        raise InputError(f"{attribution}: does not credit {len(missing)} recordings ({missing[0]})")
    return f"{len(rows)} recordings credited in {ATTRIBUTION_NAME}"


def licence_section(
    data: str | os.PathLike, pipeline: str | os.PathLike, bank: str | os.PathLike | None = None
) -> list[str]:
    """The model card's "Training data and licences" section (markdown lines): per licence,
    the recordings the training data used and their minutes (durations from the bank's
    manifest, when the bank is here), and what the shipped clips hold."""
    meta = foleyworld_meta(data)
    lines = ["## Training data and licences", ""]
    if meta is None:
        return lines + [f"Training data: {data} (not FoleyWorld: no record of its recordings).", ""]
    rows = used_recordings(meta)
    bank_dir = Path(bank) if bank else Path((meta.get("sound_bank") or {}).get("path", ""))
    seconds: dict[str, float] = {}
    if rows and (bank_dir / "manifest.jsonl").is_file():
        from foley.data.soundbank.build import load_manifest

        seconds = {r["file"]: float(r["duration"]) for r in load_manifest(bank_dir)}
    if not rows:
        lines.append("The training data (FoleyWorld) is procedural: no recorded sound.")
    else:
        lines += ["FoleyWorld clips made from these sound-bank recordings (minutes: the "
                  "recordings' own length; uses: events and beds placed in clips):", "",
                  "| licence | recordings | minutes | uses | use |",
                  "| --- | ---: | ---: | ---: | --- |"]  # fmt: skip
        for licence in sorted({r["licence"] for r in rows.values()}):
            mine = [f for f, r in rows.items() if r["licence"] == licence]
            known = [seconds[f] for f in mine if f in seconds]
            minutes = f"{sum(known) / 60:.1f}" if len(known) == len(mine) else "?"
            uses = sum(int(rows[f].get("uses", 0)) for f in mine)
            use = ("training and shipped clips" if licence in SHIPPABLE_LICENCES
                   else "training only, never shipped")  # fmt: skip
            lines.append(f"| {licence} | {len(mine)} | {minutes} | {uses} | {use} |")
        if any(not is_shippable(r) for r in rows.values()):
            others = sorted({r["licence"] for r in rows.values() if not is_shippable(r)})
            lines += ["", f"Recordings under {', '.join(others)} (not CC0/CC-BY/CC-BY-SA) were "
                      "used for training data only: no shipped clip contains them."]  # fmt: skip
    record_path = Path(pipeline) / "retriever" / RECORD_NAME
    if record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        clips, recs = record["clips"], record["recordings"]
        made = sum(1 for files in clips.values() if files)
        licences = sorted({r["licence"] for r in recs.values()}) or ["none"]
        lines += ["", f"Shipped conditioning clips (retriever/clips, from {record['data']}): "
                  f"{len(clips)}, {made} of them with recorded sound from {len(recs)} "
                  f"recordings under {', '.join(licences)}, the rest procedural."]  # fmt: skip
        if recs:
            lines.append(f"Each recording is credited in {ATTRIBUTION_NAME}, with the "
                         "share-alike terms: audio adapted from CC-BY-SA recordings is shared "
                         "under CC-BY-SA 3.0.")  # fmt: skip
    return lines + [""]
