"""Do video features know *when* a clip sounds? Onset F1 against FoleyWorld's ground truth.

    python benchmarks/sync_eval.py FEAT --sync RUNS/sync/model [--probe FEAT_MC3 ...] [--hold N]

* ``--sync``: a trained :class:`~foley.models.sync.SyncModel`: peaks of its onset curve on the
  validation clips of ``FEAT`` (threshold 0.5), matched to the ground-truth event onsets
  (FoleyWorld's ``.gt.npz`` beside each clip) within +-50 ms.
* ``--probe``: features folders whose ``video_feats.npy`` hold frozen per-frame features (e.g.
  MC3's video tower): a small temporal-conv probe (the SyncModel's head) is trained on the train
  split's features to predict the same onset targets, for ``--probe-epochs`` epochs, and scored
  the same way. A probe near the ``audio-detected`` row knows the timing; near ``no onsets``
  it does not. A folder written with the ``sync+efficientnet`` encoder
  (:class:`~foley.models.pretrained_video.PretrainedVideoEncoder`) is probed three times: on the
  sync encoder's columns, on EfficientNet-Lite0's and on both; ``--hold N`` adds EfficientNet's
  (and both) with its features computed every N-th frame and held between (``frame_stride``).

Reference rows from the same clips: onsets detected in the true audio (``detect_onsets``, the
training target) and a detector that finds nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def gt_onsets(clips: list[dict]) -> list[np.ndarray]:
    out = []
    for clip in clips:
        z = np.load(clip["clip_path"].replace(".mp4", ".gt.npz"))
        out.append(np.array([e["onset"] for e in json.loads(str(z["events_json"]))]))
    return out


def f1(pred: list[np.ndarray], ref: list[np.ndarray]) -> float:
    from foley.metrics.onsets import match_onsets

    return float(np.mean([match_onsets(p, r).f1 for p, r in zip(pred, ref)]))


def probe(
    root: Path,
    cfg,
    epochs: int,
    seed: int = 0,
    columns: slice = slice(None),
    hold: int = 1,
    held: slice = slice(0, 0),
) -> list[np.ndarray]:
    """Train the head on frozen features of ``root/train``; onsets found on ``root/val``.

    columns: the feature columns probed; hold, held: the columns ``held`` (of all) are computed
    every ``hold``-th frame and held between, as ``PretrainedVideoEncoder(frame_stride=hold)``.
    """
    from foley.models.denoiser import resample_to_latent_rate
    from foley.models.sync import curve_onsets, sync_loss
    from training.features import SplitFeatures
    from training.train_sync import split_targets

    torch.manual_seed(seed)
    train, val = SplitFeatures(root, "train"), SplitFeatures(root, "val")
    y_train = torch.from_numpy(split_targets(train, cfg)[0])
    x_train, x_val = (
        torch.from_numpy(held_features(np.asarray(s.video_feats, np.float32), hold, held)[
            ..., columns])
        for s in (train, val)
    )  # fmt: skip
    dim, lat = x_train.shape[-1], cfg.latents_per_clip
    head = torch.nn.Sequential(
        torch.nn.Conv1d(dim, 64, 5, padding=2),
        torch.nn.GELU(),
        torch.nn.Conv1d(64, 2, 5, padding=2),
    )

    def forward(x):
        x = resample_to_latent_rate(F.layer_norm(x, (dim,)), lat, cfg.latents_per_frame)
        return head(x.transpose(1, 2)).transpose(1, 2)

    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(epochs):
        perm = torch.randperm(len(x_train))
        for lo in range(0, len(perm) - 7, 8):
            j = perm[lo : lo + 8]
            loss = sync_loss(forward(x_train[j]), y_train[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        curves = torch.sigmoid(forward(x_val)[..., 0]).numpy()
    return [curve_onsets(c, cfg) for c in curves]


def held_features(x: np.ndarray, hold: int, held: slice) -> np.ndarray:
    """``(n, T, dim)`` with the columns ``held`` taken every ``hold``-th frame and repeated."""
    if hold > 1:
        x = x.copy()
        idx = (np.arange(x.shape[1]) // hold) * hold
        x[:, :, held] = x[:, idx, held]
    return x


def probe_sets(root: Path, hold: int) -> list[tuple[str, dict]]:
    """(name, probe kwargs) per feature set of a features folder."""
    meta = json.loads((root / "features.json").read_text())
    kind = meta.get("video_encoder_kind") or "frozen"
    if kind != "sync+efficientnet":
        return [(f"{kind} features", {})]
    config = json.loads((root / meta["video_encoder"] / "config.json").read_text())
    d = int(config["sync_config"]["dim"])
    sets = [
        ("sync CNN features", {"columns": slice(0, d)}),
        ("EfficientNet-Lite0 features", {"columns": slice(d, None)}),
        ("sync + EfficientNet-Lite0 features", {}),
    ]
    if hold > 1:
        sets += [
            (f"EfficientNet-Lite0 every {hold} frames", {"columns": slice(d, None)}),
            (f"sync + EfficientNet-Lite0 every {hold} frames", {}),
        ]
        for _, kw in sets[-2:]:
            kw.update(hold=hold, held=slice(d, None))
    return sets


@torch.no_grad()
def sync_model_onsets(path: str, root: Path, cfg) -> list[np.ndarray]:
    from foley.models.sync import SyncModel, curve_onsets
    from training.features import SplitFeatures
    from training.train_sync import frames_batch

    model = SyncModel.from_pretrained(path).eval()
    val = SplitFeatures(root, "val")
    found = []
    for lo in range(0, len(val), 16):
        idx = list(range(lo, min(len(val), lo + 16)))
        logits = model(frames_batch(val, idx), cfg.latents_per_clip)
        found += [curve_onsets(c, cfg) for c in torch.sigmoid(logits[..., 0]).numpy()]
    return found


def main(argv: list[str] | None = None) -> int:
    from training.features import SplitFeatures, read_config
    from training.train_sync import split_targets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="features folder (frames; FoleyWorld clips)")
    parser.add_argument("--sync", help="SyncModel folder")
    parser.add_argument("--probe", nargs="*", default=[], help="features folders to probe")
    parser.add_argument("--probe-epochs", type=int, default=15)
    parser.add_argument(
        "--hold", type=int, default=1, help="also probe EfficientNet computed every N frames"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = Path(args.features)
    cfg = read_config(root)
    val = SplitFeatures(root, "val")
    ref = gt_onsets(val.clips)
    rows = [
        ("onsets detected in the true audio (the training target)",
         f1([np.asarray(o) for o in split_targets(val, cfg)[1]], ref)),
        ("no onsets", f1([np.zeros(0)] * len(ref), ref)),
    ]  # fmt: skip
    if args.sync:
        rows.append((f"SyncModel {args.sync}", f1(sync_model_onsets(args.sync, root, cfg), ref)))
    for other in args.probe:
        for kind, kwargs in probe_sets(Path(other), args.hold):
            name = f"probe on {other} ({kind}, {args.probe_epochs} epochs)"
            rows.append((name, f1(probe(Path(other), cfg, args.probe_epochs, **kwargs), ref)))
    print(f"{len(ref)} validation clips of {root}, onset F1 vs ground truth (+-50 ms)")
    print("| detector | onset F1 |\n| --- | ---: |")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
