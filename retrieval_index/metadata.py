"""Clip metadata in SQLite: one row per vector, ``label`` = the vector's FAISS label (0..n-1).

Required keys of a metadata dict: ``clip_path`` (str), ``video_uid`` (str), ``narration`` (str),
``ambient_db`` (float, dBFS; -inf allowed for digital silence, NaN refused), ``split`` (str).
Any other keys are kept as JSON in the ``extra`` column and come back merged into the dict.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError, IndexInputError

REQUIRED_KEYS = ("clip_path", "video_uid", "narration", "ambient_db", "split")
FILTER_KEYS = (
    "split", "video_uid", "exclude_video_uid", "ambient_db_max", "ambient_db_min", "has"
)  # fmt: skip
_EXTRA_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_COLUMNS = "label, id, clip_path, video_uid, narration, ambient_db, split, extra"
_SCHEMA = """
CREATE TABLE clips (
    label INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    clip_path TEXT NOT NULL,
    video_uid TEXT NOT NULL,
    narration TEXT NOT NULL,
    ambient_db REAL NOT NULL,
    split TEXT NOT NULL,
    extra TEXT NOT NULL
);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS clips_split_ambient ON clips (split, ambient_db);
CREATE INDEX IF NOT EXISTS clips_ambient ON clips (ambient_db);
CREATE INDEX IF NOT EXISTS clips_video ON clips (video_uid);
"""


def validate_rows(ids: Sequence[str], metadata: Sequence[dict], start_label: int) -> list[tuple]:
    """Check ids and metadata dicts; return rows ready for :meth:`MetadataWriter.insert`."""
    if len(ids) != len(metadata):
        raise IndexInputError(f"got {len(ids)} ids but {len(metadata)} metadata dicts")
    if len(set(ids)) != len(ids):
        raise IndexInputError("ids passed to add() repeat within the batch; ids must be unique")
    rows = []
    for i, (clip_id, meta) in enumerate(zip(ids, metadata)):
        if not isinstance(clip_id, str) or not clip_id:
            raise IndexInputError(f"id #{i} is {clip_id!r}; ids must be non-empty strings")
        if not isinstance(meta, dict):
            raise IndexInputError(f"metadata for {clip_id!r} is {type(meta).__name__}, not a dict")
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise IndexInputError(
                f"metadata for {clip_id!r} lacks {', '.join(missing)} "
                f"(required: {', '.join(REQUIRED_KEYS)})"
            )
        try:
            ambient = float(meta["ambient_db"])
        except (TypeError, ValueError):
            ambient = math.nan
        if math.isnan(ambient) or ambient == math.inf:
            raise IndexInputError(
                f"metadata for {clip_id!r}: ambient_db={meta['ambient_db']!r} is not a level in "
                "dBFS (a float, -inf for silence)"
            )
        extra = {k: v for k, v in meta.items() if k not in REQUIRED_KEYS and k != "id"}
        try:
            extra_json = json.dumps(extra, sort_keys=True) if extra else "{}"
        except TypeError as err:
            raise IndexInputError(
                f"metadata for {clip_id!r} has a value JSON cannot store: {err}"
            ) from None
        rows.append(
            (
                start_label + i,
                clip_id,
                str(meta["clip_path"]),
                str(meta["video_uid"]),
                str(meta["narration"]),
                ambient,
                str(meta["split"]),
                extra_json,
            )
        )
    return rows


class MetadataWriter:
    """Writes ``meta.sqlite`` of a version being built."""

    def __init__(self, path: Path) -> None:
        fresh = not path.exists()
        self.conn = sqlite3.connect(path)
        # The file is new or a copy inside a .partial directory: a crash just discards it,
        # so the rollback journal only needs to live in memory (it still allows ROLLBACK).
        self.conn.execute("PRAGMA journal_mode=MEMORY")
        self.conn.execute("PRAGMA synchronous=OFF")
        if fresh:
            self.conn.executescript(_SCHEMA)
        self.count = self.conn.execute("SELECT COUNT(*) FROM clips").fetchone()[0]

    def existing(self, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` already stored."""
        found = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            found += [
                r[0]
                for r in self.conn.execute(f"SELECT id FROM clips WHERE id IN ({marks})", chunk)
            ]
        return found

    def insert(self, rows: list[tuple]) -> None:
        """Insert validated rows in one transaction; refuses ids already stored (nothing kept)."""
        try:
            with self.conn:  # BEGIN ... COMMIT, or ROLLBACK on an error
                self.conn.executemany(
                    f"INSERT INTO clips ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", rows
                )
        except sqlite3.IntegrityError:
            dup = self.existing([r[1] for r in rows])
            raise IndexInputError(
                f"ids already in the index: {', '.join(dup[:5])}{' ...' if len(dup) > 5 else ''}"
            ) from None
        self.count += len(rows)

    def close(self) -> None:
        self.conn.executescript(_INDEXES)
        self.conn.commit()
        self.conn.close()


