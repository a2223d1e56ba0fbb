"""Quality vs sampler steps (issue 22 item 4): each solver at 2/4/8/16/25 steps, same seeds.

    python -m benchmarks.steps_curve --data DATA --split test --model DIR --n 48 \\
        [--solvers euler,heun,dpm,unipc --steps 2,4,8,16,25 --shift S --sync-shaping F] \\
        [--out steps.json]

For every (solver, steps) the pipeline (its scheduler replaced by the solver's,
:func:`foley.pipelines.solvers.flow_scheduler`) goes through :func:`foley.evaluation.evaluate`
on the first ``n`` clips of the split, modes ambient-joint and action-focused, with the same
seed (the same initial noise for every run). Per mode it reports onset F1, FD aisfx
(:class:`~foley.metrics.pretrained.PretrainedJudges`) and FD mel, and their relative change
against 25 steps (the largest step count) of the same solver; per run the denoiser calls per
window (NFE) and the process CPU seconds to generate 8 s of audio at batch 1 (median of
``--timing-runs`` after a warm-up: video encoding, retrieval, sampling, decoding, stitching;
frames already decoded). Prints a markdown table and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

MODES = ("ambient_joint", "action_focused")
METRICS = (
    ("onset_f1", "onset F1"),
    ("fd_aisfx", "FD aisfx"),
    ("fd_mel", "FD mel"),
    ("kl_soundnet", "KL SoundNet"),
    ("fd_mc3", "FD MC3"),
)


def solver_pipeline(pipe, solver: str, shift: float | None):
    """``pipe`` sharing every component, with the solver's scheduler as its own."""
    from foley.pipelines.foley_pipeline import FoleyPipeline
    from foley.pipelines.solvers import flow_scheduler

    return FoleyPipeline.from_pipe(pipe, scheduler=flow_scheduler(pipe.scheduler, solver, shift))


def cpu_seconds_8s(pipe, frames: np.ndarray, steps: int, runs: int, **call) -> float:
    """Median process CPU seconds of one generation of ``frames`` (8 s, batch 1); NaN for
    ``runs`` 0 (not timed)."""
    if runs <= 0:
        return float("nan")
    times = []
    for i in range(runs + 1):  # the first is a warm-up
        start = time.process_time()
        pipe(frames, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), **call)
        if i:
            times.append(time.process_time() - start)
    return statistics.median(times)


def eight_seconds_of_video(data: str, split: str, cfg) -> np.ndarray:
    """uint8 (T, S, S, 3) at cfg.fps: the split's first clips end to end, cut to 8 s."""
    from foley.data.ego4d import ClipDataset

    dataset = ClipDataset(data, split, cfg)
    need, parts, i = cfg.num_frames(8.0), [], 0
    while sum(len(p) for p in parts) < need:
        parts.append(dataset.load_clip(i % len(dataset))[0])
        i += 1
    return np.concatenate(parts)[:need]


def relative(value: float, ref: float) -> float:
    return (
        (value - ref) / abs(ref)
        if math.isfinite(value) and math.isfinite(ref) and ref
        else math.nan
    )


def run(args: argparse.Namespace) -> dict:
    from foley.evaluation import evaluate
    from foley.metrics.pretrained import PretrainedJudges
    from foley.pipelines.loading import load_pipeline
    from foley.pipelines.solvers import model_evaluations

    pipe = load_pipeline(args.model, "cpu", quiet=True)
    pipe.set_progress_bar_config(disable=True)
    judges = PretrainedJudges("cpu")
    frames = eight_seconds_of_video(args.data, args.split, pipe.av_config)
    call = {"mode": "ambient_joint", "sync_shaping": args.sync_shaping}
    runs = []
    for solver in args.solvers:
        variant = solver_pipeline(pipe, solver, args.shift)
        for steps in args.steps:
            report = evaluate(
                args.data,
                args.split,
                variant,
                judges=judges,
                n=args.n,
                modes=MODES,
                seed=args.seed,
                num_inference_steps=steps,
                sync_shaping=args.sync_shaping,
                progress=False,
            )
            rows = {m: report.rows[f"model_{m}"] for m in MODES}
            cpu = cpu_seconds_8s(variant, frames, steps, args.timing_runs, **call)
            runs.append(
                {
                    "solver": solver,
                    "steps": steps,
                    "nfe": model_evaluations(variant.scheduler, steps),
                    "cpu_s_8s": cpu,
                    "clips": report.settings["clips"],
                    "modes": {m: {k: float(rows[m][k]) for k, _ in METRICS} for m in MODES},
                    # every figure of the eval row (levels, AV-sim, AVS J, ...), for the record
                    "rows": {m: {k: float(v) for k, v in rows[m].items()} for m in MODES},
                }
            )
            print(f"{solver} {steps} steps: {json.dumps(runs[-1]['modes'])} cpu {cpu:.2f} s")
    ref_steps = max(args.steps)
    for r in runs:
        ref = next(x for x in runs if x["solver"] == r["solver"] and x["steps"] == ref_steps)
        for m in MODES:
            r["modes"][m].update(
                {f"rel_{k}": relative(r["modes"][m][k], ref["modes"][m][k]) for k, _ in METRICS}
            )
    return {
        "model": str(args.model or "default"),
        "data": args.data,
        "split": args.split,
        "n": args.n,
        "seed": args.seed,
        "shift": args.shift,
        "sync_shaping": pipe.resolve_sync_shaping(args.sync_shaping),
        "reference_steps": ref_steps,
        "torch_threads": torch.get_num_threads(),
        "runs": runs,
    }


def to_markdown(result: dict) -> str:
    head = "| solver | steps | NFE | CPU s (8 s) |"
    rule = "| --- | ---: | ---: | ---: |"
    for m in MODES:
        for _, label in METRICS:
            head += f" {m} {label} (vs {result['reference_steps']}) |"
            rule += " ---: |"
    lines = [head, rule]
    for r in result["runs"]:
        line = f"| {r['solver']} | {r['steps']} | {r['nfe']} | {r['cpu_s_8s']:.2f} |"
        for m in MODES:
            for key, _ in METRICS:
                v, rel = r["modes"][m][key], r["modes"][m][f"rel_{key}"]
                line += f" {v:.3g} ({rel:+.0%}) |" if math.isfinite(rel) else f" {v:.3g} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from foley.defaults import set_offline_env
    from foley.pipelines.solvers import SOLVERS, check_solver

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="FoleyWorld dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default=None, help="pipeline folder (default: shipped)")
    parser.add_argument("--n", type=int, default=48, help="clips (quality needs >= 48)")
    parser.add_argument("--solvers", default=",".join(SOLVERS))
    parser.add_argument("--steps", default="2,4,8,16,25")
    parser.add_argument("--shift", type=float, default=None, help="schedule time shift")
    parser.add_argument("--sync-shaping", type=float, default=None, metavar="F")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-runs", type=int, default=3, help="CPU timing runs per point")
    parser.add_argument("--out", default="steps_curve.json", help="JSON output")
    args = parser.parse_args(argv)
    set_offline_env()
    args.solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    args.steps = sorted({int(s) for s in args.steps.split(",")})
    for solver in args.solvers:
        check_solver(solver, args.shift)
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{args.n} clips of {args.data} ({args.split}), model {result['model']}")
    print(to_markdown(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
