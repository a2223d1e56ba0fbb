"""Text search of a sound library: precision@k per (material, verb) query against its labels.

    python -m benchmarks.text_retrieval --data /work/data/bank-prepared \
        --index /work/data/bank-index --manifest /work/bank/manifest.jsonl [-k 5] [--min-clips 5]

The library is the real sound bank (``foley sound-bank fetch``) after ``foley prepare`` and
``foley index build`` (MC3 audio embeddings of every indexed clip). For every (material, verb)
label of the bank with at least ``--min-clips`` indexed clips, the query text goes through the
MC3 text tower (``ClipRetriever.retrieve_text``); a hit is relevant when its source recording
carries that label. The random-ranking floor of a query is (relevant clips) / (indexed clips),
the expected precision of any k clips drawn at random. Two query phrasings are scored: a sound
library's ("gravel step") and a narration's ("step on the gravel"), over the whole index and
over its event clips only (``where={"video_uid": ...}``: the bank's 54 ambient and 24 texture
recordings, cut into many 3 s clips, leave the ranking). For comparison, query by example: the
label precision@k of each labelled clip's nearest other clips by MC3 audio embedding.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from foley.data.prepare import MANIFEST
from foley.defaults import mc3_dir_or_default
from foley.models.mc3_embed import load_mc3
from foley.retrieval import ClipRetriever, open_index

TEMPLATES = {"library": "{material} {verb}", "narration": "{verb} on the {material}"}


def clip_labels(data: Path, manifest: Path, index) -> dict[str, tuple[str, str] | None]:
    """(material, verb) of each indexed clip's source recording (None: no event label)."""
    prepared = json.loads((data / MANIFEST).read_text())
    root = Path(prepared["source"])
    bank_root = manifest.parent
    labels = {}
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        labels[str((bank_root / row["file"]).resolve())] = (
            (row["material"], row["verb"]) if row["kind"] == "event" else None
        )
    by_uid = {
        e["video_uid"]: labels.get(str((root / rel).resolve()))
        for rel, e in prepared["files"].items()
        if "video_uid" in e
    }
    probe = np.ones((1, index.dim), np.float32)
    hits = index.search(probe, k=len(index))[0]
    return {h.id: by_uid.get(h.metadata["video_uid"]) for h in hits}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the foley prepare folder")
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True, help="the bank's manifest.jsonl")
    parser.add_argument("--model", help="MC3 folder (default: the shipped one)")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--min-clips", type=int, default=5)
    args = parser.parse_args(argv)
    index = open_index(args.index)
    retriever = ClipRetriever(load_mc3(mc3_dir_or_default(args.model)), index)
    labels = clip_labels(args.data, args.manifest, index)
    counts = Counter(v for v in labels.values() if v is not None)
    pairs = sorted(p for p, n in counts.items() if n >= args.min_clips)
    total = len(labels)
    print(f"{total} indexed clips, {len(pairs)} (material, verb) queries with >= "
          f"{args.min_clips} clips")  # fmt: skip
    hits = index.search(np.ones((1, index.dim), np.float32), k=total)[0]
    event_uids = sorted({h.metadata["video_uid"] for h in hits if labels[h.id] is not None})
    n_events = sum(v is not None for v in labels.values())
    scopes = {"all clips": (None, total), "event clips": ({"video_uid": event_uids}, n_events)}
    means: dict[str, list] = {}
    table = []
    for scope, (where, n) in scopes.items():
        for name, template in TEMPLATES.items():
            texts = [template.format(material=m, verb=v) for m, v in pairs]
            results = retriever.retrieve_text(texts, args.k, where=where)
            precision = [np.mean([labels[h.id] == p for h in r]) for p, r in zip(pairs, results)]
            means[f"P@{args.k} {name} query, {scope}"] = precision
        means[f"random floor, {scope}"] = [counts[p] / n for p in pairs]
    for i, (m, v) in enumerate(pairs):
        table.append(f"| {m} {v} | {counts[(m, v)]} | "
                     + " | ".join(f"{vals[i]:.2f}" for vals in means.values()) + " |")  # fmt: skip
    print("| query | clips | " + " | ".join(means) + " |")
    print("| --- | ---: |" + " ---: |" * len(means))
    print("\n".join(table))
    print("| **mean** | | " + " | ".join(f"**{np.mean(v):.3f}**" for v in means.values()) + " |")
    ids = [h.id for h in hits if labels[h.id] is not None]
    vectors = np.stack([index.vector(i) for i in ids])  # (n, D) audio embeddings
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1)[:, : args.k]
    example = np.mean([np.mean([labels[ids[j]] == labels[ids[i]] for j in row])
                       for i, row in enumerate(nearest)])  # fmt: skip
    print(f"\nquery by example (audio -> audio, event clips): label P@{args.k} {example:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
