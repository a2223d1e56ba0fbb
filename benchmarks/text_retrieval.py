"""Text search of a sound library: precision@k per (material, verb) query against its labels.

    python -m benchmarks.text_retrieval --data /work/data/bank-prepared \
        --index /work/data/bank-index --manifest /work/bank/manifest.jsonl [-k 5] [--min-clips 5]

The library is the real sound bank (``foley sound-bank fetch``) after ``foley prepare`` and
``foley index build`` (MC3 audio embeddings of every indexed clip). For every (material, verb)
label of the bank with at least ``--min-clips`` indexed clips, the query text goes through the
MC3 text tower (``ClipRetriever.retrieve_text``); a hit is relevant when its source recording
carries that label. The random-ranking floor of a query is (relevant clips) / (indexed clips),
the expected precision of any k clips drawn at random. Two query phrasings are scored: a sound
library's ("gravel step") and a narration's ("step on the gravel").
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
    floor = np.array([counts[p] / total for p in pairs])
    rows = {}
    for name, template in TEMPLATES.items():
        texts = [template.format(material=m, verb=v) for m, v in pairs]
        results = retriever.retrieve_text(texts, args.k)
        rows[name] = np.array(
            [np.mean([labels[h.id] == p for h in hits]) for p, hits in zip(pairs, results)]
        )
    print(f"\n| query | clips | P@{args.k} library | P@{args.k} narration | random floor |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for i, (m, v) in enumerate(pairs):
        print(f"| {m} {v} | {counts[(m, v)]} | {rows['library'][i]:.2f} | "
              f"{rows['narration'][i]:.2f} | {floor[i]:.3f} |")  # fmt: skip
    print(f"| **mean** | | **{rows['library'].mean():.3f}** | **{rows['narration'].mean():.3f}**"
          f" | **{floor.mean():.3f}** |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
