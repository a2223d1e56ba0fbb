"""Train AudioScope (MixIT separation + on-screen classifier) without labels (accelerate).

Each step forms mixtures of mixtures: clip ``a``'s audio plus the audio of a clip ``b`` of
another video. The separator splits the sum into ``num_sources`` sources; MixIT
(``foley.models.audioscope.mixit_loss``) finds the best assignment of sources to the two
mixtures. Noisy on-screen labels: a source assigned to ``b``'s mixture is off screen; a source
assigned to ``a``'s takes the label of the audio-visual coincidence model, the frozen MC3
(``--mc3``, the shipped one by default): ``sigmoid((cos(src, video_a) - cos(src, video_b)) /
0.05)``, zero for near-silent sources. No ground truth is read: only each clip's mp4.

The clips are decoded once into ``OUT/cache/`` (audio, frames at the model's rate and size,
MC3 video embeddings, the sync model's curves), then training reads arrays. ``--context sync``
gives the classifier the sync encoder's curves as video context (coincidence in time, see
``foley.models.audioscope``); with ``--freeze-separator`` it also caches, once, the frozen
separator's sources of ``--pairs-per-clip`` mixtures of mixtures per clip as the classifier's
inputs (``OUT/cache/<split>_pairs.npz``: features, noisy labels), so a step costs
milliseconds. Resumable; the model is exported to ``OUT/model`` at every validation (its MixIT
loss on the val split is logged).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from foley.errors import InputError
from training.config import add_config_arguments, config_from_args, opt, trainer_main


@dataclass(frozen=True)
class AudioScopeConfig:
    """Settings of ``foley train audioscope`` (one field per command-line option)."""

    data: str = opt(
        "", "Ego4D-Sounds-format folder (train.tsv, val.tsv)", positional=True, required=True
    )
    out: str = opt("", "training folder", required=True, short="-o")
    labels: str = opt("sync", "coincidence model of the noisy labels", choices=("sync", "mc3"))
    mc3: str = opt("", "MC3 folder (default: the shipped one)")
    sync: str = opt("", "SyncModel folder (default: the shipped video_encoder)")
    init: str = opt("", "start from this AudioScope folder (its architecture wins)")
    freeze_separator: bool = opt(False, "train the on-screen classifier only")
    context: str = opt("tokens", "classifier's video context", choices=("tokens", "sync"))
    pairs_per_clip: int = opt(4, "--context sync --freeze-separator: cached mixtures per clip")
    max_clips: int = opt(1200, "train clips decoded into the cache (0: all)")
    val_clips: int = opt(64)
    steps: int = opt(3000)
    batch_size: int = opt(8)
    lr: float = opt(0.001)
    num_sources: int = opt(4)
    channels: int = opt(128)
    num_blocks: int = opt(8)
    classifier_weight: float = opt(
        5.0, "weight of the classifier's BCE; 0: train the separator alone (MixIT only)"
    )
    video_dropout: float = opt(0.2, "share of steps whose classifier sees no video")
    label_threshold: float = opt(
        0.0, "train on hard noisy labels (label > this); 0: the soft labels themselves"
    )
    weighting: str = opt(
        "relative",
        "how the exported model turns probabilities into source weights (AudioScope.weights)",
        choices=("probability", "relative"),
    )
    val_every: int = opt(200)
    max_minutes: float = opt(0.0, "stop (and export) after")
    threads: int = opt(0, "torch CPU threads (0: default)")
    seed: int = opt(0)
    cpu: bool = opt(False)


@torch.no_grad()
def build_cache(
    data: Path, split: str, out: Path, model_cfg, judges, limit: int, seed: int
) -> dict:
    """Decode ``limit`` clips of a split (a random subset, fixed by ``seed``) once into
    ``out/<split>_*.npy``: audio (n, N) float32, frames (n, T', 3, s, s) uint8, MC3 video
    embeddings (n, 256), the sync model's predicted (onset, level) curves (n, L, 2) and the
    clips' video_uid. ``judges``: (MC3Model, SyncModel)."""
    from foley.config import DEFAULT_CONFIG
    from foley.data.ego4d import ClipDataset
    from foley.models.audioscope import video_input

    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / f"{split}.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        arrays = {k: np.load(out / f"{split}_{k}.npy", mmap_mode="r") for k in meta["arrays"]}
        return {**arrays, "video_uid": meta["video_uid"]}
    ds = ClipDataset(data, split, DEFAULT_CONFIG)
    order = np.random.default_rng(seed).permutation(len(ds))
    idx = np.sort(order[: limit or len(ds)])
    mc3, sync = judges
    audio, frames, video, curves, uids = [], [], [], [], []
    for i in tqdm(idx, desc=f"audioscope cache {split}", unit="clip"):
        fr, wave = ds.load_clip(int(i))
        t = torch.from_numpy(np.ascontiguousarray(fr)).permute(0, 3, 1, 2).float() / 255
        video.append(mc3.encode_video(t.unsqueeze(0))[0].numpy())
        curves.append(sync.encode(t.unsqueeze(0), ds.cfg.num_latents(wave.size))[1][0].numpy())
        if model_cfg.context == "tokens":
            small = video_input(fr, ds.cfg.fps, model_cfg.video_fps, model_cfg.frame_size)
            frames.append((small * 255).round().to(torch.uint8).numpy())
        audio.append(wave.astype(np.float32))
        uids.append(ds.records[int(i)].video_uid)
    arrays = {
        "audio": np.stack(audio),
        "mc3_video": np.stack(video),
        "sync_curves": np.stack(curves),
    }
    if frames:
        arrays["frames"] = np.stack(frames)
    for k, v in arrays.items():
        np.save(out / f"{split}_{k}.npy", v)
    meta_path.write_text(json.dumps({"arrays": list(arrays), "video_uid": uids}))
    return {**arrays, "video_uid": uids}


def draw_pairs(
    uids: list[str], rng: np.random.Generator, batch: int, a: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """(a, b) clip indices, ``b`` from another video than ``a`` (another clip of the same
    video when the split has only one video); ``a`` drawn unless given."""
    n = len(uids)
    if n < 2:
        raise InputError("AudioScope training needs at least 2 clips in each split")
    if a is None:
        a = rng.choice(n, batch, replace=n < batch)
    b = []
    for i in a:
        others = [j for j in range(n) if uids[j] != uids[i]] or [j for j in range(n) if j != i]
        b.append(others[int(rng.integers(len(others)))])
    return a, np.array(b)


def batch_tensors(cache: dict, a: np.ndarray, b: np.ndarray, device) -> dict:
    def rows(name: str, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(cache[name][np.sort(idx)][np.argsort(np.argsort(idx))]))

    batch = {
        "mixtures": torch.stack([rows("audio", a), rows("audio", b)], 1).to(device),  # (b, 2, N)
        "video_a": rows("mc3_video", a).to(device),
        "video_b": rows("mc3_video", b).to(device),
        "curves_a": rows("sync_curves", a).to(device),  # (b, L, 2)
    }
    if "frames" in cache:
        batch["frames"] = rows("frames", a).float().div(255).to(device)  # (b, T', 3, s, s)
    return batch


@torch.no_grad()
def curve_correlation(sources: torch.Tensor, video_curves: torch.Tensor) -> torch.Tensor:
    """sources (batch, M, N), the sync model's curves of the video (batch, L, 2) -> (batch, M):
    mean Pearson correlation, over (onset, level), of each source's own curves
    (``foley.models.sync.sync_targets``) with the video's."""
    from foley.models.sync import sync_targets

    b, m, _ = sources.shape
    waves = sources.flatten(0, 1).cpu().numpy()
    audio = torch.from_numpy(np.stack([sync_targets(w) for w in waves]))
    audio = audio[:, : video_curves.shape[1]].view(b, m, -1, 2).to(video_curves.device)
    a = audio - audio.mean(2, keepdim=True)
    v = (video_curves - video_curves.mean(1, keepdim=True)).unsqueeze(1)
    return ((a * v).sum(2) / (a.norm(dim=2) * v.norm(dim=2) + 1e-6)).mean(-1)


@torch.no_grad()
def sync_coincidence(sync, frames: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """(batch, M) :func:`curve_correlation` of sources with the contacts the sync model sees in
    ``frames`` (batch, T, 3, S, S) in [0, 1] at ``cfg.fps``."""
    from foley.config import DEFAULT_CONFIG

    curves = sync.encode(frames, DEFAULT_CONFIG.num_latents(sources.shape[-1]))[1]
    return curve_correlation(sources, curves)


@torch.no_grad()
def noisy_labels(mc3, sources, assignment, batch: dict, kind: str) -> torch.Tensor:
    """On-screen labels (batch, M) in [0, 1]: 0 for sources of the other clip's mixture and
    near-silent ones; for the others the coincidence of the source with clip ``a``'s video:
    ``sync``: sigmoid((curve correlation - 0.2) / 0.1); ``mc3``: sigmoid((cos(src, video_a) -
    cos(src, video_b)) / 0.05)."""
    b, m, n = sources.shape
    if kind == "sync":
        coincide = torch.sigmoid((curve_correlation(sources, batch["curves_a"]) - 0.2) / 0.1)
    else:
        emb = mc3.encode_audio(sources.flatten(0, 1)).view(b, m, -1)
        sim_a = (emb * batch["video_a"][:, None]).sum(-1)
        coincide = torch.sigmoid((sim_a - (emb * batch["video_b"][:, None]).sum(-1)) / 0.05)
    power = sources.pow(2).mean(-1)
    mix_power = sources.sum(1).pow(2).mean(-1, keepdim=True)
    active = (power > 1e-3 * mix_power).float()
    return coincide * active * (assignment == 0).float()


def step_losses(model, mc3, batch: dict, args, rng: np.random.Generator) -> dict:
    from foley.models.audioscope import mixit_loss

    mixtures = batch["mixtures"]
    with torch.set_grad_enabled(torch.is_grad_enabled() and not args.freeze_separator):
        out_sources = model.separate(mixtures.sum(1))
    mixit, assignment = mixit_loss(mixtures, out_sources)
    if not args.classifier_weight:  # separator only: no noisy labels, no classifier
        return {"mixit": mixit.mean()}
    labels = harden(noisy_labels(mc3, out_sources, assignment, batch, args.labels), args)
    drop = rng.random() < args.video_dropout
    if model.config.context == "sync":
        curves = None if drop else batch["curves_a"]
        logits = model.classify(out_sources.detach(), None, video_curves=curves)
    else:
        logits = model.classify(out_sources.detach(), None if drop else batch["frames"])
    bce = F.binary_cross_entropy_with_logits(logits, labels)
    return {"mixit": mixit.mean(), "bce": bce}


@torch.no_grad()
def build_pair_cache(model, cache: dict, path: Path, pairs_per_clip: int, seed: int) -> dict:
    """The frozen separator's sources of ``pairs_per_clip`` mixtures of mixtures per clip, as
    the ``"sync"`` classifier's inputs, once: ``features`` (P, M, L, C) float16
    (``AudioScope.source_features``), ``labels`` (P, M) (:func:`noisy_labels`, sync) and ``a``
    (P,) the clip whose video is on screen (its curves: ``cache["sync_curves"][a]``)."""
    from foley.models.audioscope import mixit_loss

    if path.is_file():
        return dict(np.load(path))
    rng = np.random.default_rng([seed, 7])
    n = len(cache["video_uid"])
    a_all = np.concatenate([rng.permutation(n) for _ in range(pairs_per_clip)])
    feats, labels, a_done = [], [], []
    for lo in tqdm(range(0, len(a_all), 8), desc=f"audioscope pairs {path.stem}", unit="batch"):
        a = a_all[lo : lo + 8]
        _, b = draw_pairs(cache["video_uid"], rng, len(a), a)
        batch = batch_tensors(cache, a, b, "cpu")
        sources = model.separate(batch["mixtures"].sum(1))
        _, assignment = mixit_loss(batch["mixtures"], sources)
        labels.append(noisy_labels(None, sources, assignment, batch, "sync").numpy())
        feats.append(model.source_features(sources).half().numpy())
        a_done.append(a)
    pairs = {"features": np.concatenate(feats), "labels": np.concatenate(labels)}
    pairs["a"] = np.concatenate(a_done)
    np.savez(path, **pairs)
    return pairs


def harden(labels: torch.Tensor, args) -> torch.Tensor:
    """``--label-threshold t`` > 0: the soft noisy labels made 0/1 (label > t); else as is."""
    t = getattr(args, "label_threshold", 0.0)
    return (labels > t).to(labels.dtype) if t > 0 else labels


def pair_step_losses(
    model, pairs: dict, cache: dict, idx: np.ndarray, video: bool, args=None
) -> dict:
    """BCE of the ``"sync"`` classifier on cached pairs ``idx``, with or without the video
    (against :func:`harden`'s labels)."""
    feats = torch.from_numpy(pairs["features"][idx]).float()
    curves = torch.from_numpy(np.array(cache["sync_curves"][np.sort(pairs["a"][idx])]))
    curves = curves[np.argsort(np.argsort(pairs["a"][idx]))]
    logits = model.classify_features(feats, curves if video else None)
    labels = harden(torch.from_numpy(pairs["labels"][idx]).float(), args)
    return {"bce": F.binary_cross_entropy_with_logits(logits, labels)}


def build_model(args: AudioScopeConfig, sync):
    """A new AudioScope, or ``--init``'s; with another ``--context`` than ``--init``'s, its
    separator is kept and a new classifier built. The ``"sync"`` classifier's sync encoder is
    ``sync``'s weights (frozen)."""
    from foley.config import DEFAULT_CONFIG
    from foley.models.audioscope import SEPARATOR_MODULES, AudioScope

    weighting = getattr(args, "weighting", "relative")
    init = AudioScope.from_pretrained(args.init) if args.init else None
    if init is not None and init.config.context == args.context:
        init.register_to_config(weighting=weighting)
        return init
    base = {k: v for k, v in (init.config if init is not None else {}).items() if k[0] != "_"}
    if init is None:
        base = dict(
            num_sources=args.num_sources, channels=args.channels, num_blocks=args.num_blocks
        )
    if args.context == "sync":
        sync_config = {k: v for k, v in sync.config.items() if k[0] != "_"}
        base.update(context="sync", sync_config=sync_config, video_fps=DEFAULT_CONFIG.fps)
        base.update(frame_size=DEFAULT_CONFIG.frame_size)
    else:
        base.update(context="tokens", sync_config=None, video_fps=8.0, frame_size=48)
    model = AudioScope(**{**base, "weighting": weighting})
    if init is not None:
        for name in SEPARATOR_MODULES:
            getattr(model, name).load_state_dict(getattr(init, name).state_dict())
    if args.context == "sync":
        model.sync.load_state_dict(sync.state_dict())
    return model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, AudioScopeConfig)


def run(args: AudioScopeConfig | argparse.Namespace) -> int:
    args = config_from_args(AudioScopeConfig, args)
    from foley.defaults import DEFAULT_MODEL_DIR, mc3_dir_or_default
    from foley.models.audioscope import SEPARATOR_MODULES
    from foley.models.mc3 import MC3Model
    from foley.models.sync import SyncModel
    from training.common import start_run
    from training.loop import TrainLoop, cosine_schedule

    if not args.classifier_weight and args.freeze_separator:
        raise InputError("--classifier-weight 0 with --freeze-separator trains nothing")
    accelerator, out = start_run(args)
    mc3 = MC3Model.from_pretrained(mc3_dir_or_default(args.mc3 or None)).eval()
    sync = SyncModel.from_pretrained(args.sync or DEFAULT_MODEL_DIR / "video_encoder").eval()
    model = build_model(args, sync)
    with accelerator.main_process_first():
        train = build_cache(
            Path(args.data),
            "train",
            out / "cache",
            model.config,
            (mc3, sync),
            args.max_clips,
            args.seed,
        )
        val = build_cache(
            Path(args.data),
            "val",
            out / "cache",
            model.config,
            (mc3, sync),
            args.val_clips,
            args.seed,
        )
    cached = args.freeze_separator and model.config.context == "sync"
    if cached:
        with accelerator.main_process_first():
            pairs = {
                split: build_pair_cache(
                    model.eval(),
                    c,
                    out / "cache" / f"{split}_pairs.npz",
                    args.pairs_per_clip,
                    args.seed,
                )
                for split, c in (("train", train), ("val", val))
            }
    mc3 = mc3.to(accelerator.device)
    frozen = {"sync", *(SEPARATOR_MODULES if args.freeze_separator else ())}
    if not args.classifier_weight:  # separator only: the classifier keeps its weights
        frozen = {name.split(".")[0] for name, _ in model.named_parameters()} - {*SEPARATOR_MODULES}
    params = [p for name, p in model.named_parameters() if name.split(".")[0] not in frozen]
    optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    sched = cosine_schedule(optim, args.steps, min(200, args.steps // 10))
    model, optim, sched = accelerator.prepare(model, optim, sched)
    (out / "train_config.json").write_text(json.dumps(asdict(args), indent=2))

    def export(step: int) -> dict:
        unwrapped = accelerator.unwrap_model(model).eval()
        rng = np.random.default_rng(12345)
        losses = []
        with torch.no_grad():
            if cached:
                idx = np.arange(len(pairs["val"]["a"]))
                for video in (True, False):
                    losses.append(pair_step_losses(unwrapped, pairs["val"], val, idx, video, args))
                losses = [{"bce": losses[0]["bce"], "bce_audio_only": losses[1]["bce"]}]
            for _ in range(0 if cached else 4):
                a, b = draw_pairs(val["video_uid"], rng, args.batch_size)
                batch = batch_tensors(val, a, b, accelerator.device)
                losses.append(step_losses(unwrapped, mc3, batch, args, rng))
        unwrapped.train()
        metrics = {k: float(np.mean([float(x[k]) for x in losses])) for k in losses[0]}
        metrics = {f"val_{k}": v for k, v in metrics.items()}
        if accelerator.is_main_process:
            unwrapped.save_pretrained(out / "model")
        return metrics

    loop = TrainLoop.validating(accelerator, args, desc="audioscope", log_every=20, export=export)
    model.train()
    for _ in loop:
        rng = loop.rng(args.seed)
        if cached:
            idx = rng.choice(len(pairs["train"]["a"]), args.batch_size)
            video = rng.random() >= args.video_dropout
            losses = pair_step_losses(model, pairs["train"], train, idx, video, args)
        else:
            a, b = draw_pairs(train["video_uid"], rng, args.batch_size)
            batch = batch_tensors(train, a, b, accelerator.device)
            losses = step_losses(model, mc3, batch, args, rng)
        loss = args.classifier_weight * losses["bce"] if "bce" in losses else 0.0
        if not args.freeze_separator:
            loss = loss + losses["mixit"]
        loop.optimize(loss, optim, model.parameters(), 5.0, sched)
        loop.end_step(**{k: v.item() for k, v in losses.items()})
    return 0


def main(argv: list[str] | None = None) -> int:
    return trainer_main(AudioScopeConfig, run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
