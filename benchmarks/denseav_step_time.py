"""Milliseconds per DenseAV training step (forward, backward, AdamW) at batch ``--batch``, on
random inputs of the real shapes: computed on the fly from frames and waves (the first
trainer) against stored inputs (frozen EfficientNet maps and log-mels, ``training.train_denseav``).

    python benchmarks/denseav_step_time.py [--batch 16] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch


def step_ms(model, loss_fn, inputs: tuple, repeats: int) -> float:
    """Best of ``repeats`` steps of ``loss_fn(model, *inputs)``, in ms."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-3)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        loss, _ = loss_fn(model, *inputs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best


def main(argv: list[str] | None = None) -> int:
    from foley.models.denseav import DenseAVModel, denseav_loss
    from training.train_denseav import step_loss

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    rows = [
        ("first trainer: on the fly, 2-D log-mel CNN", "cnn2d", (32, 64, 96), False, False),
        ("stored inputs, 2-D log-mel CNN", "cnn2d", (32, 64, 96), True, False),
        (
            "stored inputs, conv1d log-mel encoder (trainer default)",
            "conv1d",
            (64, 96, 128),
            True,
            True,
        ),
    ]
    for name, encoder, channels, stored, normalize in rows:
        model = DenseAVModel(
            visual="efficientnet",
            audio_encoder=encoder,
            audio_channels=channels,
            normalize=normalize,
        ).train()
        size, n = model.av.frame_size, model.av.samples_per_clip
        frames = torch.rand(args.batch, 3, size, size, generator=g)
        waves = 0.1 * torch.randn(args.batch, n, generator=g)
        if stored:
            with torch.no_grad():
                v, mel = model.visual_input(frames), model.audio_input(waves)
                voiced = model.voiced(waves, model.audio_steps(mel.shape[-1]))
            ms = step_ms(model, step_loss, (v, mel, voiced), args.repeats)
        else:
            ms = step_ms(model, denseav_loss, (frames, waves), args.repeats)
        print(f"| {name} | {args.batch} | {args.threads} | {ms:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
