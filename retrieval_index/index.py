"""``ClipIndex``: a versioned FAISS + SQLite store of clip embeddings with metadata filters."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from . import backend, store
from .builder import IndexBuilder
from .errors import (
    IndexCorruptError,
    IndexExistsError,
    IndexInputError,
    IndexMismatchError,
    IndexNotFoundError,
    RetrievalIndexError,
    UnknownIdError,
)
from .metadata import MetadataWriter, validate_rows
from .version import (
    VECTORS_TMP,
    Hit,
    OpenedVersion,
    build_from_file,
    check_model,
    commit_version,
    make_spec,
    normalised,
)

__all__ = ["ClipIndex", "Hit", "IndexBuilder"]


class ClipIndex:
    """Clip embeddings with metadata: exact or IVF search, filters, versioned atomic rebuilds.

    Thread-safe for reads (``search``, ``get``, ``vector``, ``info``) from any number of threads.
    Use :meth:`create`, :meth:`open` or :meth:`rebuild`; see the package docstring.
    """

    def __init__(self, root: Path, version: OpenedVersion) -> None:
        self.path = Path(root)
        self._v = version  # replaced as a whole by add(): readers see one version or the other

    # ----------------------------------------------------------------------- constructors
    @classmethod
    def create(
        cls,
        path: str | Path,
        model_id: str,
        dim: int,
        metric: str = "ip",
        *,
        kind: str = "auto",
        exact_max: int = backend.EXACT_MAX,
        nlist: int | None = None,
        nprobe: int | None = None,
    ) -> ClipIndex:
        """Make an empty index at ``path`` (which must not exist or be an empty directory)."""
        root = Path(path)
        if store.is_index_dir(root) or (root.exists() and any(root.iterdir())):
            raise IndexExistsError(
                f"{root} already exists and is not empty; open it, rebuild it, or pick a new path"
            )
        builder = IndexBuilder(
            root, model_id, dim, metric, make_spec(kind, exact_max, nlist, nprobe), False
        )
        with builder:
            pass
        return builder.index

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model_id: str | None = None,
        dim: int | None = None,
        verify: bool = True,
    ) -> ClipIndex:
        """Open the current version; ``verify`` checks the sha256 of every file.

        ``model_id``/``dim``, when given, must match the index (else :class:`IndexMismatchError`).
        """
        root = Path(path)
        for attempt in range(5):
            name = store.read_current(root)
            try:
                version = OpenedVersion.load(root, name, verify)
                break
            except (RetrievalIndexError, OSError) as err:
                # A writer may have switched and garbage-collected `name` meanwhile: retry.
                if attempt < 4 and store.read_current(root) != name:
                    continue
                if isinstance(err, RetrievalIndexError):
                    raise
                raise IndexCorruptError(f"cannot read {root} version {name}: {err}") from None
        index = cls(root, version)
        check_model(index.model_id, model_id, f"the caller's vectors ({root})")
        if dim is not None and dim != index.dim:
            raise IndexMismatchError(
                f"{root} holds {index.dim}-d vectors of model {index.model_id!r}, not {dim}-d; "
                "rebuild it with the model you use"
            )
        return index

    @classmethod
    def rebuild(
        cls,
        path: str | Path,
        model_id: str,
        dim: int,
        metric: str = "ip",
        *,
        kind: str = "auto",
        exact_max: int = backend.EXACT_MAX,
        nlist: int | None = None,
        nprobe: int | None = None,
        progress: bool = True,
    ) -> IndexBuilder:
        """A builder for a complete new version at ``path`` (created if missing)::

        with ClipIndex.rebuild(path, "mc3-v1", 256) as builder:
            builder.add(ids, vectors, metadata)
        index = builder.index
        """
        return IndexBuilder(
            Path(path), model_id, dim, metric, make_spec(kind, exact_max, nlist, nprobe), progress
        )

    # ------------------------------------------------------------------------- properties
    @property
    def model_id(self) -> str:
        return self._v.manifest["model_id"]

    @property
    def dim(self) -> int:
        return self._v.manifest["dim"]

    @property
    def version(self) -> str:
        return self._v.name

    @property
    def kind(self) -> str:
        return self._v.manifest["kind"]

    def __len__(self) -> int:
        return self._v.manifest["count"]

    def count(self, where: dict[str, Any] | None = None) -> int:
        """How many clips pass ``where`` (the filters of :meth:`search`); all without one."""
        v = self._v
        return int(len(v.allowed(where).labels)) if where else int(v.manifest["count"])

    def __contains__(self, clip_id: object) -> bool:
        return isinstance(clip_id, str) and self._v.meta.label_of(clip_id) is not None

    def __repr__(self) -> str:
        return (
            f"ClipIndex({str(self.path)!r}, version={self.version}, model_id={self.model_id!r}, "
            f"dim={self.dim}, count={len(self)}, kind={self.kind})"
        )

    def info(self) -> dict[str, Any]:
        """Model id, dim, metric, count, kind, params, created (UTC), version, versions on disk."""
        m = self._v.manifest
        return {
            "path": str(self.path),
            "version": m["version"],
            "model_id": m["model_id"],
            "dim": m["dim"],
            "metric": m["metric"],
            "count": m["count"],
            "kind": m["kind"],
            "params": dict(m["params"]),
            "created": m["created"],
            "faiss_version": m["faiss_version"],
            "versions": store.list_versions(self.path),
        }

    # ---------------------------------------------------------------------------- reads
    def get(self, clip_id: str) -> dict[str, Any]:
        """Metadata dict (with ``id``) of one clip; :class:`UnknownIdError` if absent."""
        v = self._v
        label = v.meta.label_of(clip_id)
        if label is None:
            raise UnknownIdError(f"no clip {clip_id!r} in {self.path} ({v.name})")
        return v.meta.rows([label])[label]

    def vector(self, clip_id: str) -> np.ndarray:
        """The stored unit vector (dim,) float32 of one clip."""
        v = self._v
        label = v.meta.label_of(clip_id)
        if label is None:
            raise UnknownIdError(f"no clip {clip_id!r} in {self.path} ({v.name})")
        return v.index.reconstruct(label)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        where: dict[str, Any] | None = None,
        *,
        model_id: str | None = None,
        nprobe: int | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` clips per query, best first.

        queries: (q, dim) float32 (a single (dim,) vector is taken as q=1); normalised here.
        where: filters, all optional and ANDed: ``split`` (str or list), ``video_uid`` (str or
            list), ``exclude_video_uid`` (str or list), ``ambient_db_max`` (keep clips with
            ambient_db <= level, dBFS), ``ambient_db_min`` (>= level), ``has`` (str or list:
            extra metadata keys that must be present and not null).
        Returns q lists of min(k, number of clips passing the filter) :class:`Hit`.
        """
        v = self._v  # one snapshot for the whole call
        m = v.manifest
        check_model(m["model_id"], model_id, "queries")
        q = normalised(queries, m["dim"], m["model_id"], "queries")
        if k < 0:
            raise IndexInputError(f"k must be >= 0, got {k}")
        probe = int(nprobe or m["params"].get("nprobe", 1))
        if where:
            subset = v.allowed(where)
            if len(subset.labels) == 0 or k == 0:
                return [[] for _ in range(len(q))]
            scores, labels = backend.search_filtered(v.index, q, k, probe, subset)
        else:
            if m["count"] == 0 or k == 0:
                return [[] for _ in range(len(q))]
            scores, labels = backend.search(v.index, q, min(k, m["count"]), probe)
        rows = v.meta.rows(np.unique(labels[labels >= 0]))
        return [
            [Hit(rows[lab]["id"], float(s), rows[lab]) for s, lab in zip(srow, lrow) if lab >= 0]
            for srow, lrow in zip(scores, labels)
        ]

    # ---------------------------------------------------------------------------- writes
    def add(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadata: Sequence[dict],
        *,
        model_id: str | None = None,
        progress: bool = False,
    ) -> None:
        """Add clips as a new version (copy-on-write, atomic switch); this object moves to it.

        Builds on the current version on disk (another process may have added meanwhile).
        IVF lists trained earlier are kept; :meth:`rebuild` re-trains them. Bulk loads should
        use :meth:`rebuild`: each ``add`` rewrites the index files.
        """
        check_model(self.model_id, model_id, "vectors")
        vecs = normalised(vectors, self.dim, self.model_id, "vectors")
        if len(vecs) != len(ids):
            raise IndexInputError(f"got {len(ids)} ids but {len(vecs)} vectors")
        with store.VersionWriter(self.path) as writer:
            if store.read_current(self.path) != self._v.name:
                self._v = ClipIndex.open(self.path, verify=False)._v
            base = self._v
            m = base.manifest
            shutil.copyfile(
                base.root / "versions" / base.name / store.META_FILE,
                writer.partial / store.META_FILE,
            )
            meta = MetadataWriter(writer.partial / store.META_FILE)
            meta.insert(validate_rows(list(ids), list(metadata), m["count"]))
            meta.close()
            spec = {
                k: m["params"][k]
                for k in ("kind_request", "exact_max", "nlist", "nprobe")
                if k in m["params"]
            }
            count = m["count"] + len(vecs)
            kind = backend.choose_kind(count, spec["kind_request"], spec["exact_max"])
            if kind == m["kind"]:
                index = faiss.clone_index(base.index)
                backend.add(index, vecs)
                params = dict(m["params"])
            else:
                with open(writer.partial / VECTORS_TMP, "wb") as f:
                    f.write(backend.all_vectors(base.index).tobytes())
                    f.write(vecs.tobytes())
                spec.pop("nlist", None), spec.pop("nprobe", None)
                index, kind, params = build_from_file(writer, count, self.dim, spec, progress)
            self._v = commit_version(
                writer,
                index,
                model_id=m["model_id"],
                dim=m["dim"],
                metric=m["metric"],
                kind=kind,
                params=params,
            )

    def copy_to(self, path: str | Path) -> ClipIndex:
        """Copy this object's version alone into a new index directory ``path`` (which must not
        exist or be empty) and open it there: a consistent snapshot, safe while writers run."""
        dst = Path(path)
        if dst.exists() and any(dst.iterdir()):
            raise IndexExistsError(f"{dst} already exists and is not empty; pick a new path")
        v = self._v
        src = store.version_dir(self.path, v.name)
        target = store.version_dir(dst, v.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(v.name + ".partial")
        try:
            shutil.copytree(src, partial)
        except FileNotFoundError:
            raise IndexNotFoundError(
                f"{src} was garbage-collected by later rebuilds; open the index again and copy"
            ) from None
        partial.rename(target)
        (dst / store.CURRENT).write_text(v.name + "\n")
        return ClipIndex.open(dst)

    def close(self) -> None:
        """Release the metadata connection (the object is unusable afterwards)."""
        self._v.meta.close()
