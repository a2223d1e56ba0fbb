"""Train the AVS (TPAVI) segmentation model on clips with ground-truth sounding masks.

Two AVSBench settings: ``--setting single`` (semi-supervised: only the first sampled frame of
each clip is labelled) and ``--setting multi`` (every frame labelled).  The loss is BCE plus
``--avm-weight`` x AVSBench's audio-visual matching KL term.  ``--zero-audio`` trains the same
network on silence (the visual-saliency-only baseline).  ``--frame-diff`` gives the network
each frame's difference to its predecessor (motion; ``AVSModel(frame_diff=True)``): the cache
then also holds every kept frame's predecessor at the video rate.

Clips are decoded once into ``OUT/features/<split>.npz`` (every ``--frame-stride``-th frame,
audio and masks); training never touches mp4.  Batches are drawn from a generator seeded by
``(seed, step)``, so a resumed run sees exactly the batches the uninterrupted run would.

Example::

    foley train avs --data DATA --out runs/avs-multi --setting multi --steps 400
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.errors import InputError
from training.config import add_config_arguments, config_from_args, opt

FEATURES_DIR = "features"

NEGATIVE_KINDS = ("shifted", "other", "ambience", "silence", "swap")
NEGATIVE_MIX = "shifted=0.5,other=0.25,ambience=0.15,silence=0.1"


def parse_mix(mix: str) -> np.ndarray:
    """``"shifted=0.3,other=0.5,..."`` -> probabilities over NEGATIVE_KINDS (normalised)."""
    p = dict.fromkeys(NEGATIVE_KINDS, 0.0)
    for part in filter(None, mix.split(",")):
        name, _, value = part.partition("=")
        if name.strip() not in p:
            raise InputError(f"--negative-mix: unknown kind {name!r} (one of {NEGATIVE_KINDS})")
        p[name.strip()] = float(value)
    total = sum(p.values())
    if total <= 0:
        raise InputError(f"--negative-mix {mix!r}: no positive weight")
    return np.array([p[k] / total for k in NEGATIVE_KINDS])


@dataclass(frozen=True)
class AVSConfig:
    """Settings of ``foley train avs`` (one field per command-line option)."""

    data: str = opt("", "dataset folder (train.tsv, clips, .gt.npz)", required=True)
    out: str = opt("", "training folder (checkpoints, export)", required=True)
    setting: str = opt("multi", choices=("single", "multi"))
    split: str = opt("train")
    steps: int = opt(400)
    batch_size: int = opt(4, "clips per step")
    frames: int = opt(5, "frames sampled per clip and step")
    frame_stride: int = opt(4, "cache every k-th frame")
    lr: float = opt(0.002)
    avm_weight: float = opt(0.5)
    pos_weight: float = opt(1.0, "BCE weight of objects")
    frame_weight: float = opt(0.0, "weight of the per-frame BCE (avs_loss)")
    contrast_weight: float = opt(
        0.0, "weight of the audio-visual contrastive term (audio_visual_contrastive_loss)"
    )
    contrast_temperature: float = opt(0.1)
    zero_audio: bool = opt(False, "visual-only baseline")
    frame_diff: bool = opt(
        False, "also feed each frame's difference to its predecessor (AVSModel frame_diff)"
    )
    negatives: float = opt(
        0.0,
        "fraction of clips per step given mismatched audio (time-shifted, another clip's, "
        "ambience only, silence) with the masks it explains (see sample_batch)",
    )
    negative_mix: str = opt(
        "shifted=0.5,other=0.25,ambience=0.15,silence=0.1",
        "how the negatives split between the kinds (weights, normalised)",
    )
    content_gate: bool = opt(
        False, "add the audio-visual key similarity to the logits (AVSModel content_gate)"
    )
    audio_window: int = opt(48, "log-mel frames of audio per video frame")
    input_size: int = opt(64, "frames resized to this (px)")
    stage_channels: str = opt("16,32,64")
    channels: int = opt(32)
    max_clips: int = opt(0, "use at most this many clips")
    max_minutes: float = opt(0.0, "stop (and save) after")
    save_every: int = opt(100)
    log_every: int = opt(10)
    seed: int = opt(0)
    cpu: bool = opt(False, "force the CPU")
    threads: int = opt(0, "torch CPU threads (0: torch's default)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, AVSConfig)


# ---- pre-extraction --------------------------------------------------------------------------
def extract_avs_clips(
    data: str | Path,
    split: str,
    cache_dir: str | Path,
    cfg: AVConfig = DEFAULT_CONFIG,
    frame_stride: int = 4,
    max_clips: int = 0,
    predecessors: bool = False,
) -> dict[str, np.ndarray]:
    """Decode a split once into the feature store ``cache_dir/avs_<split>`` (reused when its
    settings match; :mod:`training.store`).

    Returns ``frames`` (n, Tc, S, S, 3) uint8, ``audio`` (n, N) float32 (the clip's track),
    ``action`` (n, N) float32 (ground-truth action-only audio), ``masks``
    (n, Tc, S, S) bool, ``frame_index`` (Tc,) int (index of each kept frame at ``cfg.fps``),
    ``sources`` (n,) int (distinct visible sounding objects per clip), ``clip_id`` (n,) str and
    ``material`` (n,) str (:func:`clip_materials`; read from the ground truth, not cached);
    arrays memory-mapped. With ``predecessors``, also ``prev_frames`` (n, Tc, S, S, 3) uint8:
    the frame before each kept one at ``cfg.fps`` (the first frame of the clip is its own
    predecessor); a store with them also serves a request without.
    """
    from foley.data.ego4d import ClipDataset
    from training.store import FeatureStore, StoreWriter

    path = Path(cache_dir) / f"avs_{Path(split).stem}"
    settings = {"stride": frame_stride, "max_clips": max_clips, "cfg": cfg.to_dict()}
    store = FeatureStore.open(path, settings)
    if store is None or (predecessors and "prev_frames" not in store):
        ds = ClipDataset(data, split, cfg, ground_truth=True)
        n = len(ds) if not max_clips else min(max_clips, len(ds))
        if n == 0:
            raise InputError(f"{data}: split {split!r} has no clips")
        store = _decode_avs_clips(ds, n, StoreWriter(path, settings, n), frame_stride, predecessors)
    names = ("frames", "audio", "action", "masks", "sources", "frame_index")
    names += ("prev_frames",) if predecessors else ()
    arrays = {k: store[k] for k in names}
    arrays["clip_id"] = np.array(store.meta["clip_id"])
    arrays["material"] = clip_materials(data, split, arrays["clip_id"])
    return arrays


def _decode_avs_clips(ds, n: int, writer, frame_stride: int, predecessors: bool):
    """The first ``n`` clips of ``ds`` (with ground truth) into the store ``writer`` makes."""
    cfg = ds.cfg
    keep = np.arange(0, cfg.frames_per_clip, frame_stride)
    prev = np.maximum(keep - 1, 0)
    keys = ("frames", "audio", "action", "masks", "sources")
    keys += ("prev_frames",) if predecessors else ()
    out: dict[str, list] = {k: [] for k in keys}
    clip_ids = []
    for i in tqdm(range(n), desc=f"decoding {Path(writer.path).name}", leave=False):
        item = ds[i]
        frames = (item["frames"][keep].permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
        out["frames"].append(frames.numpy())
        if predecessors:
            before = (item["frames"][prev].permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
            out["prev_frames"].append(before.numpy())
        out["audio"].append(item["audio"].numpy())
        out["action"].append(item["gt"]["action"].numpy())
        out["masks"].append(item["gt"]["masks"][keep].numpy().astype(bool))
        out["sources"].append(count_sources(json.loads(item["gt"]["events_json"])))
        clip_ids.append(item["meta"]["clip_id"])
    for k, v in out.items():
        writer.save(k, np.stack(v))
    writer.save("frame_index", keep)
    return writer.commit({"clip_id": clip_ids})


def visible_materials(events: list[dict]) -> str:
    """The materials of a clip's visible sounding events, sorted and comma-joined ('' if none)."""
    return ",".join(sorted({str(e.get("material", "")) for e in events if e.get("visible", True)}))


def clip_materials(data: str | Path, split: str, clip_ids) -> np.ndarray:
    """(n,) str: :func:`visible_materials` of each clip, from its ``.gt.npz`` (only the small
    ``events_json`` entry is read); '' where a clip has no ground truth."""
    from foley.data.ego4d import read_metadata, split_path

    table = split_path(data, split)
    if not Path(table).exists():  # a cache kept without its dataset: materials unknown
        return np.full(len(clip_ids), "")
    paths = {r.clip_id: r.gt_path(data) for r in read_metadata(table)}
    out = []
    for cid in clip_ids:
        path = paths.get(str(cid))
        if path is None or not Path(path).exists():
            out.append("")
            continue
        with np.load(path, allow_pickle=False) as z:
            out.append(visible_materials(json.loads(str(z["events_json"]))))
    return np.array(out)


def count_sources(events: list[dict]) -> int:
    """Distinct visible sounding objects among a clip's ground-truth events."""
    keys = set()
    for e in events:
        if e.get("visible", True):
            keys.add(str(e.get("object", e.get("noun", e.get("material", "")))))
    return len(keys)


def sample_batch(
    arrays: dict[str, np.ndarray],
    rng: np.random.Generator,
    batch_size: int,
    num_frames: int,
    cfg: AVConfig = DEFAULT_CONFIG,
    negatives: float = 0.0,
    negative_mix: str = NEGATIVE_MIX,
) -> dict[str, torch.Tensor]:
    """Random clips, each with ``num_frames`` frames spread over the clip with a random phase,
    in a random cyclic order (so the first frame is any frame of the clip).

    With ``negatives`` > 0, that fraction of the clips gets mismatched audio and the masks that
    this audio explains (:func:`mismatch_audio`), so that the network must gate its masks on
    the audio (what sounds, and when) rather than on the pictures alone.

    Returns frames (B, T, 3, S, S) float in [0, 1], wave (B, N), masks (B, T, S, S) bool,
    frame_times (B, T) seconds and negative (B,) int (0: true audio, else NEGATIVE_KINDS);
    prev_frames (B, T, 3, S, S) (each frame's predecessor) when ``arrays`` has them; and with
    ``negatives`` > 0, true_wave (B, N) and true_masks (B, T, S, S): every clip's own audio and
    masks, as if it had drawn no negative.
    """
    n, tc = arrays["frames"].shape[:2]
    clips = rng.integers(n, size=batch_size)
    num_frames = min(num_frames, tc)
    phase = rng.random(batch_size)
    sel = np.floor((np.arange(num_frames)[None, :] + phase[:, None]) * tc / num_frames)
    sel = sel.astype(int).clip(0, tc - 1)  # (B, T) indices into the kept frames
    # Rotate each row so that its first frame (the labelled one in the single-source setting)
    # is any frame of the clip: FoleyWorld's sounds start ~1 s in, so the clip's own first
    # frame is almost always silent.  The network is equivariant to the order of the frames.
    shift = rng.integers(num_frames, size=batch_size)
    sel = np.take_along_axis(sel, (np.arange(num_frames)[None, :] + shift[:, None]) % num_frames, 1)
    frames = arrays["frames"][clips[:, None], sel]  # (B, T, S, S, 3)
    masks = arrays["masks"][clips[:, None], sel]
    times = (arrays["frame_index"][sel] + 0.5) / cfg.fps
    wave = arrays["audio"][clips].copy()
    kind = np.zeros(batch_size, int)
    if negatives > 0:
        true_wave, true_masks = wave.copy(), masks.copy()
        draw = rng.random(batch_size) < negatives
        mix = parse_mix(negative_mix)
        kind[draw] = 1 + rng.choice(len(NEGATIVE_KINDS), size=int(draw.sum()), p=mix)
        for i in np.flatnonzero(kind):
            wave[i], keep = mismatch_audio(arrays, clips[i], NEGATIVE_KINDS[kind[i] - 1], rng)
            masks[i] &= keep[sel[i]][:, None, None]
    batch = {
        "material": torch.from_numpy(material_ids(arrays, clips)),
        "frames": torch.from_numpy(frames).permute(0, 1, 4, 2, 3).float() / 255.0,
        "wave": torch.from_numpy(wave),
        "masks": torch.from_numpy(masks),
        "frame_times": torch.from_numpy(times).float(),
        "negative": torch.from_numpy(kind),
    }
    if negatives > 0:
        batch["true_wave"] = torch.from_numpy(true_wave)
        batch["true_masks"] = torch.from_numpy(true_masks)
    if "prev_frames" in arrays:
        prev = arrays["prev_frames"][clips[:, None], sel]
        batch["prev_frames"] = torch.from_numpy(prev).permute(0, 1, 4, 2, 3).float() / 255.0
    return batch


def mismatch_audio(
    arrays: dict[str, np.ndarray], clip: int, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mismatched audio for clip ``clip`` and which of its cached frames keep their mask.

    ``"shifted"``: the clip's own audio rotated by 2 to Tc-2 cached frames (0.5-2.5 s at the
    default stride); a frame keeps its mask only where the rotated audio also sounds there
    (the object is seen sounding *and* heard at that moment); ``"other"``: another clip's
    audio (its object is not in view: no mask); ``"ambience"``: the clip's audio minus its
    action track (no action sound: no mask); ``"silence"``: zeros (no mask); ``"swap"``: the
    clip's ambience plus another clip's action track, of another material where
    ``arrays["material"]`` says, moved so that its first sound starts when this clip's does
    (the right time, the wrong sound: only the sound's *content* tells it from the true audio;
    no mask).

    Returns ``(wave (N,) float32, keep (Tc,) bool)``.
    """
    tc = arrays["masks"].shape[1]
    audio = arrays["audio"][clip]
    none = np.zeros(tc, bool)
    if kind == "shifted":
        k = int(rng.integers(2, max(3, tc - 1)))
        hop = audio.shape[0] // tc  # samples per cached frame
        sounding = arrays["masks"][clip].reshape(tc, -1).any(1)
        return np.roll(audio, k * hop), np.roll(sounding, k)
    if kind == "other":
        n = arrays["audio"].shape[0]
        other = (clip + int(rng.integers(1, n))) % n if n > 1 else clip
        return arrays["audio"][other].copy(), none
    if kind == "ambience":
        return (audio - arrays["action"][clip]).astype(np.float32), none
    if kind == "silence":
        return np.zeros_like(audio), none
    if kind == "swap":
        other = swap_partner(arrays, clip, rng)
        action = arrays["action"][clip]
        lag = first_sound(action) - first_sound(arrays["action"][other])
        moved = np.roll(arrays["action"][other], lag)
        return (audio - action + moved).astype(np.float32), none
    raise ValueError(f"unknown negative kind {kind!r}")


def material_ids(arrays: dict[str, np.ndarray], clips: np.ndarray) -> np.ndarray:
    """(len(clips),) int: an id per distinct ``arrays["material"]`` string (-1 - clip where
    unknown, so that clips without one form no group)."""
    if "material" not in arrays:
        return -1 - np.asarray(clips, np.int64)
    names = {m: i for i, m in enumerate(sorted(set(arrays["material"].tolist())))}
    mats = arrays["material"][clips]
    return np.array([names[m] if m else -1 - c for m, c in zip(mats, clips)], np.int64)


def first_sound(action: np.ndarray) -> int:
    """Index of the first non-zero sample of an action track (0 if it is silent)."""
    nz = np.flatnonzero(action)
    return int(nz[0]) if nz.size else 0


def swap_partner(arrays: dict[str, np.ndarray], clip: int, rng: np.random.Generator) -> int:
    """A random other clip with an action sound, sharing no visible material with ``clip`` when
    ``arrays["material"]`` is known for both (else any other clip)."""
    n = arrays["audio"].shape[0]
    if n < 2:
        return clip
    candidates = np.flatnonzero(np.arange(n) != clip)
    if "material" in arrays:
        mats = arrays["material"]
        own = set(filter(None, str(mats[clip]).split(",")))
        if own:
            ok = [j for j in candidates if mats[j] and not own & set(str(mats[j]).split(","))]
            candidates = np.array(ok) if ok else candidates
    return int(candidates[rng.integers(len(candidates))])


# ---- training --------------------------------------------------------------------------------
def run(args: AVSConfig | argparse.Namespace) -> int:
    args = config_from_args(AVSConfig, args)
    from foley.models.avs import (
        AVSModel,
        audio_visual_contrastive_loss,
        avs_loss,
        labelled_frames,
    )
    from training.common import make_accelerator
    from training.loop import TrainLoop, cosine_schedule

    if args.threads:
        torch.set_num_threads(args.threads)  # a shared CPU: oversubscribed threads crawl
    cfg = DEFAULT_CONFIG
    out = Path(args.out)
    accelerator = make_accelerator(out, args.seed, cpu=args.cpu)
    with accelerator.main_process_first():  # one process extracts, the others read its cache
        arrays = extract_avs_clips(
            args.data,
            args.split,
            out / FEATURES_DIR,
            cfg,
            args.frame_stride,
            args.max_clips,
            predecessors=args.frame_diff,
        )
    channels = tuple(int(c) for c in str(args.stage_channels).split(","))
    model = AVSModel(
        stage_channels=channels,
        channels=args.channels,
        input_size=args.input_size or None,
        av_config=cfg.to_dict(),
        frame_diff=args.frame_diff,
        content_gate=args.content_gate,
        audio_window=args.audio_window,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = cosine_schedule(opt, args.steps, warmup_steps=max(1, args.steps // 20))
    model, opt, sched = accelerator.prepare(model, opt, sched)
    extra = {
        "setting": args.setting,
        "zero_audio": bool(args.zero_audio),
        "negatives": args.negatives,
        "frame_diff": bool(args.frame_diff),
        "contrast_weight": args.contrast_weight,
    }

    def export(step: int) -> None:
        if accelerator.is_main_process:
            accelerator.unwrap_model(model).save_pretrained(out / "model")

    loop = TrainLoop(
        accelerator,
        out,
        args.steps,
        desc=f"avs {args.setting}",
        log_every=args.log_every,
        save_every=args.save_every,
        export_every=args.save_every,
        max_minutes=args.max_minutes,
        export=export,
        state=extra,
    )
    model.train()
    rank = [accelerator.process_index] if accelerator.num_processes > 1 else []  # DDP: own data
    for step in loop:
        batch = sample_batch(
            arrays,
            np.random.default_rng([args.seed, step, *rank]),
            args.batch_size,
            args.frames,
            cfg,
            negatives=0.0 if args.zero_audio else args.negatives,
            negative_mix=args.negative_mix,
        )
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        wave = torch.zeros_like(batch["wave"]) if args.zero_audio else batch["wave"]
        b, t = batch["masks"].shape[:2]
        with accelerator.autocast():
            output = model(
                batch["frames"],
                wave,
                batch["frame_times"],
                return_features=True,
                prev_frames=batch.get("prev_frames"),
            )
            labelled = labelled_frames(args.setting, b, t, accelerator.device)
            loss, parts = avs_loss(
                output,
                batch["masks"],
                labelled,
                args.avm_weight,
                args.pos_weight,
                args.frame_weight,
            )
            if args.contrast_weight > 0 and not args.zero_audio:
                contrast = audio_visual_contrastive_loss(
                    accelerator.unwrap_model(model),
                    output,
                    batch.get("true_masks", batch["masks"]),
                    labelled,
                    batch.get("true_wave"),
                    batch["frame_times"],
                    args.contrast_temperature,
                    batch["material"],
                )
                loss = loss + args.contrast_weight * contrast
                parts["contrast"] = contrast.item()
                parts["loss"] = loss.item()
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loop.end_step(lr=sched.get_last_lr()[0], **parts)
    return 0
