"""AVS on FoleyWorld test: J and F per setting, audio ablations, and the alignment scores.

Expects the training folders written by ``foley train avs``::

    RUNS/single/model          --setting single (first-frame labels)
    RUNS/multi/model           --setting multi (all frames labelled)
    RUNS/single-visual/model   the same with --zero-audio (visual saliency alone; optional)
    RUNS/multi-visual/model

(``--names multi,multi-neg`` evaluates other run folders: a name's setting is its part before
the first ``-``; the visual-only row comes from ``RUNS/<setting>-visual``) and prints, for each
run, J, F and ``det`` (ROC-AUC of each frame's peak probability, sounding vs silent
frames) with the true audio, the same network with the audio zeroed
(silence in), the audio of another test clip, its own audio 1 s late, and the network trained
without audio; then the alignment score (a) (J with action-only / mixture / shuffled audio)
and the ROC-AUC of score (b) ranking each clip's true audio above another clip's audio and
above its own audio 1 s late.

    python benchmarks/avs_eval.py --data DATA --runs RUNS [--quick] [--png docs/img/avs_overlay.png]
        [--references shift|shuffle] [--evidence peak|mean] [--names single,multi]
        [--frame-stride 4|1]

A model trained with ``--frame-diff`` gets each scored frame's true predecessor (the test cache
then holds them, ``extract_avs_clips(..., predecessors=True)``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.config import DEFAULT_CONFIG
from foley.metrics.avs import (
    AVSScores,
    alignment_score,
    mask_iou,
    shift_in_time,
    shuffle_in_time,
)
from foley.models.avs import AVSModel
from training.train_avs import extract_avs_clips, mismatch_audio

SETTINGS = ("single", "multi")
SHIFT_S = 1.0  # the "own audio, late" rows: every sound 1 s late (circularly)
# the "swapped sound" rows: another clip's action sound, of another material, moved so that its
# first sound starts when this clip's does, over this clip's ambience (training's "swap"
# negative): right time, wrong sound, so only the sound's content tells it apart
SWAPPED = "swapped sound, right time"


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U)."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """Each clip paired with another clip's audio (a cyclic shift of a random order)."""
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, int)
    out[order] = np.roll(order, 1)
    return out


def batches(n: int, size: int):
    for i in range(0, n, size):
        yield np.arange(i, min(n, i + size))


def as_inputs(arrays: dict, idx: np.ndarray, audio: np.ndarray | None = None):
    """frames (B, T, 3, S, S), wave (B, N), frame_times (B, T) and each frame's predecessor
    (B, T, 3, S, S), or None when the cache has none."""
    cfg = DEFAULT_CONFIG

    def to_tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(0, 1, 4, 2, 3).float() / 255.0

    frames = to_tensor(arrays["frames"][idx])
    prev = to_tensor(arrays["prev_frames"][idx]) if "prev_frames" in arrays else None
    wave = torch.from_numpy(arrays["audio"][idx] if audio is None else audio[idx])
    times = torch.from_numpy((arrays["frame_index"] + 0.5) / cfg.fps).float()
    return frames, wave, times.expand(len(idx), -1), prev


@torch.no_grad()
def probs_of(
    model, arrays, idx, audio=None, zero=False, shuffle_seed=None, shift_s=0.0
) -> torch.Tensor:
    frames, wave, times, prev = as_inputs(arrays, idx, audio)
    if zero:
        wave = torch.zeros_like(wave)
    if shift_s:
        wave = shift_in_time(wave, int(round(shift_s * DEFAULT_CONFIG.sample_rate)))
    if shuffle_seed is not None:
        block = int(0.5 * DEFAULT_CONFIG.sample_rate)
        wave = shuffle_in_time(wave, block, torch.Generator().manual_seed(shuffle_seed))
    return torch.sigmoid(model(frames, wave, times, prev_frames=prev))


