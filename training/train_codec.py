"""Train the audio codec (SEANet autoencoder, MS-STFT discriminator) on random short crops.

Losses: time-domain L1, multi-scale mel (L1 + L2 of log mel), multi-resolution STFT, and from
``--adv-start`` on the hinge adversarial and feature-matching losses of the ``encodec``
package's ``MultiScaleSTFTDiscriminator``.  The generator losses are combined by an EnCodec-style
gradient balancer (:class:`foley.models.codec_losses.LossBalancer`) with the weights of the
EnCodec paper (l1 0.1, mel 1, stft 1, adversarial 3, feature matching 3).

Audio comes from ``--data``: an Ego4D-Sounds / FoleyWorld folder (``<split>.tsv`` + clips) or
any folder of audio files.  It is decoded once into ``OUT/features/codec_<split>.f32`` (a flat
memory-mapped float32 file plus offsets); batches are drawn by a generator seeded by
``(seed, step)``, so a resumed run sees the batches the uninterrupted one would have.  At every
save the latent statistics are measured on training clips, recorded in the codec's config and
the model is exported with ``save_pretrained`` to ``OUT/model``.

Example::

    foley train codec --data DATA --out runs/codec-small --preset small
    foley train codec --data DATA --out runs/codec --preset base      # GPU
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.errors import InputError
from training.config import add_config_arguments, config_from_args, opt

FEATURES_DIR = "features"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".mp4", ".m4a", ".opus", ".wv")
LOSS_WEIGHTS = {"l1": 0.1, "mel": 1.0, "stft": 1.0, "adv": 3.0, "feat": 3.0}
# the "stft" preset adds a phase-aware term (compressed complex spectra): SI-SDR needs the phase

PRESETS: dict[str, dict] = {
    # CPU, minutes: a few hundred steps of a narrow model, reconstruction losses only (a short
    # adversarial phase on CPU made a run diverge; pass --steps beyond 300 to reach it).
    "small": dict(
        n_filters=8, lstm_layers=1, latent_dim=64, disc_filters=8, batch_size=4,
        crop_seconds=1.0, steps=300, adv_start=300, lr=1e-3, save_every=100,
        disc_warmup=0, disc_seconds=0.0,
    ),
    # CPU, hours: the frame-rate ("stft", Vocos-style) codec; reconstruction losses until the
    # decoder has settled, then the MS-STFT discriminator.
    "stft": dict(
        architecture="stft", stft_dim=256, stft_layers=6, stft_mult=3, latent_dim=64,
        disc_filters=16, batch_size=8, crop_seconds=1.0, steps=40_000, adv_start=15_000,
        lr=5e-4, save_every=500, complex_weight=1.0, complex_max_hz=1500.0,
        # the discriminator trains alone for disc_warmup steps first (switched on at once, an
        # untrained one sent the mel distance from 0.35 to 0.89 within 50 steps), and judges
        # random disc_seconds of each crop (its cost dominates a step on the CPU)
        disc_warmup=1_000, disc_seconds=0.5,
    ),
    # GPU: the shipped default size (FoleyCodec() defaults), EnCodec-like schedule.
    "base": dict(
        n_filters=32, lstm_layers=2, latent_dim=64, disc_filters=32, batch_size=32,
        crop_seconds=1.0, steps=60_000, adv_start=3_000, lr=3e-4, save_every=2_000,
        disc_warmup=0, disc_seconds=0.0,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class CodecConfig:
    """Settings of ``foley train codec`` (one field per command-line option)."""

    data: str = opt("", "dataset folder (train.tsv) or audio folder", required=True)
    out: str = opt("", "training folder (checkpoints, export)", required=True)
    preset: str = opt("small", choices=tuple(sorted(PRESETS)))
    split: str = opt("train")
    eval_split: str = opt("val", "split for the eval log (if present)")
    eval_clips: int = opt(16)
    n_filters: int | None = opt(None, "override the preset")
    lstm_layers: int | None = opt(None, "override the preset")
    latent_dim: int | None = opt(None, "override the preset")
    disc_filters: int | None = opt(None, "override the preset")
    batch_size: int | None = opt(None, "override the preset")
    crop_seconds: float | None = opt(None, "override the preset")
    steps: int | None = opt(None, "override the preset")
    adv_start: int | None = opt(None, "override the preset")
    lr: float | None = opt(None, "override the preset")
    save_every: int | None = opt(None, "override the preset")
    stft_dim: int | None = opt(None, "override the preset")
    stft_layers: int | None = opt(None, "override the preset")
    complex_max_hz: float | None = opt(
        None, "override the preset: the phase-aware loss only below this frequency (0: all)"
    )
    disc_warmup: int | None = opt(
        None, "override the preset: steps the discriminator trains alone from --adv-start"
    )
    disc_seconds: float | None = opt(
        None, "override the preset: seconds of each crop the discriminator sees (0: all)"
    )
    max_clips: int = opt(0, "use at most this many clips")
    stats_clips: int = opt(64, "clips for latent stats")
    max_minutes: float = opt(0.0, "stop (and save) after")
    init_from: str | None = opt(
        None, "fine-tune this codec ('default': the shipped one; a pipeline or codec folder); "
        "its config wins over the preset's architecture and sizes"
    )  # fmt: skip
    freeze_encoder: bool = opt(
        False, "train the decoder only (needs --init-from): the encoder, its latents and their "
        "statistics stay as they are, so a denoiser trained on them stays valid"
    )  # fmt: skip
    mel_weight: float | None = opt(None, "override the mel loss's share (default 1)")
    disc_lr: float | None = opt(None, "the discriminator's learning rate (default: --lr)")
    disc_gain: float = opt(
        1.0, "scale of the audio the discriminator judges (quiet audio leaves an MS-STFT "
        "discriminator's logits near 0 and slow to learn)"
    )  # fmt: skip
    patience: int = opt(
        0, "early stopping: stop after this many evals without a lower eval mel distance "
        "(0: off; needs --eval-split)"
    )  # fmt: skip
    log_every: int = opt(10)
    seed: int = opt(0)
    cpu: bool = opt(False, "force the CPU")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, CodecConfig)


def resolve(args: argparse.Namespace) -> dict:
    """The preset with every explicitly given option on top."""
    settings = dict(PRESETS[args.preset])
    for key in settings:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    return settings


# ---- audio cache -----------------------------------------------------------------------------
def _sources(data: Path, split: str, max_clips: int) -> tuple[list, str]:
    """What to decode: (list of (kind, item), description for the cache settings)."""
    tsv = data / f"{split}.tsv"
    if tsv.is_file():
        from foley.data.ego4d import read_metadata

        n = len(read_metadata(tsv))
        n = min(n, max_clips) if max_clips else n
        return [("clip", i) for i in range(n)], f"{tsv}:{n}"
    if data.is_dir() and split == "train":
        files = sorted(p for p in data.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        files = files[:max_clips] if max_clips else files
        return [("file", p) for p in files], f"{data}:{len(files)}"
    return [], ""


def cache_audio(
    data: str | Path, split: str, cache_dir: str | Path, cfg: AVConfig = DEFAULT_CONFIG,
    max_clips: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Decode a split once; returns (flat float32 memmap, offsets (n + 1,) int64).

    Clip ``i`` is ``audio[offsets[i]:offsets[i + 1]]``.  Ego4D-Sounds clips are fitted to
    ``cfg.samples_per_clip``; files of an audio folder keep their length.  Raises InputError if
    the split has no audio.
    """
    data = Path(data)
    items, desc = _sources(data, split, max_clips)
    if not items:
        raise InputError(f"{data}: no {split}.tsv and no audio files to train the codec on")
    from training.store import FeatureStore, StoreWriter

    path = Path(cache_dir) / f"codec_{split}"
    settings = {"source": desc, "sample_rate": cfg.sample_rate, "clip": cfg.samples_per_clip}
    store = FeatureStore.open(path, settings)
    if store is None:
        store = _decode_audio(data, split, items, StoreWriter(path, settings, len(items)), cfg)
    return store["audio"], np.asarray(store["offsets"], np.int64)


