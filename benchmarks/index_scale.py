"""Retrieval index at Ego4D-Sounds scale: build time, memory, latency, recall vs brute force.

Synthetic data: ``--n`` (1.2 M) unit vectors of ``--dim`` (256) around ``--clusters`` (4096)
random unit centres, ``x = normalise(centre + noise * g / sqrt(dim))`` with g ~ N(0, I); queries
are fresh draws from the same mixture. Ground truth: exact top-10 by inner product (faiss.knn).

Side by side in one run:
* brute force as Action2Sound's retrieval does it: numpy cosine over the database in chunks of
  ``--chunk`` rows (matmul + argpartition per chunk, merged), database pre-normalised;
* ``ClipIndex`` (retrieval_index), built through ``ClipIndex.rebuild`` with synthetic metadata
  (what ``foley index build`` writes), reopened from disk with checksums verified, searched
  through the public API (metadata fetched for every hit), unfiltered and filtered.

    python benchmarks/index_scale.py            # 1.2 M vectors, the figure in docs/BENCHMARKS.md
    python benchmarks/index_scale.py --quick    # 120 k vectors, 410 clusters, a couple of minutes
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from retrieval_index import ClipIndex


def rss_mb(field: str = "VmRSS") -> float:
    """Resident (VmRSS) or peak resident (VmHWM) memory of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Reset VmHWM (Linux clear_refs 5), so the next VmHWM read is the peak since now."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


_SERVE = """
import sys, numpy as np
from pathlib import Path
from retrieval_index import ClipIndex
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
q = np.random.default_rng(0).standard_normal((64, int(sys.argv[2]))).astype("f4")
before = rss()
index = ClipIndex.open(sys.argv[1])
for i in range(64):
    index.search(q[i : i + 1], 10, where={"split": "train", "ambient_db_max": -50.0})
index.search(q, 10)
print(rss() - before)
"""


def serving_process_mb(root: Path) -> float:
    """RSS growth (MiB) of a fresh process that opens the index and runs a few searches."""
    dim = ClipIndex.open(root, verify=False).dim
    out = subprocess.run(
        [sys.executable, "-c", _SERVE, str(root), str(dim)], capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.split()[-1])


def clustered(n: int, dim: int, centres: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """(n, dim) float32 unit vectors drawn from the Gaussian mixture around ``centres``."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, len(centres), m)]
        x = x + (noise / np.sqrt(dim)) * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def brute_force(db: np.ndarray, queries: np.ndarray, *, k: int, chunk: int) -> np.ndarray:
    """Top-k labels by cosine, numpy over database chunks (Action2Sound-style loop)."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(db), chunk):
        sims = queries @ db[start : start + chunk].T  # (q, chunk) cosine: rows are unit
        kk = min(k, sims.shape[1])
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(sims, top, 1)], axis=1)
        best_i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argpartition(-best_s, min(k, best_s.shape[1]) - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_i, order, 1)


def timed(fn, batches: list[np.ndarray]) -> np.ndarray:
    """Milliseconds per call of ``fn(batch)`` for each batch."""
    out = []
    for batch in batches:
        t = time.perf_counter()
        fn(batch)
        out.append((time.perf_counter() - t) * 1e3)
    return np.array(out)


