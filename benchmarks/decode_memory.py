"""Peak memory of decoding the worst videos a request may send (issue 17).

Each file is decoded by ``foley.io.load_video`` (the default 16 fps, 112 x 112 contract) in a
fresh subprocess; its peak resident memory is its own ``VmHWM`` (/proc/self/status).
The first row is the same subprocess importing ``foley.io`` and decoding nothing: the floor
every row includes.

    python -m benchmarks.decode_memory
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHILD = r"""
import re, sys, time


def hwm_mib():
    # this process's own peak RSS (ru_maxrss would include the parent's, kept across vfork+exec)
    text = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) // 1024

from foley.io import load_video
t = time.perf_counter()
try:
    video = None if sys.argv[1] == "-" else load_video(sys.argv[1], with_audio=False)
    result = "" if video is None else f"{video.num_frames} frames"
except Exception as err:
    result = f"refused: {err}"
print(result)
print(round(time.perf_counter() - t, 2))
print(hwm_mib())
"""


def measure(path: str) -> tuple[str, float, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()[-3:]
    return out[0], float(out[1]), int(out[2])


def clips(root: Path) -> list[tuple[str, str]]:
    """(description, path) of the worst inputs, written into ``root``."""
    sys.path.insert(0, str(REPO))
    from foley.io import write_video

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 240, 320, 3), dtype=np.uint8)
    rows = [("nothing decoded (import floor)", "-")]
    specs = [
        ("16 fps, 30 s, 320x240", "slow.mp4", 16.0, 480, base),
        ("240 fps (the cap), 30 s, 320x240", "fast.mp4", 240.0, 7200, base),
        ("3000 fps, 2 s, 320x240 (refused)", "x3000.mp4", 3000.0, 6000, base),
    ]
    for text, name, fps, n, frames in specs:
        reps = -(-n // len(frames))
        write_video(root / name, np.tile(frames, (reps, 1, 1, 1))[:n], fps)
        rows.append((text, str(root / name)))
    big = rng.integers(0, 255, (8, 4096, 4096, 3), dtype=np.uint8)  # the pixel cap
    write_video(root / "huge.mp4", big, 8.0)
    rows.append(("4096x4096 (the pixel cap), 8 fps, 1 s", str(root / "huge.mp4")))
    return rows


def main() -> int:
    print("| input | result | decode s | peak RSS |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="foley-decode-mem-") as tmp:
        started = time.perf_counter()
        for text, path in clips(Path(tmp)):
            result, seconds, peak = measure(path)
            print(f"| {text} | {result[:60] or '-'} | {seconds} | {peak} MiB |", flush=True)
    print(f"({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
