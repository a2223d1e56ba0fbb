"""Flow matching vs v- vs epsilon-prediction for the denoiser, measured on log-mel "latents".

    python benchmarks/objective_surrogate.py FEAT [--steps 400 --batch 16 --sample-steps 25]

Why a surrogate: choosing the objective needs latents that carry the audio; this trains the
same FoleyDenoiser (same size, data, steps, seed, optimiser; only the objective differs) on
per-channel-normalised 64-band log-mels at the codec's 50 frames per second, so the choice does
not wait for a trained codec. ``FEAT`` is a features folder with frozen video features
(``training/features.py --video-encoder``), whose clip paths give the audio. The condition is a
neighbour clip of the same video, dropped 10% of the time, video dropped 10% (as in training).

Metrics on the val clips (``--seeds`` samples each, sampled with the objective's scheduler at
``--sample-steps`` steps, guidance 3): ``fd`` (Frechet distance of generated vs true frames),
``sync`` (temporal correlation with the true clip, mean over bands), ``mse``; plus the
retrieval-only row (the neighbour's own frames) and the video-dropped floor of each model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F


def mel_latents(paths: list[str], cfg) -> np.ndarray:
    """(n, latents_per_clip, 64) log-mel at hop_length (50 frames/s)."""
    from dataclasses import replace

    from foley.audio import log_mel
    from foley.io import load_audio

    mcfg = replace(cfg, mel_hop_length=cfg.hop_length)
    n = cfg.samples_per_clip
    waves = [np.pad(load_audio(p)[:n], (0, max(0, n - load_audio(p)[:n].size))) for p in paths]
    mel = log_mel(torch.from_numpy(np.stack(waves)), mcfg)  # (n, 64, frames)
    return mel.transpose(1, 2)[:, : cfg.latents_per_clip].numpy()


@torch.no_grad()
def sample(model, scheduler, video, cond, steps: int, guidance: float, seed: int):
    """The pipeline's sampler loop (classifier-free guidance on the video)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(video.shape[0], 150, 64, generator=g)
    scheduler.set_timesteps(steps)
    x = x * getattr(scheduler, "init_noise_sigma", 1.0)
    n = x.shape[0]
    keep = torch.arange(2 * n) < n
    for t in scheduler.timesteps:
        inp = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x
        pred = model(
            torch.cat([inp, inp]),
            t,
            torch.cat([video, video]),
            torch.cat([cond, cond]),
            video_keep=keep,
        )
        p_c, p_u = pred.chunk(2)
        x = scheduler.step(p_u + guidance * (p_c - p_u), t, x).prev_sample
    return x


def main(argv: list[str] | None = None) -> int:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.denoiser_objectives import summarize
    from foley.models.denoiser import FoleyDenoiser
    from foley.models.objectives import Objective
    from training.features import SplitFeatures, read_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features")
    parser.add_argument("--objectives", nargs="+", default=["flow", "v", "eps"])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--sample-steps", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)

    cfg = read_config(args.features)
    train, val = SplitFeatures(args.features, "train"), SplitFeatures(args.features, "val")
    x_tr = mel_latents([c["clip_path"] for c in train.clips], cfg)
    x_va = mel_latents([c["clip_path"] for c in val.clips], cfg)
    mean, std = x_tr.mean((0, 1)), x_tr.std((0, 1)) + 1e-5
    x_tr, x_va = (x_tr - mean) / std, (x_va - mean) / std
    x_tr, x_va = torch.from_numpy(x_tr).float(), torch.from_numpy(x_va).float()
    v_tr = torch.from_numpy(np.array(train.video_feats, np.float32))
    v_va = torch.from_numpy(np.array(val.video_feats, np.float32))
    nb_tr = [c["neighbours"] or [i] for i, c in enumerate(train.clips)]
    cond_va = torch.stack([x_va[c["neighbours"][0]] for c in val.clips])
    true = [x.numpy() for x in x_va]
    rows = [summarize("retrieval only: the neighbour clip's frames", list(cond_va.numpy()), true)]
    for objective in args.objectives:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        model = FoleyDenoiser(
            latent_dim=64,
            video_dim=v_tr.shape[-1],
            hidden_dim=args.hidden_dim,
            num_layers=args.layers,
            latents_per_frame=cfg.latents_per_frame,
        )
        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
        target_of = Objective(objective)
        start = time.time()
        for _ in range(args.steps):
            idx = rng.integers(0, len(x_tr), args.batch)
            cond = torch.stack([x_tr[int(rng.choice(nb_tr[i]))] for i in idx])
            noisy, t, target = target_of.noisy_target(x_tr[idx])
            b = len(idx)
            pred = model(noisy, t, v_tr[idx], cond, torch.rand(b) >= 0.1, torch.rand(b) >= 0.1)
            loss = F.mse_loss(pred, target)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        model.eval()
        sched = target_of.sampler()
        for guidance, label in ((3.0, ""), (0.0, " video dropped")):
            gens, refs = [], []
            for seed in range(args.seeds if guidance else 1):
                out = sample(model, sched, v_va, cond_va, args.sample_steps, guidance, seed)
                gens += list(out.numpy())
                refs += true
            name = f"{objective} ({type(sched).__name__}){label}"
            rows.append(summarize(name, gens, refs))
        print(f"trained {objective}: {args.steps} steps in {time.time() - start:.0f} s", flush=True)
    print(f"{'':<60} {'fd':>7} {'sync':>6} {'mse':>6} {'n':>4}")
    for name, fd, s, mse, n in rows:
        print(f"{name[-60:]:<60} {fd:7.2f} {s:6.3f} {mse:6.3f} {n:4d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
