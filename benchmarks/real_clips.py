"""Generated soundtracks of real footage beside FoleyWorld clips (issue 22 item 3).

Real footage of hands at work that is reachable offline: the two videos of OpenCV's
documentation (Debian's ``opencv-doc``, Apache-2.0 AND BSD-3-Clause): a hand turning a cup
(``cup.mp4``, 8 s) and a hand moving a box over a table (``box.mp4``, 15 s), each with the sound
its camera recorded. ``--fetch`` downloads the package from the Debian archive (the only network
this project uses) and unpacks the two videos; nothing is committed.

    python -m benchmarks.real_clips --fetch /work/data/real-clips
    python -m benchmarks.real_clips --videos /work/data/real-clips --model default \
        --model /work/runs/den-af/ft/model --model /work/runs/den-eff/ft/model \
        --name "shipped (sync CNN)" --name "s8 fine-tune, sync CNN" \
        --name "s8 fine-tune, sync + EfficientNet" --foleyworld /work/data/fw-real-eval \
        --threads 1 --out docs/img/real_clips.png

One row per clip (the real ones, then ``--fw-clips`` FoleyWorld test clips), columns: four
frames, the clip's own sound, then each model's soundtrack in each mode, with the onsets detected
in each. The real clips have no ground truth, and their own sound is no onset reference (the
cup's is a steady hum with one knock, the box's a click about five times a second), so the
table lists how many onsets each soundtrack has and the pictures are there to be looked at.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

VIDEOS = ("cup.mp4", "box.mp4")
PACKAGE = "opencv-doc"
INSIDE = "usr/share/doc/opencv-doc/opencv4/html"


def fetch(out: Path) -> list[Path]:
    """``apt-get download opencv-doc``, unpack, gunzip the two videos into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise SystemExit("real_clips --fetch: needs apt-get and dpkg (Debian)")
    with tempfile.TemporaryDirectory(prefix="foley-real-") as tmp:
        got = subprocess.run(["apt-get", "download", PACKAGE], cwd=tmp, capture_output=True)
        debs = sorted(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        if not debs:
            raise SystemExit(f"real_clips --fetch: apt-get download {PACKAGE} failed: "
                             f"{got.stderr.decode(errors='replace').strip()[-200:]}")  # fmt: skip
        subprocess.run(["dpkg", "-x", str(debs[0]), str(Path(tmp) / "x")], check=True)
        written = []
        for name in VIDEOS:
            with gzip.open(Path(tmp) / "x" / INSIDE / f"{name}.gz") as src:
                (out / name).write_bytes(src.read())
            written.append(out / name)
        shutil.copy(Path(tmp) / "x" / "usr/share/doc/opencv-doc/copyright", out / "COPYRIGHT")
        (out / "SOURCE.md").write_text(
            f"{', '.join(VIDEOS)}: from Debian's {debs[0].name} ({INSIDE}/*.mp4.gz), OpenCV's "
            "documentation; licence Apache-2.0 AND BSD-3-Clause (COPYRIGHT, 'Files: *').\n"
        )
    return written


def _clips(args, cfg) -> list[dict]:
    """Real videos and FoleyWorld test clips: frames (T, S, S, 3) uint8 and own audio, decoded
    at the models' frame rate and size."""
    from foley.io import load_video

    clips = []
    for name in VIDEOS:
        path = Path(args.videos) / name
        if not path.is_file():
            raise SystemExit(f"real_clips: {path}: missing (run with --fetch {args.videos})")
        video = load_video(path, cfg, until=args.seconds)
        n = int(round(len(video.frames) / cfg.fps * cfg.sample_rate))
        audio = np.zeros(n, np.float32) if video.audio is None else video.audio[:n]
        clips.append({"name": f"real: {name}", "frames": video.frames, "audio": audio})
    if args.foleyworld:
        from foley.data.ego4d import ClipDataset

        data = ClipDataset(args.foleyworld, "test", cfg)
        for i in range(min(args.fw_clips, len(data))):
            frames, audio = data.load_clip(i)
            rec = data.records[i]
            name = f"FoleyWorld {rec.video_uid[:8]} #{rec.clip_id.rsplit('_', 1)[-1]}"
            clips.append({"name": name, "frames": frames, "audio": audio})
    return clips


def _pipelines(models: list[str], modes: list[str], device: str):
    """Each model; for the retrieving modes, one without a retriever borrows the shipped one's."""
    from foley.pipelines.foley_pipeline import FoleyPipeline
    from foley.pipelines.loading import load_pipeline

    retrieves = any(m in ("ambient_joint", "action_focused") for m in modes)
    default = None
    if "default" in models or retrieves:
        default = load_pipeline(None, device, quiet=True)
    out = []
    for m in models:
        pipe = default if m == "default" else load_pipeline(m, device, quiet=True)
        if pipe.retriever is None and retrieves:
            pipe = FoleyPipeline.from_pipe(pipe, retriever=default.retriever)
        pipe.set_progress_bar_config(disable=True)
        out.append(pipe)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fetch", metavar="DIR", help="download the real videos into DIR and stop")
    p.add_argument("--videos", help="folder with cup.mp4 and box.mp4 (from --fetch)")
    p.add_argument("--model", action="append", help="pipeline folder or 'default' (repeat)")
    p.add_argument("--name", action="append", help="a column label per --model")
    p.add_argument("--modes", nargs="+", default=["ambient_joint", "action_focused"])
    p.add_argument("--foleyworld", help="FoleyWorld data: its first --fw-clips test clips too")
    p.add_argument("--fw-clips", type=int, default=2)
    p.add_argument("--seconds", type=float, default=6.0, help="the first seconds of each video")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="real_clips.png")
    args = p.parse_args(argv)
    if args.fetch:
        for path in fetch(Path(args.fetch)):
            print(f"wrote {path}")
        return 0
    if not args.videos or not args.model:
        p.error("--videos and at least one --model (or --fetch DIR)")
    names = args.name or []
    names += [Path(m).name if m != "default" else "default" for m in args.model[len(names) :]]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from foley.metrics.onsets import detect_onsets
    from foley.viz.spectrogram import _draw

    if args.threads:
        torch.set_num_threads(args.threads)
    pipes = _pipelines(args.model, args.modes, "cpu")
    cfg = pipes[0].av_config
    if any(pipe.av_config != cfg for pipe in pipes):
        raise SystemExit("real_clips: the models decode video differently (av_config)")
    clips = _clips(args, cfg)
    columns = [(n, pipe, mode) for n, pipe in zip(names, pipes) for mode in args.modes]
    fig, axes = plt.subplots(
        len(clips), 2 + len(columns), figsize=(3.2 * (2 + len(columns)), 2.0 * len(clips)),
        squeeze=False,
    )  # fmt: skip
    table = []
    sr = cfg.sample_rate
    for r, clip in enumerate(clips):
        frames = clip["frames"]
        idx = np.linspace(0, len(frames) - 1, 4).astype(int)
        axes[r, 0].imshow(np.concatenate([frames[i] for i in idx], axis=1))
        axes[r, 0].set_axis_off()
        axes[r, 0].set_title(clip["name"], fontsize=8)
        own = np.asarray(clip["audio"], np.float32)
        ref = detect_onsets(own, cfg)
        _draw(axes[r, 1], own, sr, cfg, ref, None, "its own sound")
        row = {"clip": clip["name"], "own onsets": len(ref)}
        for c, (name, pipe, mode) in enumerate(columns):
            gen = torch.Generator().manual_seed(args.seed)
            audio = pipe(frames, mode=mode, generator=gen).audios[0][: own.size]
            ons = detect_onsets(audio, cfg)
            _draw(axes[r, 2 + c], audio, sr, cfg, ons, None, f"{name}, {mode}")
            row[f"{name}, {mode}"] = len(ons)
        table.append(row)
        print(f"{clip['name']}: done", file=sys.stderr, flush=True)
    fig.suptitle(
        "log-mel spectrograms; green lines: the onsets detected in each soundtrack",
        fontsize=9,
    )
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    from PIL import Image

    Image.open(out).convert("RGB").quantize(256).save(out, optimize=True)  # a third the bytes
    keys = [k for k in table[0] if k not in ("clip", "own onsets")]
    print("| clip | onsets: own sound | " + " | ".join(f"onsets: {k}" for k in keys) + " |")
    print("| --- | ---: |" + " ---: |" * len(keys))
    for row in table:
        cells = " | ".join(str(row[k]) for k in keys)
        print(f"| {row['clip']} | {row['own onsets']} | {cells} |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
