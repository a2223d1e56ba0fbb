"""One feature-store format for every trainer's pre-extracted features (MMAudio's practice:
training reads memory-mapped arrays, never decodes media in the loop).

A store is a folder::

    STORE/manifest.json   format, invalidation key, the settings it was made with, each array's
                          dtype and shape, per-clip metadata (JSON), rows written so far
    STORE/<name>.npy      one array per name, read memory-mapped

The **invalidation key** is the SHA-256 of the settings (source files and their sizes/mtimes,
model settings, the time/shape contract...): a store opens for a request only when the
request's settings give the same key, and is otherwise rebuilt. One rule for every cache:
the denoiser/sync features (``training.features``), the MC3 cache (``training.mc3_cache``), the
codec's audio (``training.train_codec``) and the AVS clips (``training.train_avs``).

A store is written by a :class:`StoreWriter`: atomically (into ``STORE.partial``, renamed into
place by :meth:`StoreWriter.commit`, so a killed extraction is never taken for a finished one),
or resumably (``resume=True``: written in place, ``rows_done`` recorded by
:meth:`StoreWriter.checkpoint`; a re-run with the same key continues from there).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "foley-feature-store"
VERSION = 1
MANIFEST = "manifest.json"


def settings_key(settings: dict[str, Any]) -> str:
    """The invalidation key of ``settings``: SHA-256 of their canonical JSON."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == FORMAT else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


class FeatureStore:
    """A finished store: ``store["name"]`` is that array, memory-mapped read-only."""

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def open(
        cls, path: str | os.PathLike, settings: dict[str, Any] | None = None
    ) -> FeatureStore | None:
        """The complete store at ``path`` (made with ``settings``, when given), else None."""
        manifest = _read_manifest(Path(path))
        if manifest is None or manifest["rows_done"] < manifest["rows"]:
            return None
        if settings is not None and manifest["key"] != settings_key(settings):
            return None
        return cls(path, manifest)

    @property
    def meta(self) -> dict[str, Any]:
        """Per-clip metadata (JSON) stored with the arrays."""
        return self.manifest["meta"]

    @property
    def settings(self) -> dict[str, Any]:
        return self.manifest["settings"]

    def __contains__(self, name: str) -> bool:
        return name in self.manifest["arrays"]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self:
            raise KeyError(f"{self.path}: no array {name!r}")
        return np.load(self.path / f"{name}.npy", mmap_mode="r")

    def get(self, name: str) -> np.ndarray | None:
        return self[name] if name in self else None

    def new_array(self, name: str, dtype, shape: tuple[int, ...]) -> np.memmap:
        """A writable array to add to (or replace in) a finished store: written beside the
        others and listed only by :meth:`publish`, so readers never see it half written."""
        return np.lib.format.open_memmap(self.path / f"{name}.tmp.npy", "w+", dtype, shape)

    def publish(self, *names: str) -> None:
        """Rename the arrays :meth:`new_array` made into place and list them."""
        for name in names:
            os.replace(self.path / f"{name}.tmp.npy", self.path / f"{name}.npy")
            array = np.load(self.path / f"{name}.npy", mmap_mode="r")
            self.manifest["arrays"][name] = _spec(array.dtype, array.shape)
        _write_json(self.path / MANIFEST, self.manifest)


def _spec(dtype, shape) -> dict[str, Any]:
    return {"dtype": np.dtype(dtype).str, "shape": [int(n) for n in shape]}


class StoreWriter:
    """Writes the store ``path`` for ``settings`` with ``rows`` clips.

    resume: write in place and keep what an interrupted run with the same key wrote
    (:attr:`rows_done` rows); otherwise write into ``path.partial`` and rename on commit.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        settings: dict[str, Any],
        rows: int,
        *,
        resume: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.resume = resume
        self.work = self.path if resume else self.path.with_name(self.path.name + ".partial")
        key = settings_key(settings)
        previous = _read_manifest(self.work) if resume else None
        self.rows_done = 0
        if previous is not None and previous["key"] == key and previous["rows"] == rows:
            self.rows_done = int(previous["rows_done"])
        elif not resume:
            shutil.rmtree(self.work, ignore_errors=True)  # our own unfinished folder
        elif previous is not None:  # a store made with other settings: only its own files go
            for name in previous["arrays"]:
                (self.work / f"{name}.npy").unlink(missing_ok=True)
            (self.work / MANIFEST).unlink()
        self.work.mkdir(parents=True, exist_ok=True)
        self.manifest = {
            "format": FORMAT,
            "version": VERSION,
            "key": key,
            "settings": settings,
            "rows": int(rows),
            "rows_done": self.rows_done,
            "arrays": dict(previous["arrays"]) if self.rows_done else {},
            "meta": meta if meta is not None else (previous["meta"] if self.rows_done else {}),
        }

    def array(self, name: str, dtype, shape: tuple[int, ...]) -> np.memmap:
        """A writable memory-mapped array (reopened in place when resuming)."""
        mode = "r+" if self.rows_done and name in self.manifest["arrays"] else "w+"
        self.manifest["arrays"][name] = _spec(dtype, shape)
        return np.lib.format.open_memmap(self.work / f"{name}.npy", mode, dtype, tuple(shape))

    def save(self, name: str, array: np.ndarray) -> None:
        """A whole array at once."""
        np.save(self.work / f"{name}.npy", array)
        self.manifest["arrays"][name] = _spec(array.dtype, array.shape)

    def checkpoint(self, rows_done: int) -> None:
        """Record that the first ``rows_done`` rows are written (resumable stores)."""
        self.rows_done = self.manifest["rows_done"] = int(rows_done)
        _write_json(self.work / MANIFEST, self.manifest)

    def commit(self, meta: dict[str, Any] | None = None) -> FeatureStore:
        """Finish: every row written, metadata stored, the store renamed into place."""
        if meta is not None:
            self.manifest["meta"] = meta
        self.checkpoint(self.manifest["rows"])
        if not self.resume:
            if self.path.exists():
                shutil.rmtree(self.path)
            os.replace(self.work, self.path)
        return FeatureStore(self.path, self.manifest)