def _decode_audio(data: Path, split: str, items: list, writer, cfg: AVConfig):
    """Stream every item's audio into the store ``writer`` makes: ``audio`` (total,) float32,
    ``offsets`` (n + 1,) int64 (unreadable files of an audio folder are skipped)."""
    from foley.io import load_audio

    dataset = None
    if items[0][0] == "clip":
        from foley.data.ego4d import ClipDataset

        dataset = ClipDataset(data, split, cfg)
    offsets = [0]
    raw = writer.work / "audio.f32"
    with open(raw, "wb") as f:
        for kind, item in tqdm(items, desc=f"decoding {split} audio", leave=False):
            if kind == "clip":
                wave = dataset.load_clip(item, with_frames=False)[1]
            else:
                try:
                    wave = load_audio(item, cfg.sample_rate)
                except InputError as err:
                    tqdm.write(f"skipped: {err}")
                    continue
            f.write(np.ascontiguousarray(wave, np.float32).tobytes())
            offsets.append(offsets[-1] + len(wave))
    if len(offsets) < 2:
        raise InputError(f"{data}: none of the audio files could be read")
    audio = writer.array("audio", np.float32, (offsets[-1],))
    audio[:] = np.memmap(raw, np.float32, "r")  # (total,) the clips one after another
    audio.flush()
    del audio
    raw.unlink()
    writer.save("offsets", np.asarray(offsets, np.int64))
    return writer.commit()