def evaluate(model, arrays, clips: np.ndarray, batch: int, **kw) -> dict[str, float]:
    """J, F and ``det``: the ROC-AUC of each frame's largest probability as a detector of
    "a sounding object is in view" (sounding vs silent frames): how well the network knows
    *when* to draw a mask, whatever the threshold."""
    scores, peak = AVSScores(), []
    for idx in batches(len(clips), batch):
        probs = probs_of(model, arrays, clips[idx], **kw)
        scores.update(probs, arrays["masks"][clips[idx]])
        peak.append(probs.amax((-1, -2)))
    out = scores.compute()
    peak = torch.cat(peak).numpy()
    sounding = arrays["masks"][clips].any((-1, -2))
    out["det"] = roc_auc(peak[sounding], peak[~sounding])
    return out


def mean_j(model, arrays, clips, batch, **kw) -> float:
    js = [
        mask_iou(probs_of(model, arrays, clips[i], **kw), arrays["masks"][clips[i]]).mean(1)
        for i in batches(len(clips), batch)
    ]
    return float(torch.cat(js).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--runs", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--quick", action="store_true", help="at most 24 clips, 4 shuffles")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--png", default="", help="write an overlay strip of one test clip here")
    parser.add_argument("--mp4", default="", help="and its overlay video here")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--frame-stride",
        type=int,
        default=4,
        help="score every k-th frame of the 16 fps clips (4: 12 frames a clip, AVSBench-like"
        " sparse labels; 1: every frame, as the app's masks and score (b) run)",
    )
    parser.add_argument(
        "--references", choices=("shift", "shuffle"), default="shift", help="of score (b)"
    )
    parser.add_argument(
        "--evidence", choices=("peak", "mean"), default="mean", help="of score (b) (mask_evidence)"
    )
    parser.add_argument(
        "--names",
        default=",".join(SETTINGS),
        help="run folders under RUNS to score; a name's setting is its part before the first '-'",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    runs = Path(args.runs)
    t0 = time.time()
    names = [n for n in args.names.split(",") if n]
    for name in names:
        if name.split("-")[0] not in SETTINGS:
            parser.error(f"--names: {name!r} does not start with a setting {SETTINGS}")
    motion = any(
        json.loads(p.read_text()).get("frame_diff", False)
        for name in names
        for p in (
            runs / name / "model" / "config.json",
            runs / visual_name(name) / "model" / "config.json",
        )
        if p.exists()
    )
    arrays = extract_avs_clips(
        args.data,
        args.split,
        runs / ("features" if args.frame_stride == 4 else f"features_s{args.frame_stride}"),
        frame_stride=args.frame_stride,
        max_clips=24 if args.quick else 0,
        predecessors=motion,
    )
    n = len(arrays["clip_id"])
    other = arrays["audio"][derangement(n)]
    # another clip's sound (of another material) at this clip's time, over this clip's ambience
    swapped = np.stack(
        [mismatch_audio(arrays, i, "swap", np.random.default_rng([1, i]))[0] for i in range(n)]
    )
    sources = arrays["sources"]
    subsets = {"single": np.flatnonzero(sources <= 1), "multi": np.arange(n)}
    print(
        f"{args.split}: {n} clips, {int((sources <= 1).sum())} with at most one visible source,"
        f" {int((sources > 1).sum())} with several; {arrays['frames'].shape[1]} frames each"
    )
    results: dict = {}
    for run in names:
        setting = run.split("-")[0]
        path = runs / run / "model"
        if not path.exists():
            print(f"[{run}] no model at {path}, skipped")
            continue
        model = AVSModel.from_pretrained(path).eval()
        clips = subsets[setting]
        rows = {
            "true audio": evaluate(model, arrays, clips, args.batch),
            "audio zeroed (silence in)": evaluate(model, arrays, clips, args.batch, zero=True),
            "another clip's audio": evaluate(model, arrays, clips, args.batch, audio=other),
            SWAPPED: evaluate(model, arrays, clips, args.batch, audio=swapped),
            f"own audio {SHIFT_S:g} s late": evaluate(
                model, arrays, clips, args.batch, shift_s=SHIFT_S
            ),
        }
        visual = runs / visual_name(run) / "model"
        if visual.exists():
            vmodel = AVSModel.from_pretrained(visual).eval()
            rows["trained without audio"] = evaluate(vmodel, arrays, clips, args.batch, zero=True)
        print(f"\n[{run}] {len(clips)} clips ({'all' if setting == 'multi' else '<=1 source'})")
        print(f"{'audio':<28} {'J':>6} {'F':>6} {'J obj':>6} {'J empty':>7} {'det':>6}")
        for name, r in rows.items():
            print(
                f"{name:<28} {r['J']:6.3f} {r['F']:6.3f} {r['J_object']:6.3f}"
                f" {r['J_empty']:7.3f} {r['det']:6.3f}"
            )
        results[run] = rows

        # alignment score (a): J of the masks drawn from a soundtrack, with ceiling and floor
        action = arrays["action"]
        a_rows = {
            "mixture (true audio, ceiling)": mean_j(model, arrays, clips, args.batch),
            "action-only ground truth": mean_j(model, arrays, clips, args.batch, audio=action),
            "shuffled in time (floor)": mean_j(model, arrays, clips, args.batch, shuffle_seed=0),
            "another clip's audio": mean_j(model, arrays, clips, args.batch, audio=other),
        }
        print("alignment (a), J of AVS(frames, soundtrack):")
        for name, j in a_rows.items():
            print(f"  {name:<30} {j:6.3f}")
        results[run + "_alignment_a"] = a_rows

        # alignment score (b): no ground truth; the true audio should outrank mismatched audio
        shuffles = 4 if args.quick else 8
        kinds = {
            "another clip's audio": other,
            SWAPPED: swapped,
            f"own audio {SHIFT_S:g} s late": None,
        }
        scores: dict[str, list] = {"true audio": [], **{k: [] for k in kinds}}
        for idx in tqdm(list(batches(len(clips), args.batch)), desc="score (b)", leave=False):
            frames, wave, _, prev = as_inputs(arrays, clips[idx])
            late = shift_in_time(wave, int(round(SHIFT_S * DEFAULT_CONFIG.sample_rate)))
            inputs = {
                "true audio": wave,
                "another clip's audio": as_inputs(arrays, clips[idx], other)[1],
                SWAPPED: as_inputs(arrays, clips[idx], swapped)[1],
            }
            inputs[f"own audio {SHIFT_S:g} s late"] = late
            for name, w in inputs.items():
                scores[name].append(
                    alignment_score(
                        model,
                        frames,
                        w,
                        num_shuffles=shuffles,
                        references=args.references,
                        evidence=args.evidence,
                        prev_frames=prev,
                    )
                )
        scores = {k: torch.cat(v).numpy() for k, v in scores.items()}
        pos = scores["true audio"]
        b_rows = {"true audio": {"mean": float(pos.mean())}}
        print(
            f"alignment (b), {shuffles} {args.references} references, {args.evidence} evidence,"
            f" {len(pos)} clips:"
        )
        print(f"  {'true audio':<30} mean {pos.mean():.3f}")
        for name in kinds:
            neg = scores[name]
            auc = roc_auc(pos, neg)
            b_rows[name] = {"mean": float(neg.mean()), "auc": auc}
            print(f"  {name:<30} mean {neg.mean():.3f}  ROC-AUC true vs this {auc:.3f}")
        results[run + "_alignment_b"] = b_rows

        if args.png and run == "multi":
            write_pictures(model, arrays, clips, args.png, args.mp4)
    print(f"\n({time.time() - t0:.0f} s)")
    print(json.dumps(results))
    return 0


def visual_name(name: str) -> str:
    """The visual-only run beside run ``name``: ``<setting>-visual``."""
    return f"{name.split('-')[0]}-visual"


def write_pictures(model, arrays, clips, png: str, mp4: str) -> None:
    """Overlay strip of the test clip with most ground-truth mask pixels (not chosen on the
    model's output): predicted probability as opacity above, ground truth below."""
    from foley.viz import save_overlay_strip, save_overlay_video

    i = clips[int(np.argmax(arrays["masks"][clips].sum((1, 2, 3))))]
    probs = probs_of(model, arrays, np.array([i]))[0].numpy()
    frames = arrays["frames"][i]
    path = save_overlay_strip(png, frames, probs, gt_masks=arrays["masks"][i], num=6)
    print(f"overlay strip: {path} (clip {arrays['clip_id'][i]})")
    if mp4:
        fps = DEFAULT_CONFIG.fps / int(arrays["frame_index"][1] - arrays["frame_index"][0])
        print(f"overlay video: {save_overlay_video(mp4, frames, probs, fps)}")


if __name__ == "__main__":
    raise SystemExit(main())
