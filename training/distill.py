"""Guidance distillation: a denoiser that gives the guided prediction in one call per step.

    foley train distill FEATURES -o OUT --teacher PIPELINE [--steps 3000] [--threads 1]

Classifier-free guidance costs two denoiser calls per sampler step (with the video and with the
null video). The student is the teacher's denoiser with a guidance embedding
(``FoleyDenoiser(guidance_embed=True)``, whose new last layer starts at zero, so at step 0 it is
exactly the teacher's conditional branch). Each step draws items of FEATURES (the teacher's
features: latents, frozen video features, the sync encoder's curves, a neighbour clip's latents
as condition; ``--action-tracks P`` makes a fraction of them action-only, as action-focused
retrieval gives), a noise level sigma ~ U(0, 1) (flow: x_t = (1 - sigma) x0 + sigma noise), a
guidance scale g ~ U(``--guidance-min``, ``--guidance-max``), and regresses the student's
prediction at (x_t, t, g) onto the teacher's guided one, ``uncond + g * (cond - uncond)``, the
unconditional branch dropping the video as the pipeline's does. The condition is dropped for
``--drop-condition`` of the items (both branches), as in the no-condition mode. No labels, no
audio targets: only the teacher.

Validation (every ``--val-every`` steps): the same regression on the val split at noise, t and g
fixed by the seed (``val_mse``), and at the shipped guidances 3 and 5 (``val_mse_g3``,
``val_mse_g5``); the step-0 row is the teacher's conditional branch (what the student starts
from). ``OUT/model`` is the teacher pipeline with the student's EMA weights, exported when
``val_mse`` improves (``--patience N`` stops after N validations without). Resume: run again.
FEATURES may be a ``foley prepare`` folder: it is extracted with the teacher's codec and video
encoder into ``OUT/features``, as ``foley train denoiser --init-from`` does.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from foley.errors import InputError, ModelMismatchError
from foley.models.objectives import Objective, objective_of
from training.common import cycle, start_run
from training.config import add_config_arguments, config_from_args, opt, trainer_main
from training.features import FEATURES_JSON, SplitFeatures
from training.loop import TrainLoop

VAL_GUIDANCES = (3.0, 5.0)  # the shipped model's ambient-joint and action-focused guidance


@dataclass(frozen=True)
class DistillConfig:
    """Settings of ``foley train distill`` (one field per command-line option)."""

    features: str = opt(
        "", "features of the teacher (training/features.py), or a foley prepare folder",
        positional=True, required=True,
    )  # fmt: skip
    out: str = opt("", "training folder", required=True, short="-o")
    teacher: str = opt(
        "", "the trained pipeline to distil (a saved pipeline folder; the shipped default is "
        "already a student)", required=True,
    )  # fmt: skip
    steps: int = opt(3000)
    batch_size: int = opt(16)
    lr: float = opt(0.0001)
    guidance_min: float = opt(0.0, "smallest guidance scale trained")
    guidance_max: float = opt(8.0, "largest guidance scale trained")
    action_tracks: float = opt(
        0.0, "fraction of action-only items (FoleyWorld's action tracks as target and condition)"
    )
    drop_condition: float = opt(0.1, "fraction of items with the null condition")
    ema_decay: float = opt(0.995)
    val_every: int = opt(500)
    val_clips: int = opt(64, "val clips in the validation regression")
    patience: int = opt(0, "stop after this many validations without a lower val_mse (0: off)")
    max_minutes: float = opt(0.0, "stop (after saving) after this many minutes (0: no limit)")
    workers: int = opt(0)
    threads: int = opt(0, "torch CPU threads (0: torch's default)")
    seed: int = opt(0)
    cpu: bool = opt(False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, DistillConfig)


def make_student(teacher, guidance_min: float = 0.0, guidance_max: float = 8.0):
    """The teacher denoiser's weights in a ``guidance_embed`` denoiser (its guidance layers
    new, their output zero) that will be trained on scales ``guidance_min``..``guidance_max``."""
    from foley.models.denoiser import FoleyDenoiser

    if teacher.config.get("guidance_embed", False):
        raise InputError("the teacher is already guidance-distilled: distil its own teacher")
    config = {k: v for k, v in dict(teacher.config).items() if not k.startswith("_")}
    student = FoleyDenoiser(
        **{**config, "guidance_embed": True, "guidance_min": float(guidance_min),
           "guidance_max": float(guidance_max)}
    )  # fmt: skip
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any(not k.startswith("guidance_embedding.") for k in missing):
        raise ModelMismatchError(f"teacher and student differ: {missing} {unexpected}")
    return student


@torch.no_grad()
def guided_target(teacher, xt, t, video, cond, cond_keep, curves, g: torch.Tensor):
    """The teacher's guided prediction, ``uncond + g * (cond - uncond)``: one call on the batch
    twice, with the video and with the null video (the pipeline's two branches)."""
    b = xt.shape[0]
    keep = torch.arange(2 * b, device=xt.device) < b
    pred = teacher(
        torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([video, video]),
        torch.cat([cond, cond]), keep, torch.cat([cond_keep, cond_keep]),
        None if curves is None else torch.cat([curves, curves]),
    ).float()  # fmt: skip
    p_cond, p_uncond = pred.chunk(2)
    return p_uncond + g.view(b, 1, 1) * (p_cond - p_uncond)


def distill_loss(student, teacher, batch: dict, objective, g: torch.Tensor, cond_keep,
                 generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """MSE of the student's one-call prediction against the teacher's guided prediction."""
    x0 = batch["latents"]
    xt, t, _ = objective.noisy_target(x0, uniform=True, generator=generator)
    video, cond, curves = batch["video"], batch["condition"], batch.get("curves")
    target = guided_target(teacher, xt, t, video, cond, cond_keep, curves, g)
    keep = torch.ones(x0.shape[0], dtype=torch.bool, device=x0.device)
    pred = student(xt, t, video, cond, keep, cond_keep, sync_curves=curves, guidance=g)
    return F.mse_loss(pred.float(), target)


@torch.no_grad()
def validation(student, teacher, dataset, objective, cfg: DistillConfig, device) -> dict:
    """``val_mse`` at guidance drawn from the trained range, and at each of ``VAL_GUIDANCES``,
    on the first ``val_clips`` val clips; noise, timesteps and guidance fixed by the seed."""
    was_training = student.training
    student.eval()
    n = min(cfg.val_clips, len(dataset))
    subset = torch.utils.data.Subset(dataset, range(n))
    sums: dict[str, float] = {}
    for name, fixed in [("val_mse", None), *((f"val_mse_g{g:g}", g) for g in VAL_GUIDANCES)]:
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        total = 0.0
        for batch in DataLoader(subset, batch_size=cfg.batch_size, shuffle=False):
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            b = batch["latents"].shape[0]
            u = torch.rand(b, generator=gen).to(device)
            g = torch.full((b,), fixed, device=device) if fixed is not None else (
                cfg.guidance_min + (cfg.guidance_max - cfg.guidance_min) * u
            )  # fmt: skip
            keep = batch["has_condition"].to(device)
            loss = distill_loss(student, teacher, batch, objective, g, keep, gen)
            total += float(loss) * b
        sums[name] = total / n
    student.train(was_training)
    return sums


def run(args: DistillConfig | argparse.Namespace) -> int:
    cfg = config_from_args(DistillConfig, args)
    from diffusers.training_utils import EMAModel

    from foley.pipelines.foley_pipeline import FoleyPipeline
    from training.finetune import finetune_features, init_dir
    from training.train_denoiser import FeatureDataset

    if not 0 <= cfg.guidance_min < cfg.guidance_max:
        raise InputError("--guidance-min must be >= 0 and below --guidance-max")
    teacher_dir = init_dir(cfg.teacher)
    config = teacher_dir / "denoiser" / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("guidance_embed"):
        raise InputError(
            f"--teacher {cfg.teacher}: its denoiser is already guidance-distilled; give the "
            "pipeline it was distilled from"
        )
    accelerator, out = start_run(cfg)
    device = "cpu" if cfg.cpu or not torch.cuda.is_available() else "cuda"
    feat_root = finetune_features(teacher_dir, cfg.features, out / "features", device)
    meta = json.loads((feat_root / FEATURES_JSON).read_text())
    if not meta.get("video_encoder"):
        raise InputError(
            f"{feat_root}: no frozen video features; extract them with the teacher's video "
            "encoder (give a foley prepare folder instead)"
        )
    pipe = FoleyPipeline.from_pretrained(teacher_dir)
    pipe.set_progress_bar_config(disable=True)
    teacher = pipe.denoiser.eval().requires_grad_(False)
    student = make_student(teacher, cfg.guidance_min, cfg.guidance_max).train()
    train = SplitFeatures(feat_root, "train")
    val = SplitFeatures(feat_root, "val") if (feat_root / "val").is_dir() else None
    curve_dim = int(teacher.config.curve_dim)
    have = int(train.video_feats.shape[-1])
    if have != int(teacher.config.video_dim) or (
        curve_dim and (train.sync_curves is None or train.sync_curves.shape[-1] != curve_dim)
    ):
        raise ModelMismatchError(
            f"{feat_root}: its features do not fit the teacher's denoiser (video {have}-d, it "
            f"reads {teacher.config.video_dim}-d; curves {curve_dim}); extract them with the "
            "teacher's video encoder"
        )
    objective = Objective(*objective_of(pipe.scheduler))
    dataset = FeatureDataset(
        train, cfg.seed, frozen_video=True, curves=bool(curve_dim), action=cfg.action_tracks
    )
    val_set = None if val is None else FeatureDataset(val, cfg.seed, True, bool(curve_dim))
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=True,
        drop_last=len(train) > cfg.batch_size, num_workers=cfg.workers,
    )  # fmt: skip
    params = [p for p in student.parameters() if p.requires_grad]
    ema = EMAModel(params, decay=cfg.ema_decay)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    student, optimizer, loader = accelerator.prepare(student, optimizer, loader)
    teacher.to(accelerator.device)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)

    def export(step: int) -> dict | None:
        if not accelerator.is_main_process:
            return None
        metrics = {}
        if val_set is not None:
            net = accelerator.unwrap_model(student)
            metrics = validation(net, teacher, val_set, objective, cfg, accelerator.device)
            accelerator.print(f"step {step}: " + json.dumps(metrics))
            if not loop.improved(metrics["val_mse"], cfg.patience):
                return metrics
        net = copy.deepcopy(accelerator.unwrap_model(student)).cpu().eval()
        FoleyPipeline.from_pipe(pipe, denoiser=net).save_pretrained(out / "model")
        return metrics

    loop = TrainLoop(
        accelerator, out, cfg.steps, desc="distill", log_every=25, save_every=cfg.val_every,
        export_every=cfg.val_every, max_minutes=cfg.max_minutes, export=export,
        state={"teacher": str(teacher_dir)}, ema=(ema, params),
    )  # fmt: skip
    if loop.step == 0 and val_set is not None:  # the starting point: the conditional branch
        start = validation(
            accelerator.unwrap_model(student), teacher, val_set, objective, cfg, accelerator.device
        )
        loop.log(0, **{f"{k}_start": v for k, v in start.items()})
    batches = cycle(loader)
    for _ in loop:
        batch = next(batches)
        b = batch["latents"].shape[0]
        dev = batch["latents"].device
        g = cfg.guidance_min + (cfg.guidance_max - cfg.guidance_min) * torch.rand(b, device=dev)
        keep = batch["has_condition"] & (torch.rand(b, device=dev) >= cfg.drop_condition)
        loss = distill_loss(student, teacher, batch, objective, g, keep)
        loop.optimize(loss, optimizer, params, 1.0)
        ema.step(params)
        loop.end_step(loss=loss.item())
    return 0


def main(argv: list[str] | None = None) -> int:
    return trainer_main(DistillConfig, run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