def sample_crops(
    audio: np.ndarray, offsets: np.ndarray, rng: np.random.Generator, batch_size: int,
    crop: int,
) -> torch.Tensor:  # fmt: skip
    """Random crops ``(batch, crop)`` of random clips (zero-padded if a clip is shorter)."""
    out = np.zeros((batch_size, crop), np.float32)
    clips = rng.integers(len(offsets) - 1, size=batch_size)
    for b, i in enumerate(clips):
        start, end = int(offsets[i]), int(offsets[i + 1])
        first = start + int(rng.integers(max(1, end - start - crop + 1)))
        piece = audio[first : min(end, first + crop)]
        out[b, : len(piece)] = piece
    return torch.from_numpy(out)


def clip_batches(audio, offsets, count: int, batch_size: int, num_samples: int):
    """The first ``count`` clips, fitted to ``num_samples``, as batches ``(b, num_samples)``."""
    count = min(count, len(offsets) - 1)
    for first in range(0, count, batch_size):
        rows = []
        for i in range(first, min(count, first + batch_size)):
            wave = np.asarray(audio[offsets[i] : offsets[i + 1]][:num_samples], np.float32)
            rows.append(np.pad(wave, (0, num_samples - len(wave))))
        yield torch.from_numpy(np.stack(rows))


# ---- training --------------------------------------------------------------------------------
def generator_losses(
    codec,
    disc,
    wave: torch.Tensor,
    use_adv: bool,
    sample_rate: int,
    with_complex: bool = False,
    complex_max_hz: float | None = None,
    disc_view=None,
):
    """Reconstruction and (if ``use_adv``) adversarial losses: (recon (B, N), dict of losses)."""
    from foley.models.codec_losses import (
        complex_stft_loss,
        feature_matching_loss,
        generator_hinge_loss,
        multires_stft_loss,
        multiscale_mel_loss,
    )

    recon, _ = codec(wave)
    losses = {
        "l1": torch.nn.functional.l1_loss(recon, wave),
        "mel": multiscale_mel_loss(wave, recon, sample_rate),
        "stft": multires_stft_loss(wave, recon),
    }
    if with_complex:
        losses["complex"] = complex_stft_loss(
            wave, recon, max_hz=complex_max_hz, sample_rate=sample_rate
        )
    if use_adv:
        view = disc_view or (lambda x: x)  # (B, N) -> the part the discriminator judges
        fake_logits, fake_fmaps = disc(view(recon).unsqueeze(1))
        with torch.no_grad():
            _, real_fmaps = disc(view(wave).unsqueeze(1))
        losses["adv"] = generator_hinge_loss(fake_logits)
        losses["feat"] = feature_matching_loss(real_fmaps, fake_fmaps)
    return recon, losses


def disc_view(rng: np.random.Generator, length: int, seconds_samples: int):
    """The part of a ``(B, N)`` crop the discriminator judges this step: a random window of
    ``seconds_samples`` (the same one for real and generated audio), or all of it."""
    if not seconds_samples or seconds_samples >= length:
        return lambda x: x
    start = int(rng.integers(0, length - seconds_samples + 1))
    return lambda x: x[..., start : start + seconds_samples]


