"""Internals shared by ClipIndex and IndexBuilder: an opened version, vector checks, commits."""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from . import backend, store
from .errors import IndexCorruptError, IndexInputError, IndexMismatchError
from .metadata import MetadataReader

VECTORS_TMP = "vectors.f32"  # raw (n, dim) float32 rows, only inside a .partial directory


@dataclass(frozen=True)
class Hit:
    """One search result: ``score`` is the cosine similarity (inner product of unit vectors)."""

    id: str
    score: float
    metadata: dict[str, Any] = field(repr=False)


def normalised(vectors: Any, dim: int, model_id: str, what: str) -> np.ndarray:
    """(n, dim) float32 unit rows; refuses other dimensions, NaN/inf and zero vectors."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise IndexMismatchError(
            f"{what} have shape {tuple(np.shape(vectors))}; this index holds {dim}-d vectors "
            f"of model {model_id!r}, embed with that model or rebuild the index"
        )
    if not np.isfinite(arr).all():
        raise IndexInputError(f"{what} contain NaN or inf")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise IndexInputError(f"{what} contain all-zero rows, which have no direction")
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


def check_model(expected: str, given: str | None, what: str) -> None:
    if given is not None and given != expected:
        raise IndexMismatchError(
            f"{what} come from model {given!r} but the index was built with {expected!r}; "
            "embed with that model or rebuild the index"
        )


class OpenedVersion:
    """One opened, immutable version: FAISS index in memory, metadata reader, filter cache."""

    def __init__(self, root: Path, manifest: dict, index: faiss.Index, meta: MetadataReader):
        self.root, self.manifest, self.index, self.meta = root, manifest, index, meta
        self.name: str = manifest["version"]
        self._cache: OrderedDict[str, backend.FilterSet] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def load(cls, root: Path, name: str, verify: bool) -> OpenedVersion:
        vdir = store.version_dir(root, name)
        manifest = store.read_manifest(vdir)
        store.verify_files(vdir, manifest, checksums=verify)
        try:
            index = faiss.read_index(str(vdir / store.INDEX_FILE))
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0][:120] if str(err).strip() else "unreadable"
            raise IndexCorruptError(
                f"{vdir / store.INDEX_FILE} is corrupt ({first}); rebuild the index"
            ) from None
        if index.ntotal != manifest["count"] or index.d != manifest["dim"]:
            raise IndexCorruptError(
                f"{vdir / store.INDEX_FILE} holds {index.ntotal} {index.d}-d vectors, the "
                f"manifest says {manifest['count']} {manifest['dim']}-d; rebuild the index"
            )
        return cls(root, manifest, index, MetadataReader(vdir / store.META_FILE, index.ntotal))

    def allowed(self, where: dict[str, Any]) -> backend.FilterSet:
        """The clips passing ``where``; recent filters are cached (LRU, at most 16 entries and
        256 MiB), so a filter used for every query (e.g. low ambient) costs one lookup."""
        key = json.dumps(where, sort_keys=True, default=sorted)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        entry = backend.FilterSet.build(self.index, self.meta.labels_where(where))
        with self._cache_lock:
            self._cache[key] = entry
            while len(self._cache) > 16 or (
                len(self._cache) > 1 and sum(e.nbytes for e in self._cache.values()) > 256 << 20
            ):
                self._cache.popitem(last=False)
        return entry


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def commit_version(
    writer: store.VersionWriter,
    index: faiss.Index,
    *,
    model_id: str,
    dim: int,
    metric: str,
    kind: str,
    params: dict,
) -> OpenedVersion:
    """Write ``index`` next to the metadata in the writer's partial directory and switch to it."""
    faiss.write_index(index, str(writer.partial / store.INDEX_FILE))
    fields = {
        "model_id": model_id,
        "dim": dim,
        "metric": metric,
        "count": int(index.ntotal),
        "kind": kind,
        "params": params,
        "created": utc_now(),
        "faiss_version": faiss.__version__,
    }
    final = writer.commit(fields)
    manifest = store.read_manifest(final)
    return OpenedVersion(
        writer.root, manifest, index, MetadataReader(final / store.META_FILE, index.ntotal)
    )


def build_from_file(
    writer: store.VersionWriter, count: int, dim: int, spec: dict, progress: bool
) -> tuple[faiss.Index, str, dict]:
    """Build the FAISS index from the raw vectors file in the partial directory."""
    path = writer.partial / VECTORS_TMP
    vectors = (
        np.memmap(path, np.float32, "r", shape=(count, dim))
        if count
        else np.zeros((0, dim), np.float32)
    )
    kind = backend.choose_kind(count, spec["kind_request"], spec["exact_max"])
    params = dict(spec)
    if kind == "ivf_flat":
        params.update(backend.ivf_params(count, spec.get("nlist"), spec.get("nprobe")))
    index = backend.build(vectors, kind, params, progress=progress)
    del vectors
    path.unlink(missing_ok=True)
    return index, kind, params


def make_spec(kind: str, exact_max: int, nlist: int | None, nprobe: int | None) -> dict:
    if kind != "auto" and kind not in backend.KINDS:
        raise IndexInputError(f"unknown index kind {kind!r}; use auto, {', '.join(backend.KINDS)}")
    spec: dict[str, Any] = {"kind_request": kind, "exact_max": int(exact_max)}
    if nlist is not None:
        spec["nlist"] = int(nlist)
    if nprobe is not None:
        spec["nprobe"] = int(nprobe)
    return spec


def check_metric(metric: str) -> None:
    if metric != "ip":
        raise IndexInputError(
            f"metric {metric!r} is not supported; the index uses 'ip' on L2-normalised vectors"
        )
