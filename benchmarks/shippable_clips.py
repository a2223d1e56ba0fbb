"""How many train clips of a FoleyWorld dataset may ship as conditioning clips (every recording
CC0/CC-BY/CC-BY-SA, or procedural), how their ambient beds were told apart, and the time taken.

    python -m benchmarks.shippable_clips --data /work/data/fw-real --bank /work/bank
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from foley.data.ego4d import read_metadata, split_path
from foley.data.soundbank import provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--bank", default=None)
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    start = time.perf_counter()
    records = read_metadata(split_path(args.data, args.split))
    found, rows = provenance.clip_recordings(args.data, records, args.bank)
    seconds = time.perf_counter() - start
    kinds = Counter(
        "unknown" if files is None
        else "procedural" if not files
        else "shippable" if all(provenance.is_shippable(rows[f]) for f in files)
        else "training only"
        for files in found
    )  # fmt: skip
    print(f"{args.data} {args.split}: {len(records)} clips, {dict(sorted(kinds.items()))}")
    print(f"may ship: {kinds['shippable'] + kinds['procedural']} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