def export(
    codec, out: Path, audio, offsets, cfg: AVConfig, stats_clips: int, measure_stats: bool = True
) -> Path:
    """Measure latent statistics on training clips (unless ``measure_stats`` is False: a frozen
    encoder keeps its own), record them, ``save_pretrained`` OUT/model."""
    was_training = codec.training
    codec.eval()
    if measure_stats:
        batches = clip_batches(audio, offsets, stats_clips, 8, cfg.samples_per_clip)
        codec.set_latent_stats(*codec.measure_latent_stats(batches))
    codec.save_pretrained(out / "model")
    codec.train(was_training)
    return out / "model"


@torch.no_grad()
def quick_eval(codec, audio, offsets, cfg: AVConfig, clips: int) -> dict[str, float]:
    """Mean reconstruction metrics on the first ``clips`` clips (eval log, not the benchmark)."""
    from foley.metrics.audio_quality import reconstruction_metrics
    from foley.metrics.onsets import detect_onsets, onset_f1

    was_training = codec.training
    codec.eval()
    sums: dict[str, float] = {}
    n = 0
    for wave in clip_batches(audio, offsets, clips, 8, cfg.samples_per_clip):
        wave = wave.to(codec.device)
        recon = codec.decode_raw(codec.encode_raw(wave), wave.shape[-1])
        metrics = reconstruction_metrics(wave, recon, cfg.sample_rate)
        # contacts kept: onsets found in the reconstruction against those of the clean clip
        metrics["onset_agree"] = np.array(
            [
                onset_f1(r, detect_onsets(w, cfg), cfg).f1
                for w, r in zip(wave.cpu().numpy(), recon.cpu().numpy())
            ]
        )
        for key, values in metrics.items():
            sums[key] = sums.get(key, 0.0) + float(values.sum())
        n += wave.shape[0]
    codec.train(was_training)
    return {f"eval_{k}": v / max(n, 1) for k, v in sums.items()}


