"""Train the AV-LDM denoiser and its video encoder on pre-extracted features (accelerate).

The audio condition of a clip is another clip of the same ``video_uid`` at another time (AV-LDM:
same ambience, other action). With ``--action-tracks P`` a fraction P of the items are
action-focused ones: the clip's action-only track (FoleyWorld ground truth) conditioned on the
neighbour's action-only track, so the denoiser learns to leave the ambience out when its
condition has none (what action-focused retrieval gives it). Video and condition are dropped
(learned null tokens) with ``--drop-video`` / ``--drop-condition`` for classifier-free guidance.
Objectives: rectified flow (``flow``: x_t = (1 - s) x0 + s noise, target noise - x0, sampled
with diffusers' FlowMatchEulerDiscreteScheduler) or DDPM ``v``/``eps`` prediction (sampled with
DPM-Solver++).

Resume format: ``OUT/ckpt`` (training/common.py). Export: ``OUT/model`` (FoleyPipeline
``save_pretrained``; EMA weights). Validation: ``OUT/val/step-N/*.wav`` + spectrogram PNGs and
``val_mel_l1`` / ``val_env_corr`` in ``OUT/metrics.jsonl``.

Fine-tuning: ``--init-from default`` (or a pipeline folder) starts from that pipeline's denoiser,
frozen video encoder, codec and objective; FEATURES may then be a ``foley prepare`` folder (its
features are extracted into ``OUT/features``). With ``--patience N`` the val denoising loss at
fixed noise (``training.finetune.denoising_loss``) is measured before training and every
``--val-every`` steps; ``OUT/model`` is exported only when it improves, and training stops after
N validations without improvement, so a few minutes of data cannot make the export worse on val.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from foley.models.objectives import Objective
from training.common import cycle, make_accelerator
from training.config import add_config_arguments, config_from_args, opt, trainer_main
from training.features import FEATURES_JSON, SplitFeatures, read_config
from training.loop import TrainLoop


class FeatureDataset(Dataset):
    """Items: latents (L, C) float32, frames (T, S, S, 3) uint8 or pre-extracted video features
    (T, D) float32, condition latents (L, C) of a neighbour clip, has_condition, and with
    ``curves`` the sync curves (L, 2) float32: the sync encoder's predictions, or with
    probability ``teacher`` the clip's own audio curves (``teacher_curves``: the sync encoder's
    training targets, ``training.train_sync.split_targets``)."""

    def __init__(
        self,
        feats: SplitFeatures,
        seed: int = 0,
        frozen_video: bool = False,
        curves: bool = False,
        teacher_curves: np.ndarray | None = None,
        teacher: float = 0.0,
        action: float = 0.0,
    ) -> None:
        self.feats = feats
        self.seed = seed
        self.epoch = 0
        self.frozen_video = frozen_video
        self.curves = curves
        self.teacher_curves = teacher_curves
        self.teacher = teacher if teacher_curves is not None else 0.0
        has = getattr(feats, "has_action", None)
        self.has_action = None if has is None or action <= 0 else np.asarray(has, bool)
        self.action = action if self.has_action is not None else 0.0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        neighbours = self.feats.neighbours(i)
        j = int(rng.choice(neighbours)) if neighbours else i
        source = self.feats.latents  # of the target and of the condition
        if self.action > 0 and self.has_action[i] and rng.random() < self.action:
            tracked = [k for k in neighbours if self.has_action[k]]
            if tracked:  # action-focused: action-only target, action-only condition
                j = int(rng.choice(tracked))
                source = self.feats.action_latents
        if self.frozen_video:
            video = torch.from_numpy(np.array(self.feats.video_feats[i], np.float32))
        else:
            video = torch.from_numpy(np.array(self.feats.frames[i]))
        item = {
            "latents": torch.from_numpy(np.array(source[i], np.float32)),
            "video": video,
            "condition": torch.from_numpy(np.array(source[j], np.float32)),
            "has_condition": bool(neighbours),
        }
        if self.curves:
            source = self.feats.sync_curves
            if self.teacher > 0 and rng.random() < self.teacher:
                source = self.teacher_curves
            item["curves"] = torch.from_numpy(np.array(source[i], np.float32))
        return item


class AVLDM(nn.Module):
    """The trained pair: video encoder + denoiser (one module for accelerate/EMA).

    With ``frozen_video`` the encoder is not trained and ``video`` is its pre-extracted
    features (batch, T, D); otherwise ``video`` is uint8 frames (batch, T, S, S, 3).
    """

    def __init__(self, video_encoder: nn.Module, denoiser: nn.Module, frozen_video: bool) -> None:
        super().__init__()
        self.video_encoder = video_encoder
        self.denoiser = denoiser
        self.frozen_video = frozen_video
        if frozen_video:
            video_encoder.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> AVLDM:
        super().train(mode)
        if self.frozen_video:
            self.video_encoder.eval()
        return self

    def forward(self, noisy, t, video, condition, video_keep, condition_keep, curves=None):
        if not self.frozen_video:
            frames = video.permute(0, 1, 4, 2, 3).float().div(255.0)  # (b, T, 3, S, S)
            video = self.video_encoder(frames)  # (batch, T, video_dim)
        return self.denoiser(
            noisy, t, video, condition, video_keep, condition_keep, sync_curves=curves
        )


def build_models(args, latent_dim: int, cfg, frozen_dir: Path | None = None, curve_dim: int = 0):
    """The video encoder (frozen from ``frozen_dir``, MC3's, or new) and a new denoiser."""
    from foley.models.denoiser import FoleyDenoiser
    from foley.models.video_encoder import VideoEncoder
    from training.features import load_video_encoder

    if frozen_dir is not None:
        video_encoder = load_video_encoder(frozen_dir)  # VideoEncoder or SyncModel
    elif args.video_init:
        from foley.models.mc3 import MC3Model

        video_encoder = copy.deepcopy(MC3Model.from_pretrained(args.video_init).video_encoder)
    else:
        video_encoder = VideoEncoder(
            dim=args.video_dim, channels=tuple(args.video_channels), temporal_layers=2
        )
    denoiser = FoleyDenoiser(
        latent_dim=latent_dim,
        video_dim=int(video_encoder.config.dim),
        hidden_dim=args.hidden_dim,
        num_layers=args.layers,
        num_heads=args.heads,
        latents_per_frame=cfg.latents_per_frame,
        curve_dim=curve_dim,
        curve_input=args.curve_input if curve_dim else "raw",
    )
    return video_encoder, denoiser


def export_pipeline(model: AVLDM, args, cfg, out: Path):
    """EMA weights -> FoleyPipeline.save_pretrained(out)."""
    from foley.models.codec import FoleyCodec
    from foley.pipelines.foley_pipeline import FoleyPipeline

    retriever, avs = None, None
    if args.init_from and (Path(args.init_from) / "avs").is_dir():
        from foley.models.avs import AVSModel

        avs = AVSModel.from_pretrained(Path(args.init_from) / "avs")
    sync = None
    if args.init_from and (Path(args.init_from) / "sync").is_dir():  # shaping's curves
        from foley.models.sync import SyncModel

        sync = SyncModel.from_pretrained(Path(args.init_from) / "sync").eval()
    if args.mc3:
        from foley.models.mc3 import MC3Model
        from foley.retrieval import ClipRetriever

        retriever = ClipRetriever(MC3Model.from_pretrained(args.mc3))
    kept = _init_settings(Path(args.init_from)) if args.init_from else {}
    scheduler = kept.pop("scheduler", None) or Objective(args.objective, args.flow_shift).sampler()
    pipe = FoleyPipeline(
        codec=FoleyCodec.from_pretrained(args.codec),
        video_encoder=copy.deepcopy(model.video_encoder).cpu().eval(),
        denoiser=copy.deepcopy(model.denoiser).cpu().eval(),
        scheduler=scheduler,
        retriever=retriever,
        av_config=cfg.to_dict(),
        avs=avs,
        sync=sync,
        **kept,
    )
    pipe.save_pretrained(out)
    return pipe


# what a fine-tune keeps of the pipeline it started from, beside its weights
KEPT_SETTINGS = ("default_steps", "default_guidance", "sync_shaping_default", "action_level_db")


def _init_settings(init: Path) -> dict:
    """The init pipeline's sampler (its scheduler class and config: e.g. the shipped
    DPM-Solver++ at its time shift) and its saved defaults (steps, per-mode guidance, shaping,
    action level), so a fine-tune samples as the model it started from. The objective it trains
    is read from the same scheduler (``_finetune_args``), so the two agree."""
    import diffusers

    kept = {}
    index = init / "model_index.json"
    config = json.loads(index.read_text()) if index.is_file() else {}
    kept.update({k: config[k] for k in KEPT_SETTINGS if config.get(k) is not None})
    sched = init / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        name = json.loads(sched.read_text()).get("_class_name", "")
        cls = getattr(diffusers, name, None)
        if cls is not None:
            kept["scheduler"] = cls.from_pretrained(init / "scheduler")
    return kept


def validate(pipe, feats: SplitFeatures, cfg, out: Path, num: int, steps: int) -> dict:
    """Generate ``num`` validation clips; writes wav + spectrogram PNG; returns metrics."""
    from foley.audio import log_mel
    from foley.io import load_audio, save_audio

    out.mkdir(parents=True, exist_ok=True)
    pipe.set_progress_bar_config(disable=True)
    mel_l1, env_corr = [], []
    for i in range(min(num, len(feats))):
        clip = feats.clips[i]
        cond_i = clip["neighbours"][0] if clip["neighbours"] else None
        cond = load_audio(feats.clips[cond_i]["clip_path"]) if cond_i is not None else None
        mode = "ambient_joint" if cond is not None else "no_condition"
        frames = np.array(feats.frames[i])
        gen = pipe(
            frames,
            mode=mode,
            condition_audio=cond,
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(i),
        ).audios[0]
        ref = load_audio(clip["clip_path"])[: gen.size]
        ref = np.pad(ref, (0, gen.size - ref.size))
        save_audio(out / f"{i:02d}_generated.wav", gen)
        save_audio(out / f"{i:02d}_reference.wav", ref)
        mels = log_mel(torch.from_numpy(np.stack([gen, ref])), cfg)  # (2, n_mels, frames)
        mel_l1.append(float((mels[0] - mels[1]).abs().mean()))
        env = mels.exp().sum(1).log()  # (2, frames) log energy envelope
        env_corr.append(float(np.corrcoef(env[0].numpy(), env[1].numpy())[0, 1]))
        save_spectrogram(out / f"{i:02d}.png", mels.numpy(), ["generated", "reference"])
    return {"val_mel_l1": float(np.mean(mel_l1)), "val_env_corr": float(np.nanmean(env_corr))}


def save_spectrogram(path: Path, mels: np.ndarray, titles: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(mels), 1, figsize=(8, 2.2 * len(mels)), squeeze=False)
    for ax, mel, title in zip(axes[:, 0], mels, titles):
        ax.imshow(mel, origin="lower", aspect="auto", vmin=-11.5, vmax=mels.max())
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


@dataclass(frozen=True)
class DenoiserConfig:
    """Settings of ``foley train denoiser`` (one field per command-line option)."""

    features: str = opt(
        "", "folder written by training/features.py", positional=True, required=True
    )
    out: str = opt("", "training folder", required=True, short="-o")
    codec: str | None = opt(None, "FoleyCodec folder (default: features')")
    mc3: str | None = opt(None, "MC3 folder to ship in the exported pipeline")
    video_init: str | None = opt(None, "init the video encoder from MC3")
    init_from: str | None = opt(
        None, "fine-tune this saved pipeline ('default': the shipped model); FEATURES may then "
        "be a foley prepare folder"
    )  # fmt: skip
    patience: int = opt(
        0, "early stopping: stop after this many validations without a lower val loss (0: off)"
    )
    train_video_encoder: bool = opt(
        False, "train a video encoder on frames even if the features hold frozen video features"
    )
    no_curves: bool = opt(
        False, "ignore the sync curves of sync features (features from the video encoder only)"
    )
    teacher_curves: float = opt(
        0.0, "probability of giving the denoiser the clip's own audio curves (onset bumps and "
        "level, the sync encoder's targets) instead of the sync encoder's predictions"
    )  # fmt: skip
    action_tracks: float = opt(
        0.0, "fraction of action-focused items (action-only target and condition, from "
        "FoleyWorld's ground truth; the features get their action latents on first use)"
    )  # fmt: skip
    curve_input: str = opt(
        "raw", "how the denoiser reads the onset curve: as given, or re-drawn as unit bumps at "
        "its peaks (pair 'peaks' with --teacher-curves)", choices=("raw", "peaks")
    )  # fmt: skip
    objective: str = opt("flow", choices=("flow", "v", "eps"))
    flow_shift: float = opt(1.0)
    steps: int = opt(20000)
    batch_size: int = opt(16)
    lr: float = opt(0.0002)
    hidden_dim: int = opt(256)
    layers: int = opt(4)
    heads: int = opt(4)
    video_dim: int = opt(256)
    video_channels: tuple[int, ...] = opt((32, 64, 128, 256))
    drop_video: float = opt(0.1)
    drop_condition: float = opt(0.1)
    ema_decay: float = opt(0.999)
    save_every: int = opt(1000)
    val_every: int = opt(1000)
    val_num: int = opt(4)
    val_steps: int = opt(25)
    workers: int = opt(2)
    seed: int = opt(0)
    cpu: bool = opt(False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, DenoiserConfig)


def run(args: DenoiserConfig | argparse.Namespace) -> int:
    args = config_from_args(DenoiserConfig, args)
    from diffusers.training_utils import EMAModel

    out = Path(args.out)
    if args.init_from:
        args = _finetune_args(args, out)
    feat_root = Path(args.features)
    cfg = read_config(feat_root)
    meta = json.loads((feat_root / FEATURES_JSON).read_text())
    args = replace(args, codec=args.codec or meta["codec"])
    accelerator = make_accelerator(out, args.seed, cpu=args.cpu)
    if args.action_tracks > 0:
        from foley.models.codec import FoleyCodec
        from training.features import write_action_latents

        # the codec that encoded the features' latents, so both kinds of item agree
        codec = FoleyCodec.from_pretrained(meta["codec"])
        if not write_action_latents(feat_root, "train", codec):  # e.g. Ego4D-Sounds
            print(
                f"foley: {feat_root}: no training clip has an action-only track (FoleyWorld "
                "ground truth); training without action-focused items",
                file=sys.stderr,
                flush=True,
            )
    train = SplitFeatures(feat_root, "train")
    val = SplitFeatures(feat_root, "val") if (feat_root / "val").is_dir() else None
    frozen = bool(meta.get("video_encoder")) and not args.train_video_encoder
    frozen_dir = feat_root / meta["video_encoder"] if frozen else None
    use_curves = frozen and train.sync_curves is not None and not args.no_curves
    curve_dim = int(train.sync_curves.shape[-1]) if use_curves else 0
    video_encoder, denoiser = build_models(
        args, int(meta["latent_dim"]), cfg, frozen_dir, curve_dim
    )
    if args.init_from:
        widen = meta.get("video_encoder_kind") == "sync+efficientnet"
        denoiser = _init_denoiser(
            args.init_from, curve_dim, int(denoiser.config.video_dim), widen=widen
        )
    model = AVLDM(video_encoder, denoiser, frozen)
    trained = [p for p in model.parameters() if p.requires_grad]
    ema = EMAModel(trained, decay=args.ema_decay)
    optimizer = torch.optim.AdamW(trained, lr=args.lr, weight_decay=0.01)
    teacher = None
    if use_curves and args.teacher_curves > 0:
        from training.train_sync import split_targets

        teacher, _ = split_targets(train, cfg)  # (n, L, 2), cached beside the split
    dataset = FeatureDataset(
        train, args.seed, frozen, use_curves, teacher_curves=teacher, teacher=args.teacher_curves,
        action=args.action_tracks,
    )  # fmt: skip
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=len(train) > args.batch_size,
        num_workers=args.workers,
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)
    objective = Objective(args.objective, args.flow_shift)

    def export(step: int) -> dict | None:
        """EMA weights -> OUT/model; validation clips and metrics. With --patience: only when
        the val denoising loss improves."""
        if not accelerator.is_main_process:
            return None
        metrics = {}
        if args.patience > 0 and val is not None:
            from training.finetune import denoising_loss

            metrics["val_loss"] = denoising_loss(
                accelerator.unwrap_model(model), val, objective, frozen=frozen, curves=use_curves,
                batch_size=args.batch_size, seed=args.seed,
            )  # fmt: skip
            accelerator.print(f"step {step}: val_loss {metrics['val_loss']:.5f}")
            if not loop.improved(metrics["val_loss"], args.patience):
                return metrics
        pipe = export_pipeline(accelerator.unwrap_model(model), args, cfg, out / "model")
        if val is None or args.val_num <= 0:
            return metrics or None
        val_dir = out / "val" / f"step-{step:07d}"
        metrics.update(validate(pipe, val, cfg, val_dir, args.val_num, args.val_steps))
        accelerator.print(f"step {step}: " + json.dumps(metrics))
        return metrics

    loop = TrainLoop(
        accelerator,
        out,
        args.steps,
        desc="denoiser",
        log_every=50,
        save_every=args.save_every,
        export_every=args.val_every,
        export=export,
        state={"objective": args.objective},
        ema=(ema, trained),
    )
    if loop.step == 0 and args.patience > 0 and val is not None:  # the starting point counts
        loop.log(0, **(export(0) or {}))
    batches = cycle(loader)
    model.train()
    for _ in loop:
        batch = next(batches)
        x0 = batch["latents"]
        b = x0.shape[0]
        video_keep = torch.rand(b, device=x0.device) >= args.drop_video
        cond_keep = batch["has_condition"] & (
            torch.rand(b, device=x0.device) >= args.drop_condition
        )
        noisy, t, target = objective.noisy_target(x0)
        pred = model(
            noisy, t, batch["video"], batch["condition"], video_keep, cond_keep, batch.get("curves")
        )
        loss = F.mse_loss(pred.float(), target)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(trained)
        loop.end_step(loss=loss.item())
    return 0