def _row_to_dict(row: tuple) -> dict[str, Any]:
    _, clip_id, clip_path, video_uid, narration, ambient, split, extra = row
    meta = json.loads(extra) if extra != "{}" else {}
    meta.update(
        id=clip_id,
        clip_path=clip_path,
        video_uid=video_uid,
        narration=narration,
        ambient_db=float(ambient),
        split=split,
    )
    return meta


def _as_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise IndexInputError(f"filter {key}={value!r} must be a string or a list of strings")


def where_sql(where: dict[str, Any]) -> tuple[str, list[Any]]:
    """SQL condition and parameters for a filter dict (keys in :data:`FILTER_KEYS`)."""
    unknown = sorted(set(where) - set(FILTER_KEYS))
    if unknown:
        raise IndexInputError(
            f"unknown filter key(s) {', '.join(unknown)}; known: {', '.join(FILTER_KEYS)}"
        )
    parts, params = [], []
    for key in ("split", "video_uid"):
        if key in where:
            values = _as_list(where[key], key)
            parts.append(f"{key} IN ({','.join('?' * len(values))})")
            params += values
    if "exclude_video_uid" in where:
        values = _as_list(where["exclude_video_uid"], "exclude_video_uid")
        parts.append(f"video_uid NOT IN ({','.join('?' * len(values))})")
        params += values
    for key, op in (("ambient_db_max", "<="), ("ambient_db_min", ">=")):
        if key in where:
            try:
                level = float(where[key])
            except (TypeError, ValueError):
                raise IndexInputError(f"filter {key}={where[key]!r} must be a number") from None
            parts.append(f"ambient_db {op} ?")
            params.append(level)
    if "has" in where:  # extra metadata keys that must be present and not null
        for key in _as_list(where["has"], "has"):
            if not _EXTRA_KEY.fullmatch(key):
                raise IndexInputError(f"filter has={key!r}: not a metadata key name")
            parts.append("json_extract(extra, ?) IS NOT NULL")
            params.append(f"$.{key}")
    return (" AND ".join(parts) or "1"), params


class MetadataReader:
    """Read-only, thread-safe access to a committed ``meta.sqlite``.

    One connection opened with ``immutable=1`` (a committed version never changes); its open file
    descriptor keeps the data readable even after the version directory is garbage-collected.
    Queries are serialised with a lock: they fetch k rows or one label list, so this is cheap.
    """

    def __init__(self, path: Path, expected_count: int) -> None:
        uri = f"file:{path.as_posix()}?mode=ro&immutable=1"
        self._lock = threading.Lock()
        try:
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            count = self.conn.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise IndexCorruptError(f"{path} is corrupt ({err}); rebuild the index") from None
        if count != expected_count:
            raise IndexCorruptError(
                f"{path} holds {count} clips, the manifest says {expected_count}; rebuild the index"
            )

    def rows(self, labels: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Metadata dicts (with ``id``) keyed by label."""
        out: dict[int, dict[str, Any]] = {}
        labels = [int(x) for x in labels]
        with self._lock:
            for start in range(0, len(labels), 500):
                chunk = labels[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {_COLUMNS} FROM clips WHERE label IN ({marks})"
                for row in self.conn.execute(sql, chunk):
                    out[row[0]] = _row_to_dict(row)
        return out

    def label_of(self, clip_id: str) -> int | None:
        with self._lock:
            row = self.conn.execute("SELECT label FROM clips WHERE id = ?", (clip_id,)).fetchone()
        return None if row is None else int(row[0])

    def labels_where(self, where: dict[str, Any]) -> np.ndarray:
        """Sorted int64 labels of the clips that pass the filter."""
        cond, params = where_sql(where)
        with self._lock:
            cur = self.conn.execute(f"SELECT label FROM clips WHERE {cond} ORDER BY label", params)
            labels = np.fromiter((r[0] for r in cur), dtype=np.int64)
        return labels

    def close(self) -> None:
        with self._lock:
            self.conn.close()
