"""FAISS side of the index: choosing, building and searching exact or IVF indexes.

Vectors are L2-normalised float32 and compared by inner product (= cosine similarity).
Kinds:

* ``flat``: ``IndexFlatIP``, exact; used up to ``exact_max`` vectors (default 50,000).
* ``ivf_flat``: ``IndexIVFFlat`` (inner product) with ``nlist`` ~ 2 sqrt(n) lists (a power of 2)
  and ``nprobe`` lists visited per query. Chosen over HNSW and IVF-PQ + refine by measurement on
  2 cores (docs/BENCHMARKS.md, retrieval index section): HNSW32 took 89 s to build 300 k vectors
  (~6 min projected for 1.2 M), IVF-PQ32 with a flat refine stayed at recall@10 0.88, IVF-Flat
  built in 16 s with recall@10 1.00. Memory is the same as IVF-PQ + refine (the refine keeps the
  raw vectors too): 4 * dim bytes per vector plus 8 for its id map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np
from tqdm.auto import tqdm

KINDS = ("flat", "ivf_flat")
EXACT_MAX = 50_000
SUBSET_EXACT_MAX = 20_000  # filtered searches passing fewer items are answered exactly
_ADD_CHUNK = 65_536


def choose_kind(count: int, requested: str, exact_max: int) -> str:
    """The FAISS index kind for ``count`` vectors: ``requested`` unless it is ``"auto"``."""
    if requested == "auto":
        return "flat" if count <= exact_max else "ivf_flat"
    return requested


def ivf_params(count: int, nlist: int | None = None, nprobe: int | None = None) -> dict:
    """Default IVF settings for ``count`` vectors: nlist a power of two near 2 sqrt(count),
    nprobe = max(8, nlist / 256) (2048 and 8 at 1.2 M: ~4.7 k vectors scanned per query).

    Measured at 1.2 M (docs/BENCHMARKS.md): 2048 lists reach recall@10 0.99 at nprobe 8,
    1024 lists only 0.94 (0.95 at nprobe 16, i.e. twice the scan)."""
    if nlist is None:
        nlist = 2 ** round(math.log2(max(2.0 * math.sqrt(max(count, 1)), 1.0)))
        nlist = int(min(max(nlist, 64), 65_536))
    nlist = int(min(nlist, max(count, 1)))
    if nprobe is None:
        nprobe = max(8, nlist // 256)
    return {"nlist": nlist, "nprobe": int(min(nprobe, nlist))}


def build(
    vectors: np.ndarray, kind: str, params: dict, *, progress: bool = False, seed: int = 0
) -> faiss.Index:
    """Build a FAISS index over ``vectors`` (n, dim) float32 (may be a memmap), added in chunks."""
    n, dim = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf_flat":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.seed = seed
        sample_n = min(n, 64 * params["nlist"])
        rows = np.sort(np.random.default_rng(seed).choice(n, sample_n, replace=False))
        index.train(np.ascontiguousarray(vectors[rows]))
        index.nprobe = params["nprobe"]
        index.make_direct_map()  # for reconstruct() (get vectors, exact filtered search)
    else:
        raise ValueError(f"unknown index kind {kind!r}; known: {', '.join(KINDS)}")
    bar = tqdm(total=n, desc=f"indexing ({kind})", unit="vec", disable=not progress or n == 0)
    for start in range(0, n, _ADD_CHUNK):
        chunk = np.ascontiguousarray(vectors[start : start + _ADD_CHUNK], dtype=np.float32)
        index.add(chunk)
        bar.update(len(chunk))
    bar.close()
    return index


def add(index: faiss.Index, vectors: np.ndarray) -> None:
    """Append vectors to a built index (IVF keeps its trained lists)."""
    for start in range(0, len(vectors), _ADD_CHUNK):
        index.add(np.ascontiguousarray(vectors[start : start + _ADD_CHUNK]))


def all_vectors(index: faiss.Index) -> np.ndarray:
    """Every stored vector, (ntotal, dim) float32, in label order."""
    if index.ntotal == 0:
        return np.zeros((0, index.d), np.float32)
    return index.reconstruct_n(0, index.ntotal)


def _search_params(index: faiss.Index, nprobe: int, sel: faiss.IDSelector | None):
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
    return None if sel is None else faiss.SearchParameters(sel=sel)


def _refill_short(index, queries, k, need, nprobe, sel, scores, labels) -> None:
    """Repeat, with 4x the lists each time, the IVF queries that got fewer than ``need`` hits."""
    probe = nprobe
    short = np.flatnonzero((labels[:, :need] < 0).any(axis=1))
    while len(short) and probe < index.nlist:
        probe = min(index.nlist, probe * 4)
        params = _search_params(index, probe, sel)
        s2, l2 = index.search(np.ascontiguousarray(queries[short]), k, params=params)
        scores[short], labels[short] = s2, l2
        short = short[(l2[:, :need] < 0).any(axis=1)]


def search(index: faiss.Index, queries: np.ndarray, k: int, nprobe: int) -> tuple:
    """Unfiltered top-k (k <= ntotal): scores (q, k) float32, labels (q, k) int64.

    An IVF query whose probed lists hold fewer than k vectors is repeated with more lists.
    """
    scores, labels = index.search(queries, k, params=_search_params(index, nprobe, None))
    if isinstance(index, faiss.IndexIVF):
        _refill_short(index, queries, k, k, nprobe, None, scores, labels)
    return scores, labels


@dataclass(frozen=True)
class FilterSet:
    """The clips passing one filter: sorted int64 ``labels``, the same set as a little-endian
    ``bitmap`` (for ``IDSelectorBitmap``), and for small sets (<= SUBSET_EXACT_MAX) an exact
    ``IndexFlatIP`` over their vectors, built once, so repeated filtered queries (the same
    low-ambient filter for every request) cost one small exact search."""

    labels: np.ndarray
    bitmap: np.ndarray
    exact: faiss.IndexFlatIP | None

    @classmethod
    def build(cls, index: faiss.Index, labels: np.ndarray) -> FilterSet:
        mask = np.zeros(index.ntotal, bool)
        mask[labels] = True
        exact = None
        if 0 < len(labels) <= SUBSET_EXACT_MAX:
            exact = faiss.IndexFlatIP(index.d)
            exact.add(index.reconstruct_batch(labels))  # row i is the clip labels[i]
        return cls(labels, np.packbits(mask, bitorder="little"), exact)

    @property
    def nbytes(self) -> int:
        vectors = 0 if self.exact is None else self.exact.ntotal * self.exact.d * 4
        return self.labels.nbytes + self.bitmap.nbytes + vectors


def search_filtered(
    index: faiss.Index, queries: np.ndarray, k: int, nprobe: int, subset: FilterSet
) -> tuple:
    """Top-k among the clips of ``subset``: min(k, len(subset.labels)) results per query.

    Small sets are searched exactly (one matmul with their cached vectors); larger ones through
    an ``IDSelectorBitmap``, and a query left short (its probed lists held too few allowed
    items) is repeated with 4x the lists until it is full (all lists = exhaustive).
    """
    if subset.exact is not None:
        scores, rows = subset.exact.search(queries, k)  # -1 beyond the subset's size
        labels = np.where(rows >= 0, subset.labels[np.maximum(rows, 0)], -1)
        return scores, labels
    bitmap = subset.bitmap
    sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    scores, labels = index.search(queries, k, params=_search_params(index, nprobe, sel))
    if not isinstance(index, faiss.IndexIVF):
        return scores, labels
    _refill_short(index, queries, k, min(k, len(subset.labels)), nprobe, sel, scores, labels)
    return scores, labels