def _finetune_args(args: DenoiserConfig, out: Path) -> DenoiserConfig:
    """Settings of a fine-tune: the init pipeline's features, codec, MC3 and objective."""
    from training.finetune import finetune_features, init_dir

    init = init_dir(args.init_from)
    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    feat_root = finetune_features(init, args.features, out / "features", device)
    from foley.models.objectives import objective_of

    sched = json.loads((init / "scheduler" / "scheduler_config.json").read_text())
    objective, shift = objective_of(sched)  # (the shipped DPM-Solver++ samples a flow model)
    if objective != "flow":
        shift = args.flow_shift
    mc3 = init / "mc3" if (init / "mc3").is_dir() else None
    return replace(
        args, features=str(feat_root), codec=str(init / "codec"), init_from=str(init),
        mc3=args.mc3 or (str(mc3) if mc3 else None), objective=objective, flow_shift=shift,
    )  # fmt: skip


def _init_denoiser(
    init_from: str, curve_dim: int, video_dim: int | None = None, *, widen: bool = False
):
    """The init pipeline's denoiser, for features of ``video_dim`` per frame. With ``widen``
    (features of a ``sync+efficientnet`` encoder around the init's sync encoder: the sync
    features come first) a wider input gets zero weights on the new inputs, so the denoiser
    starts as the same function; any other width is a one-line mismatch."""
    from foley.errors import ModelMismatchError
    from foley.models.denoiser import FoleyDenoiser

    denoiser = FoleyDenoiser.from_pretrained(Path(init_from) / "denoiser")
    if int(denoiser.config.curve_dim) != curve_dim:
        raise ModelMismatchError(
            f"{init_from}: its denoiser takes {denoiser.config.curve_dim} sync curves, the "
            f"features give {curve_dim}; extract them with that pipeline's video encoder"
        )
    have = int(denoiser.config.video_dim)
    if video_dim is None or video_dim == have:
        return denoiser
    if video_dim < have or not widen:
        raise ModelMismatchError(
            f"{init_from}: its denoiser reads {have}-d video features, the features are "
            f"{video_dim}-d; extract them with that pipeline's video encoder"
        )
    print(f"foley: widening the init denoiser's video input {have} -> {video_dim} (new inputs "
          "start at zero weight)", file=sys.stderr, flush=True)  # fmt: skip
    config = {k: v for k, v in dict(denoiser.config).items() if not k.startswith("_")}
    wide = FoleyDenoiser(**{**config, "video_dim": video_dim})
    state = denoiser.state_dict()
    for name in ("video_sync.0.weight", "video_tokens.weight"):
        weight = state[name]
        state[name] = torch.cat([weight, weight.new_zeros(weight.shape[0], video_dim - have)], 1)
    wide.load_state_dict(state)
    return wide


def main(argv: list[str] | None = None) -> int:
    return trainer_main(DenoiserConfig, run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
