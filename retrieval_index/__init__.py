"""Versioned vector store of clip embeddings: FAISS index + SQLite metadata, atomic rebuilds.

Imports no model code and nothing from ``foley``: it stores whatever vectors it is given, tagged
with the embedding model id and dimension that produced them.

API::

    from retrieval_index import ClipIndex, Hit

    index = ClipIndex.create(path, model_id="mc3-abc123", dim=256)      # empty, metric="ip"
    index.add(ids, vectors, metadata)          # ids: list[str]; vectors (n, dim) float32;
                                               # metadata: list of dicts, see below
    hits = index.search(queries, k=5, where={"split": "train", "ambient_db_max": -50.0})
    hits[0][0].id, hits[0][0].score, hits[0][0].metadata   # list (per query) of lists of Hit
    index.get("clip-id")  -> metadata dict     index.vector("clip-id") -> (dim,) float32
    len(index); "clip-id" in index; index.info()  # model_id, dim, count, created, version, kind...
    index.copy_to(other_path)                  # this version alone, as a new index (for export)

    index = ClipIndex.open(path, model_id=None, dim=None, verify=True)  # current version

    with ClipIndex.rebuild(path, model_id, dim) as builder:  # bulk load: a whole new version
        for batch in batches:
            builder.add(ids, vectors, metadata)
    index = builder.index                                     # opened new version

Metadata dicts need ``clip_path`` (str), ``video_uid`` (str), ``narration`` (str),
``ambient_db`` (float, dBFS; -inf allowed) and ``split`` (str); other JSON-able keys are kept and
returned. Filters (``where``, all optional, ANDed): ``split`` and ``video_uid`` (str or list),
``exclude_video_uid`` (str or list), ``ambient_db_max`` (ambient_db <= level),
``ambient_db_min`` (>= level), ``has`` (str or list: extra metadata keys present and not null).
A filtered search returns min(k, clips passing) hits per query.
``add``, ``search`` and ``IndexBuilder.add`` take ``model_id=`` to refuse vectors of another model.

Search: vectors are L2-normalised on the way in; scores are inner products, i.e. cosine
similarities. Up to ``exact_max`` (50,000) vectors the index is exact (``IndexFlatIP``); above,
``IndexIVFFlat`` with nlist ~ 2 sqrt(n) lists (a power of two) and nprobe = max(8, nlist / 256)
lists per query (``kind="flat"`` or ``"ivf_flat"`` forces one; ``nlist``/``nprobe`` override,
``search(..., nprobe=)`` per call). An IVF query short of k results is repeated with more lists.
Filtered search: small passing sets (<= 20,000) are searched exactly (an ``IndexFlatIP`` of their
vectors, built once and cached per filter); larger ones with a FAISS ``IDSelectorBitmap``.

On disk (see :mod:`retrieval_index.store`): ``CURRENT`` names the serving version directory under
``versions/``, holding ``index.faiss``, ``meta.sqlite`` and ``manifest.json`` (model id, dim,
metric, count, kind, params, created time, sha256 and size of each file, its own checksum).
Every write (``create``, ``add``, ``rebuild``) builds a new version in a ``.partial`` directory
and switches ``CURRENT`` with ``os.replace``; a writer killed at any point leaves the previous
version serving; readers that opened a version keep using it; the last 2 versions are kept.
Reads are thread-safe; writers are serialised by an ``fcntl`` lock.

Errors (all ``ValueError`` subclasses, one-line messages): :class:`IndexNotFoundError`,
:class:`IndexExistsError`, :class:`IndexCorruptError` (manifest/pointer/file corrupt, truncated
or failing its checksum), :class:`IndexMismatchError` (another model id or dimension),
:class:`IndexInputError` (bad ids, metadata, filters), :class:`UnknownIdError` (also a KeyError).
"""

from .backend import EXACT_MAX
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
from .index import ClipIndex
from .version import Hit

__all__ = [
    "EXACT_MAX",
    "ClipIndex",
    "Hit",
    "IndexBuilder",
    "IndexCorruptError",
    "IndexExistsError",
    "IndexInputError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "RetrievalIndexError",
    "UnknownIdError",
]
