"""``IndexBuilder``: writes a whole new index version (``ClipIndex.rebuild``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import store
from .errors import IndexExistsError, IndexInputError
from .metadata import MetadataWriter, validate_rows
from .version import (
    VECTORS_TMP,
    build_from_file,
    check_metric,
    check_model,
    commit_version,
    normalised,
)

if TYPE_CHECKING:
    from .index import ClipIndex


class IndexBuilder:
    """Writes a whole new version; returned by :meth:`ClipIndex.rebuild`, used as a context manager.

    ``add`` streams vectors to a raw file and metadata to SQLite inside ``versions/vNNNN.partial``;
    on a clean exit the FAISS index is built, checksummed and switched to atomically, and
    :attr:`index` holds the opened new version. On an exception (or SIGKILL) nothing changes.
    """

    def __init__(
        self, path: Path, model_id: str, dim: int, metric: str, spec: dict, progress: bool
    ) -> None:
        check_metric(metric)
        if not isinstance(model_id, str) or not model_id:
            raise IndexInputError("model_id must be a non-empty string")
        if int(dim) <= 0:
            raise IndexInputError(f"dim must be positive, got {dim}")
        self.root, self.model_id, self.dim, self.metric = Path(path), model_id, int(dim), metric
        self.make_spec, self._progress = spec, progress
        self._writer: store.VersionWriter | None = None
        self._meta: MetadataWriter | None = None
        self._vec_file = None
        self.count = 0
        self.index: ClipIndex | None = None

    def __enter__(self) -> IndexBuilder:
        if self.root.exists() and not store.is_index_dir(self.root):
            others = {p.name for p in self.root.iterdir()} - {store.VERSIONS, ".lock"}
            if others:
                raise IndexExistsError(
                    f"{self.root} holds other files ({sorted(others)[0]}...), not an index; "
                    "pick an empty or new directory"
                )
        self._writer = store.VersionWriter(self.root).__enter__()
        try:
            self._meta = MetadataWriter(self._writer.partial / store.META_FILE)
            self._vec_file = open(self._writer.partial / VECTORS_TMP, "wb")
        except BaseException:
            self._writer.__exit__(None, None, None)
            raise
        return self

    def add(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadata: Sequence[dict],
        *,
        model_id: str | None = None,
    ) -> None:
        """Queue clips: ``vectors`` (n, dim) float32 (normalised here), one metadata dict each."""
        if self._meta is None:
            raise RuntimeError("IndexBuilder.add outside its `with` block")
        check_model(self.model_id, model_id, "vectors")
        vecs = normalised(vectors, self.dim, self.model_id, "vectors")
        if len(vecs) != len(ids):
            raise IndexInputError(f"got {len(ids)} ids but {len(vecs)} vectors")
        self._meta.insert(validate_rows(list(ids), list(metadata), self.count))
        self._vec_file.write(vecs.tobytes())
        self.count += len(vecs)

    def __exit__(self, exc_type, exc, tb) -> None:
        writer = self._writer
        try:
            self._vec_file.close()
            if exc_type is None:
                self._meta.close()
                index, kind, params = build_from_file(
                    writer, self.count, self.dim, self.make_spec, self._progress
                )
                version = commit_version(
                    writer,
                    index,
                    model_id=self.model_id,
                    dim=self.dim,
                    metric=self.metric,
                    kind=kind,
                    params=params,
                )
                from .index import ClipIndex  # import cycle: ClipIndex.rebuild returns a builder

                self.index = ClipIndex(self.root, version)
            else:
                self._meta.conn.close()
        finally:
            self._meta = None
            writer.__exit__(exc_type, exc, tb)
