"""``foley eval`` end to end with an UNTRAINED small pipeline: the rows the model does not touch.

Until the default models are trained (the lead runs ``foley eval`` on them), this prints the
quality table of a randomly initialised small pipeline (random MC3, so retrieval is random too)
on a FoleyWorld set at the default contract (3 s, 16 fps, 112 px).  Its model rows mean
nothing; the ground-truth, silence and random-clip rows are real figures of the benchmark's
ceilings and floors under the shared metric definitions.

    python benchmarks/eval_untrained.py --work /tmp/eval_untrained [--videos 20]
        [--clips-per-video 4] [--n N] [--steps 2]

Writes ``WORK/fw`` (FoleyWorld, generated once), ``WORK/model``, ``WORK/avs`` and runs
``foley eval`` on ``test`` and ``test_shifted`` into ``WORK/eval-<split>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from foley.config import DEFAULT_CONFIG as CFG


def build(work: Path, videos: int, clips_per_video: int, seed: int) -> None:
    from foley.data.foleyworld import FoleyWorldSettings, generate_dataset
    from foley.models.avs import AVSModel
    from foley.models.codec import FoleyCodec
    from foley.models.denoiser import FoleyDenoiser
    from foley.models.mc3 import MC3Model
    from foley.models.mc3_embed import model_id
    from foley.models.video_encoder import VideoEncoder
    from foley.pipelines.foley_pipeline import FoleyPipeline
    from foley.retrieval import ClipRetriever

    data = work / "fw"
    if not (data / "foleyworld.json").is_file():
        settings = FoleyWorldSettings(
            videos=videos,
            clips_per_video=clips_per_video,
            seed=seed,
            test_fraction=0.3,
            shifted_test_videos=max(1, videos // 4),
        )
        generate_dataset(data, settings, CFG)
    torch.manual_seed(seed)
    mc3 = MC3Model(
        embed_dim=64,
        audio_channels=(8, 16, 32),
        video_dim=32,
        video_channels=(8, 16, 32),
        video_temporal_layers=1,
        video_frame_size=56,
        video_frame_stride=2,
    ).eval()
    mc3.save_pretrained(work / "mc3")
    retriever = ClipRetriever.build(
        mc3, model_id(work / "mc3"), data, "train", work / "index", cfg=CFG
    )
    codec = FoleyCodec(latent_dim=8, n_filters=8, lstm_layers=0)
    waves = 0.1 * torch.randn(4, CFG.samples_per_clip, generator=torch.Generator().manual_seed(0))
    codec.set_latent_stats(*codec.measure_latent_stats([waves]))
    denoiser = FoleyDenoiser(
        latent_dim=8,
        video_dim=32,
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        ff_mult=2,
        latents_per_frame=CFG.latents_per_frame,
    )
    pipe = FoleyPipeline(
        codec=codec,
        video_encoder=VideoEncoder(dim=32, channels=(8, 16)),
        denoiser=denoiser,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        retriever=retriever,
        av_config=CFG.to_dict(),
    )
    pipe.save_pretrained(work / "model")
    AVSModel(av_config=CFG.to_dict()).save_pretrained(work / "avs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="working folder")
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--clips-per-video", type=int, default=4)
    parser.add_argument("--n", type=int, help="clips per split (default: all)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from foley.cli.main import main as foley

    work = Path(args.work)
    if not (work / "model" / "model_index.json").is_file():
        build(work, args.videos, args.clips_per_video, args.seed)
    for split in ("test", "test_shifted"):
        argv = ["eval", "--data", str(work / "fw"), "--split", split]
        argv += ["--model", str(work / "model"), "--avs", str(work / "avs")]
        argv += ["--steps", str(args.steps), "--seed", str(args.seed)]
        argv += ["--out", str(work / f"eval-{split}"), "--device", "cpu"]
        argv += ["--n", str(args.n)] if args.n else []
        print(f"\n## foley {' '.join(argv)}  (UNTRAINED model: its rows mean nothing)\n")
        foley(argv)


if __name__ == "__main__":
    main()