def run(args: CodecConfig | argparse.Namespace) -> int:
    args = config_from_args(CodecConfig, args)
    from encodec.msstftd import MultiScaleSTFTDiscriminator

    from foley.models.codec import FoleyCodec
    from foley.models.codec_losses import LossBalancer, discriminator_hinge_loss
    from training.common import make_accelerator
    from training.loop import TrainLoop

    cfg = DEFAULT_CONFIG
    s = resolve(args)
    out = Path(args.out)
    accelerator = make_accelerator(out, args.seed, cpu=args.cpu)
    if accelerator.mixed_precision == "fp16":
        raise InputError("train the codec in bf16 or fp32: the loss balancer bypasses fp16 scaling")
    with accelerator.main_process_first():  # one process decodes, the others read its cache
        audio, offsets = cache_audio(args.data, args.split, out / FEATURES_DIR, cfg, args.max_clips)
        try:
            eval_set = cache_audio(
                args.data, args.eval_split, out / FEATURES_DIR, cfg, args.eval_clips
            )
        except InputError:
            eval_set = None
    crop = cfg.num_samples(s["crop_seconds"])
    arch = {k: s[k] for k in ("architecture", "stft_dim", "stft_layers", "stft_mult") if k in s}
    seanet = {k: s[k] for k in ("n_filters", "lstm_layers") if k in s}
    if args.init_from:  # its config (architecture, sizes, latent stats) wins over the preset's
        from training.finetune import component_dir

        codec = FoleyCodec.from_pretrained(component_dir(args.init_from, "codec", "FoleyCodec"))
    else:
        codec = FoleyCodec(sample_rate=cfg.sample_rate, latent_dim=s["latent_dim"], **seanet,
                           **arch)  # fmt: skip
    if args.freeze_encoder:
        if not args.init_from:
            raise InputError("--freeze-encoder needs --init-from (the encoder to keep)")
        codec.encoder.requires_grad_(False)
    if args.patience > 0 and eval_set is None:
        raise InputError(f"--patience needs an eval split: {args.data} has no {args.eval_split}")
    if 0 < cfg.num_samples(s.get("disc_seconds") or 0.0) <= 2048:  # the MS-STFT's widest window
        raise InputError("--disc-seconds must be above 0.128 s (the discriminator's 2048 window)")
    if codec.hop_length != cfg.hop_length:
        raise InputError(f"codec hop {codec.hop_length} differs from the config's {cfg.hop_length}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # encodec's weight_norm
        warnings.filterwarnings("ignore", category=UserWarning)
        disc = MultiScaleSTFTDiscriminator(filters=s["disc_filters"])
    for sub in disc.discriminators:  # the STFT windows are views: give them their own storage
        sub.spec_transform.window = sub.spec_transform.window.clone()
    trained = [p for p in codec.parameters() if p.requires_grad]  # all but a frozen encoder
    opt_g = torch.optim.Adam(trained, lr=s["lr"], betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.disc_lr or s["lr"], betas=(0.5, 0.9))
    with_complex = s.get("complex_weight", 0.0) > 0
    complex_max_hz = s.get("complex_max_hz") or None  # 0: the whole band
    weights = {**LOSS_WEIGHTS, "complex": s.get("complex_weight", 0.0)}
    if args.mel_weight is not None:
        weights["mel"] = args.mel_weight
    balancer = LossBalancer(weights)
    codec, disc, opt_g, opt_d = accelerator.prepare(codec, disc, opt_g, opt_d)
    accelerator.register_for_checkpointing(balancer)
    unwrapped = accelerator.unwrap_model(codec)

    def export_codec(step: int) -> dict | None:
        """Eval; export OUT/model (with --patience: only when the eval mel distance fell)."""
        if not accelerator.is_main_process:
            return None
        metrics = quick_eval(unwrapped, *eval_set, cfg, args.eval_clips) if eval_set else None
        if args.patience > 0 and not loop.improved(metrics["eval_mel_distance"], args.patience):
            return metrics
        export(unwrapped, out, audio, offsets, cfg, args.stats_clips, not args.freeze_encoder)
        return metrics

    loop = TrainLoop(
        accelerator,
        out,
        s["steps"],
        desc="codec",
        log_every=args.log_every,
        save_every=s["save_every"],
        export_every=s["save_every"],
        max_minutes=args.max_minutes,
        export=export_codec,
        state={
            "preset": args.preset,
            **s,
            "freeze_encoder": args.freeze_encoder,
            "loss_weights": weights,
            "disc_lr": args.disc_lr or s["lr"],
            "disc_gain": args.disc_gain,
        },
        postfix="mel",
    )
    if loop.step == 0 and args.patience > 0:  # the starting point counts
        loop.log(0, **(export_codec(0) or {}))
    codec.train()
    disc.train()
    for step in loop:
        # batches drawn by step (a resumed run sees the same ones), and by rank under DDP
        rank = [accelerator.process_index] if accelerator.num_processes > 1 else []
        rng = np.random.default_rng([args.seed, step, *rank])
        wave = sample_crops(audio, offsets, rng, s["batch_size"], crop).to(accelerator.device)
        train_disc = step >= s["adv_start"]
        use_adv = step >= s["adv_start"] + s.get("disc_warmup", 0)  # the generator's adv losses
        window = disc_view(rng, wave.shape[-1], cfg.num_samples(s.get("disc_seconds") or 0.0))

        def view(x: torch.Tensor, window=window) -> torch.Tensor:  # what the discriminator judges
            return window(x) * args.disc_gain

        with accelerator.autocast():
            recon, losses = generator_losses(
                codec, disc, wave, use_adv, cfg.sample_rate, with_complex, complex_max_hz, view
            )
        opt_g.zero_grad(set_to_none=True)
        grad_norms = balancer.backward(losses, recon)
        opt_g.step()
        row = {k: float(v.detach()) for k, v in losses.items()}
        if train_disc:
            with accelerator.autocast():
                real_logits, _ = disc(view(wave).unsqueeze(1))
                fake_logits, _ = disc(view(recon.detach()).unsqueeze(1))
                loss_d = discriminator_hinge_loss(real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            accelerator.backward(loss_d)
            opt_d.step()
            row["disc"] = float(loss_d.detach())
        row.update({f"gradnorm_{k}": v for k, v in grad_norms.items()})
        loop.end_step(**row)
    return 0
