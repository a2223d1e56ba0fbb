"""MC3 vs the plain audio-video contrastive model (the SoundingActions ablation) on FoleyWorld.

    python -m benchmarks.mc3_eval --work /tmp/mc3_bench [--data DATA] [--epochs 30] [--quick]

Generates a FoleyWorld set (unless ``--data`` is given), trains both models with the same
settings, data, cache and seed (``foley train mc3 --objective mc3`` and ``--objective av``),
embeds the test split and prints one row per model: video->audio and audio->video R@1/5/10
among the test clips, and sounding-action discovery ROC-AUC against the ``positive`` column
(FoleyWorld's silent verbs, hold and look, are visible and narrated but make no sound).  The
score is the audio-video cosine for both models, and for MC3 also its consensus (minimum of the
three pairwise cosines).  A chance row is printed for reference.

``--score NAME=DIR[:av] ...`` trains nothing: it scores saved models (an MC3 folder, or a
pipeline folder whose MC3 is used; ``:av`` for a plain audio-video model, which has no text
tower) on ``--data``'s test split, e.g. on a fresh seed::

    python -m benchmarks.mc3_eval --work /tmp/mc3_fresh --data FRESH \
        --score "MC3=runs/mc3/train_mc3/model" "AV=runs/mc3/train_av/model:av" "shipped=default"
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from foley.metrics.retrieval import KS, cross_modal_recall, sounding_action_auc
from foley.models.mc3 import MC3Model
from training import train_mc3
from training.mc3_cache import build_cache


@torch.no_grad()
def embed_cache(model: MC3Model, cache, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Audio / video / text embeddings ``(n, D)`` of a cached split."""
    model.eval()
    out: dict[str, list] = {"audio": [], "video": [], "text": []}
    for i in range(0, len(cache), batch_size):
        sl = slice(i, i + batch_size)
        mel = torch.from_numpy(cache.mel[sl].astype(np.float32))
        frames = torch.from_numpy(np.array(cache.frames[sl]))
        frames = frames.permute(0, 1, 4, 2, 3).float() / 255.0
        text = torch.from_numpy(np.array(cache.text_features[sl]))
        out["audio"].append(model.encode_mel(mel).numpy())
        out["video"].append(model.encode_video(frames, prepared=True).numpy())
        out["text"].append(model.encode_text_features(text).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(model_dir: Path, data: Path, cache_dir: Path, objective: str) -> dict[str, float]:
    model = MC3Model.from_pretrained(model_dir)
    cache = build_cache(data, "test", model, cache_dir, progress=False)
    emb = embed_cache(model, cache)
    row = cross_modal_recall(emb["video"], emb["audio"])
    text = emb["text"] if objective == "mc3" else None
    row.update(sounding_action_auc(emb["audio"], emb["video"], cache.positive, text=text))
    row["test_clips"] = len(cache)
    row["silent_clips"] = int((cache.positive < 0.5).sum())
    return row


def _train(args: argparse.Namespace, objective: str, data: Path) -> tuple[Path, float]:
    parser = argparse.ArgumentParser()
    train_mc3.add_arguments(parser)
    out = args.work / f"train_{objective}"
    argv = [
        "--data", str(data), "--out", str(out), "--objective", objective,
        "--preset", args.preset, "--epochs", str(args.epochs),
        "--warmup-epochs", str(args.warmup_epochs), "--batch-size", str(args.batch_size),
        "--lr", str(args.lr), "--seed", str(args.seed), "--cache", str(args.work / "cache"),
        "--save-every", "100000", "--cpu", "--threads", str(args.threads),
    ]  # fmt: skip
    if args.quiet:
        argv.append("--quiet")
    if not args.augment:
        argv.append("--no-augment")
    start = time.perf_counter()
    train_mc3.run(parser.parse_args(argv))
    return out / "model", time.perf_counter() - start


def score_saved(args: argparse.Namespace) -> int:
    """``--score``: one row per saved model on ``--data``'s test split."""
    from foley.defaults import mc3_dir_or_default
    from foley.errors import InputError

    if args.data is None:
        raise InputError("--score needs --data (a dataset with a test split)")
    args.work.mkdir(parents=True, exist_ok=True)
    rows = {}
    for spec in args.score:
        name, _, path = spec.partition("=")
        path, _, kind = path.partition(":")
        objective = "av" if kind == "av" else "mc3"
        folder = mc3_dir_or_default(None if path == "default" else path)
        rows[name] = evaluate(folder, args.data, args.work / "cache", objective)
    first = next(iter(rows.values()))
    print(f"\n{args.data} test: {first['test_clips']} clips ({first['silent_clips']} silent)")
    cols = [f"v2a_R@{k}" for k in KS] + [f"a2v_R@{k}" for k in KS]
    print("| model | " + " | ".join(cols) + " | AUC (a-v cos) | AUC (consensus) |")
    print("|" + "---|" * (len(cols) + 3))
    chance = [f"{min(1.0, k / first['test_clips']):.3f}" for k in KS] * 2
    print("| chance | " + " | ".join(chance) + " | 0.500 | 0.500 |")
    for name, row in rows.items():
        cons = f"{row['auc_consensus']:.3f}" if "auc_consensus" in row else "-"
        cells = [f"{row[c]:.3f}" for c in cols] + [f"{row['auc_av']:.3f}", cons]
        print(f"| {name} | " + " | ".join(cells) + " |")
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="working folder")
    parser.add_argument("--data", type=Path, help="existing dataset (default: generate one)")
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--clips-per-video", type=int, default=8)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2, help="dataset generation workers")
    parser.add_argument("--preset", default="small", choices=sorted(train_mc3.PRESETS))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--warmup-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (training)")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--quick", action="store_true", help="20 videos, 6 epochs (a smoke run)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--score", nargs="+", metavar="NAME=DIR[:av]", help="score saved models, train nothing"
    )
    args = parser.parse_args(argv)
    if args.score:
        return score_saved(args)
    if args.quick:
        args.videos, args.epochs, args.warmup_epochs = 20, 6, 2
    args.work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    data = args.data
    if data is None:
        from foley.data.foleyworld.generate import generate_dataset
        from foley.data.foleyworld.scene import FoleyWorldSettings

        data = args.work / "foleyworld"
        settings = FoleyWorldSettings(
            videos=args.videos,
            clips_per_video=args.clips_per_video,
            seed=args.seed,
            test_fraction=args.test_fraction,
        )
        if not (data / "foleyworld.json").exists():
            generate_dataset(data, settings, workers=args.workers, progress=not args.quiet)

    rows = {}
    for objective in ("av", "mc3"):
        model_dir, seconds = _train(args, objective, data)
        rows[objective] = evaluate(model_dir, data, args.work / "cache", objective)
        rows[objective]["train_seconds"] = round(seconds, 1)

    n = rows["mc3"]["test_clips"]
    cols = [f"v2a_R@{k}" for k in KS] + [f"a2v_R@{k}" for k in KS]
    print(f"\nFoleyWorld test: {n} clips ({rows['mc3']['silent_clips']} silent), "
          f"preset {args.preset}, {args.epochs} epochs, batch {args.batch_size}, "
          f"augment {args.augment}, CPU")  # fmt: skip
    header = ["model", *cols, "AUC (a-v cos)", "AUC (consensus)", "train s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    chance = [f"{min(1.0, k / n):.3f}" for k in KS] * 2
    print("| chance | " + " | ".join(chance) + " | 0.500 | 0.500 | - |")
    names = {"av": "plain AV contrastive", "mc3": "MC3 (pairs + consensus)"}
    for objective, row in rows.items():
        cons = f"{row['auc_consensus']:.3f}" if "auc_consensus" in row else "-"
        cells = [f"{row[c]:.3f}" for c in cols] + [f"{row['auc_av']:.3f}", cons]
        print(f"| {names[objective]} | " + " | ".join(cells) + f" | {row['train_seconds']} |")
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