def recall(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def synthetic_metadata(start: int, n: int, rng: np.random.Generator) -> list[dict]:
    ambient = rng.uniform(-80.0, -20.0, n)
    split = rng.choice(np.array(["train", "val", "test"]), n, p=[0.8, 0.1, 0.1])
    return [
        {
            "clip_path": f"vid{(start + i) // 30:06d}/clip{start + i:07d}.mp4",
            "video_uid": f"vid{(start + i) // 30:06d}",
            "narration": "#C C cuts the onion with a knife",
            "ambient_db": float(ambient[i]),
            "split": str(split[i]),
        }
        for i in range(n)
    ]


def compare_candidates(db: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int) -> None:
    """Raw FAISS build time, recall@10 and batch-1 p50 of the approximate index types."""
    n, dim = db.shape
    nlist = 2 ** round(np.log2(2 * np.sqrt(n)))
    sample = db[np.sort(np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False))]
    ip = faiss.METRIC_INNER_PRODUCT

    def hnsw():
        index = faiss.IndexHNSWFlat(dim, 32, ip)
        index.hnsw.efConstruction = 40
        index.add(db)
        return index, [(f"efSearch {e}", faiss.SearchParametersHNSW(efSearch=e)) for e in (64, 128)]

    def ivfpq():
        ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, 32, 8, ip)
        ivf.cp.niter = 10
        ivf.train(sample)
        index = faiss.IndexRefineFlat(ivf)
        index.add(db)
        refine = faiss.IndexRefineSearchParameters
        return index, [
            (f"nprobe {p}, k_factor 8", refine(k_factor=8, base_index_params=ivf_params(p)))
            for p in (8, 32)
        ]

    def ivfflat():
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, ip)
        index.cp.niter = 10
        index.train(sample)
        index.add(db)
        return index, [(f"nprobe {p}", ivf_params(p)) for p in (8, 32)]

    def ivf_params(nprobe: int):
        return faiss.SearchParametersIVF(nprobe=nprobe)

    print("\n| index (raw FAISS) | build (s) | setting | recall@10 | batch 1 p50 (ms) |")
    print("| --- | --- | --- | --- | --- |")
    candidates = (
        ("HNSW32,Flat (efConstruction 40)", hnsw),
        (f"IVF{nlist},PQ32 + RFlat", ivfpq),
        (f"IVF{nlist},Flat", ivfflat),
    )
    one_by_one = [queries[i : i + 1] for i in range(min(300, len(queries)))]
    for name, make in candidates:
        t0 = time.perf_counter()
        index, settings = make()
        build_s = time.perf_counter() - t0
        for label, params in settings:
            _, found = index.search(queries, k, params=params)
            search = functools.partial(index.search, k=k, params=params)
            lat = timed(search, one_by_one)
            print(
                f"| {name} | {build_s:.1f} | {label} | {recall(found, truth):.3f} | "
                f"{np.median(lat):.3f} |"
            )
        del index, search
        gc.collect()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_200_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--clusters", type=int, default=4096)
    p.add_argument("--noise", type=float, default=1.0, help="cluster spread (see docstring)")
    p.add_argument("--queries", type=int, default=512)
    p.add_argument("--brute-queries", type=int, default=50, help="batch-1 brute-force samples")
    p.add_argument("--chunk", type=int, default=100_000, help="brute-force chunk rows")
    p.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads")
    p.add_argument("--nprobe", type=int, nargs="*", default=[8, 16, 32, 64], help="sweep")
    p.add_argument("--dir", type=Path, default=None, help="index directory (default: a tmp dir)")
    p.add_argument("--quick", action="store_true", help="120 k vectors, 410 clusters")
    p.add_argument(
        "--candidates",
        action="store_true",
        help="compare raw FAISS index types (HNSW, IVF-PQ + refine, IVF-Flat) and exit",
    )
    args = p.parse_args()
    if args.quick:
        args.n, args.clusters = 120_000, 410
    faiss.omp_set_num_threads(args.threads)
    try:  # numpy's BLAS gets as many threads as FAISS: a like-for-like baseline
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        print("# threadpoolctl missing: numpy BLAS threads not limited")
    k = 10
    print(
        f"# n={args.n} dim={args.dim} clusters={args.clusters} noise={args.noise} "
        f"threads={args.threads} cpus={os.cpu_count()} faiss={faiss.__version__}"
    )

    t0 = time.perf_counter()
    centres = np.random.default_rng(0).standard_normal((args.clusters, args.dim))
    centres = (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)
    db = clustered(args.n, args.dim, centres, args.noise, seed=1)
    queries = clustered(args.queries, args.dim, centres, args.noise, seed=2)
    print(f"data: {time.perf_counter() - t0:.1f} s, {db.nbytes / 2**20:.0f} MiB")

    t0 = time.perf_counter()
    _, truth = faiss.knn(queries, db, k, metric=faiss.METRIC_INNER_PRODUCT)
    print(
        f"ground truth (faiss.knn exact, {args.queries} queries): {time.perf_counter() - t0:.1f} s"
    )
    if args.candidates:
        compare_candidates(db, queries, truth, k)
        return 0

    # ---- brute force numpy in chunks (batch 1 on a few queries, batch 64 on a few batches)
    b1 = [queries[i : i + 1] for i in range(args.brute_queries)]
    b64 = [queries[i : i + 64] for i in range(0, min(len(queries), 3 * 64), 64)]
    brute = functools.partial(brute_force, db, k=k, chunk=args.chunk)
    brute_b1, brute_b64 = timed(brute, b1), timed(brute, b64)
    brute_recall = recall(brute(queries[:64]), truth[:64])
    del brute

    # ---- build through the public API, with metadata
    root = args.dir or Path(tempfile.mkdtemp(prefix="index_scale_"))
    rng = np.random.default_rng(3)
    rss_before = rss_mb()
    reset_peak()
    t0, cpu0 = time.perf_counter(), time.process_time()
    t_add = 0.0
    with ClipIndex.rebuild(root, "synthetic-256", args.dim) as builder:
        for start in range(0, args.n, 100_000):
            m = min(100_000, args.n - start)
            ids = [f"clip{start + i:07d}" for i in range(m)]
            metas = synthetic_metadata(start, m, rng)
            ta = time.perf_counter()
            builder.add(ids, db[start : start + m], metas)
            t_add += time.perf_counter() - ta
    build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    build_peak, build_growth = rss_mb("VmHWM") - rss_before, rss_mb() - rss_before
    del builder
    gc.collect()
    disk_mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    del db
    gc.collect()

    serving_mb = serving_process_mb(root)
    t0 = time.perf_counter()
    index = ClipIndex.open(root)  # sha256 of every file verified
    open_s = time.perf_counter() - t0
    info = index.info()
    faiss_index = index._v.index  # raw FAISS object, to separate its time from the API's
    nprobe = info["params"].get("nprobe", 1)

    def api(q, where=None, nprobe=None):
        return index.search(q, k, where=where, nprobe=nprobe)

    def api_labels(q, nprobe=None):
        return np.array([[int(h.id[4:]) for h in row] for row in api(q, nprobe=nprobe)])

    i_b1 = [queries[i : i + 1] for i in range(len(queries))]
    i_b64 = [queries[i : i + 64] for i in range(0, len(queries), 64)] * 2
    timed(api, i_b1[:50])  # warm-up
    api_b1, api_b64 = timed(api, i_b1), timed(api, i_b64)
    params = faiss.SearchParametersIVF(nprobe=nprobe) if info["kind"] == "ivf_flat" else None
    raw_b1 = timed(lambda q: faiss_index.search(q, k, params=params), i_b1)
    api_recall = recall(api_labels(queries), truth)
    where = {"split": "train", "ambient_db_max": -50.0}
    filt_b1 = timed(lambda q: api(q, where), i_b1[:200])
    where_small = {"split": "test", "ambient_db_max": -75.0}  # ~0.8 % of clips
    filt_small_b1 = timed(lambda q: api(q, where_small), i_b1[:200])
    sweep = []
    if info["kind"] == "ivf_flat":
        for probe in args.nprobe:
            lat = timed(lambda q, probe=probe: api(q, nprobe=probe), i_b1[:300])
            sweep.append((probe, recall(api_labels(queries, probe), truth), np.median(lat)))

    ms = lambda a: f"{np.percentile(a, 50):.3f} / {np.percentile(a, 99):.3f}"  # noqa: E731
    print(f"\nindex: {info['kind']} {info['params']}, {info['count']} clips, {info['version']}")
    print(
        f"build (ClipIndex.rebuild, {-(-args.n // 100_000)} adds of <= 100k + FAISS build + "
        "write + sha256): "
        f"{build_s:.1f} s wall, {build_cpu_s:.1f} s CPU (adds incl. SQLite metadata {t_add:.1f} s)"
    )
    print(f"open with checksum verification: {open_s:.1f} s; on disk {disk_mb:.0f} MiB")
    print(
        f"memory: a fresh process that opens the index and searches grows by "
        f"{serving_mb:.0f} MiB; during the build, peak "
        f"{build_peak:.0f} MiB and end {build_growth:.0f} MiB above the "
        f"{rss_before:.0f} MiB process (which holds the {db_mb(args):.0f} MiB dataset)"
    )
    print("\n| method | recall@10 | batch 1 p50 / p99 (ms) | batch 64 p50 / p99 (ms) |")
    print("| --- | --- | --- | --- |")
    print(
        f"| numpy brute force, {args.chunk // 1000}k-row chunks | {brute_recall:.3f} | "
        f"{ms(brute_b1)} | {ms(brute_b64)} |"
    )
    print(
        f"| ClipIndex.search ({info['kind']}, nprobe {nprobe}) | {api_recall:.3f} | "
        f"{ms(api_b1)} | {ms(api_b64)} |"
    )
    print(f"| raw FAISS search, same index | - | {ms(raw_b1)} | - |")
    print(f"| ClipIndex.search, where split=train & ambient<=-50 dB | - | {ms(filt_b1)} | - |")
    print(f"| ClipIndex.search, where split=test & ambient<=-75 dB | - | {ms(filt_small_b1)} | - |")
    print(
        f"\nspeed-up over brute force, batch-1 p50: "
        f"{np.median(brute_b1) / np.median(api_b1):.0f}x; batch-64 p50: "
        f"{np.median(brute_b64) / np.median(api_b64):.0f}x"
    )
    if sweep:
        print("\n| nprobe | recall@10 | batch 1 p50 (ms) |\n| --- | --- | --- |")
        for probe, rec, lat in sweep:
            print(f"| {probe} | {rec:.3f} | {lat:.3f} |")
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def db_mb(args: argparse.Namespace) -> float:
    return args.n * args.dim * 4 / 2**20


if __name__ == "__main__":
    raise SystemExit(main())
