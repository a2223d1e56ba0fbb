"""FoleyPipeline: silent video in, synchronised action sounds out (Action2Sound's AV-LDM).

Components (diffusers ``DiffusionPipeline``; each saved in its own subfolder):

* ``codec`` (:class:`~foley.models.codec.FoleyCodec`): audio <-> latents at 50 frames/s;
* ``video_encoder`` (:class:`~foley.models.video_encoder.VideoEncoder`, the sync encoder
  :class:`~foley.models.sync.SyncModel`, whose onset/loudness curves also feed the denoiser,
  or :class:`~foley.models.pretrained_video.PretrainedVideoEncoder`: frozen EfficientNet-Lite0
  features, alone or beside the sync encoder's): per-frame features;
* ``denoiser`` (:class:`~foley.models.denoiser.FoleyDenoiser`);
* ``scheduler``: any diffusers scheduler the denoiser was trained for (flow matching, DDIM...);
* ``retriever`` (optional, :class:`~foley.retrieval.ClipRetriever`: MC3, the index and its
  clips, in ``retriever/``): retrieval of the audio-conditioning clip; an explicit
  ``condition_audio`` works without one. Folders saved before the retriever was a component
  (``mc3/``, ``index/``, ``clips/`` at the top level) still load.
* ``avs`` (optional, :class:`~foley.models.avs.AVSModel`, in ``avs/``): with
  ``return_masks=True`` the output adds, per video, the sounding-object masks of the generated
  audio and its alignment score (:mod:`foley.analysis.masks`); :meth:`FoleyPipeline.set_avs`
  attaches one, and ``from_pretrained`` loads ``DIR/avs`` whenever that folder exists.

Modes: ``"ambient_joint"`` conditions on the training clip whose audio is nearest to the video
in MC3 space (keeps a matching ambience); ``"action_focused"`` on the nearest among clips with
an action-only track (FoleyWorld's, conditioning on that track) and clips whose own ambient
level is below ``ambient_db_max`` (suppresses ambience); ``"no_condition"`` uses the
learned null condition (the "model without audio condition" baseline).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline, SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.defaults import DEFAULT_MODEL_DIR
from foley.errors import FoleyError, InputError, ModelMismatchError
from foley.models.avs import AVSModel
from foley.models.codec import FoleyCodec
from foley.models.denoiser import FoleyDenoiser
from foley.models.denseav import DenseAVModel
from foley.models.pretrained_video import PretrainedVideoEncoder
from foley.models.sync import SyncModel
from foley.models.video_encoder import VideoEncoder
from foley.pipelines.shaping import MAX_SHAPING, shape_to_curves, shaping_settings
from foley.pipelines.solvers import check_solver, flow_scheduler, model_evaluations, sample
from foley.pipelines.windows import CROSSFADES, plan_windows, stitch
from foley.retrieval import MC3_SUBFOLDER, ClipRetriever, Retrieved, open_index

MODES = ("ambient_joint", "action_focused", "no_condition")
DEFAULT_STEPS = 25  # sampler steps of a pipeline saved without ``default_steps``
DEFAULT_GUIDANCE = 3.0  # guidance scale of a mode a pipeline saved no ``default_guidance`` for


VideoLike = Any  # path | foley.io.Video | uint8 (T, S, S, 3) array | float (T, 3, S, S) tensor
AudioLike = Any  # path | float (N,) array or tensor at cfg.sample_rate


@dataclass
class FoleyPipelineOutput(BaseOutput):
    """What :class:`FoleyPipeline` returns, one entry per input video.

    audios: (num_samples,) float32 at ``sample_rate``, as long as the video.
    condition_audios: the (clip-length) conditioning audio used, None for ``no_condition``.
    condition_ids: index id of the retrieved clip; ``"user"`` for ``condition_audio``.
    condition_scores: MC3 video-to-audio cosine similarity of the retrieved clip (else None).
    retrieved: the retrieved clip (:class:`~foley.retrieval.Retrieved`: id, score, index
        metadata such as narration and ambient level, audio); None where none was retrieved.
    latents: with ``output_type="latent"``, the denoised window latents of each video
        ((windows, latents_per_clip, latent_dim) tensors) and ``audios`` is None.
    masks: with ``return_masks=True``, per video (T, S, S) float32 in [0, 1]: the AVS model's
        probability that each pixel of each input frame (``av_config.fps``, ``frame_size``)
        makes the generated sound.
    alignment_scores: with ``return_masks=True``, per video the no-ground-truth alignment
        score of the generated audio in [0, 1] (:func:`foley.metrics.avs.alignment_score`;
        0.5: no better than the same audio mistimed).
    heatmaps, heatmap_scores: with ``return_heatmaps=True``, per video DenseAV's "where the
        sound comes from" heatmaps (T, S, S) float32 in [0, 1] and its alignment score against
        the same audio shuffled in time (:func:`foley.analysis.sound_heatmaps`).
    unshaped_audios: with ``return_unshaped=True``, per video the same decoded audio before
        sync shaping (``audios`` itself when shaping is off): one denoising gives both.
    """

    audios: list[np.ndarray]
    sample_rate: int
    mode: str
    condition_audios: list[np.ndarray | None]
    condition_ids: list[str | None]
    condition_scores: list[float | None]
    retrieved: list[Retrieved | None] | None = None
    latents: list[torch.Tensor] | None = None
    masks: list[np.ndarray] | None = None
    alignment_scores: list[float] | None = None
    heatmaps: list[np.ndarray] | None = None
    heatmap_scores: list[float] | None = None
    unshaped_audios: list[np.ndarray] | None = None


@dataclass
class _Prepared:
    frames: torch.Tensor  # (T, 3, S, S) float in [0, 1], padded to cover num_samples
    num_samples: int
    num_frames: int = 0  # frames of the input video, before the padding


class FoleyPipeline(DiffusionPipeline):
    """Video-to-audio generation; see the module docstring for components and modes."""

    model_cpu_offload_seq = "video_encoder->denoiser->codec"
    _optional_components = ["retriever", "avs", "sync", "denseav"]

    def __init__(
        self,
        codec: FoleyCodec,
        video_encoder: VideoEncoder | SyncModel | PretrainedVideoEncoder,
        denoiser: FoleyDenoiser,
        scheduler: SchedulerMixin,
        retriever: ClipRetriever | None = None,
        av_config: dict | None = None,
        avs: AVSModel | None = None,
        sync: SyncModel | None = None,
        denseav: DenseAVModel | None = None,
        sync_shaping_default: float | None = None,
        default_steps: int | None = None,
        action_level_db: float | None = None,
        default_guidance: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.register_modules(
            codec=codec,
            video_encoder=video_encoder,
            denoiser=denoiser,
            scheduler=scheduler,
            retriever=retriever,
            avs=avs,
            sync=sync,
            denseav=denseav,
        )
        self.register_to_config(av_config=dict(av_config or DEFAULT_CONFIG.to_dict()))
        # the shaping factor of a call that does not choose one, saved with the pipeline (None:
        # 1 with a sync model, else 0): a denoiser in sync by itself may ship with shaping off
        self.register_to_config(sync_shaping_default=sync_shaping_default)
        # the sampler steps of a call that does not choose them (None: 25), saved with the
        # pipeline beside its scheduler: a few-step solver ships with its step count
        if default_steps is not None and int(default_steps) < 1:
            raise InputError(f"default_steps must be >= 1, got {default_steps}")
        self.register_to_config(default_steps=None if default_steps is None else int(default_steps))
        # action-focused loudness (foley.pipelines.level): the level of its training data's
        # action tracks; None: action-focused audio is left at the level the denoiser gives
        self.register_to_config(
            action_level_db=None if action_level_db is None else float(action_level_db)
        )
        # the guidance scale of a call that names none, per mode (others: DEFAULT_GUIDANCE)
        guidance = {str(k): float(v) for k, v in (default_guidance or {}).items()}
        for k, v in guidance.items():
            if k not in MODES or not (np.isfinite(v) and v >= 0):
                raise InputError(f"default_guidance: {k!r}: {v} is not a mode and a scale >= 0")
        self.register_to_config(default_guidance=guidance or None)
        self.av_config = AVConfig(**self.config.av_config)
        lpf = float(denoiser.config.latents_per_frame)
        if abs(lpf - self.av_config.latents_per_frame) > 1e-6:
            raise ModelMismatchError(
                f"denoiser was built for {lpf} latents per frame, the config gives "
                f"{self.av_config.latents_per_frame}"
            )
        if codec.config.latent_dim != denoiser.config.latent_dim:
            raise ModelMismatchError(
                f"codec latent_dim {codec.config.latent_dim} != denoiser latent_dim "
                f"{denoiser.config.latent_dim}"
            )

    @property
    def mc3(self):
        """The retriever's :class:`~foley.models.mc3.MC3Model`, or None without a retriever."""
        return None if self.retriever is None else self.retriever.mc3

    @property
    def index(self):
        """The retriever's index (a ``retrieval_index.ClipIndex``), or None."""
        return None if self.retriever is None else self.retriever.index

    def set_retrieval(self, mc3=None, index=None) -> FoleyPipeline:
        """Attach (or detach, with ``mc3=None``) a :class:`~foley.retrieval.ClipRetriever` of
        ``mc3`` over ``index`` (a ClipIndex, its folder, or None); ``save_pretrained`` writes
        it to ``retriever/``."""
        if isinstance(index, (str, os.PathLike)):
            index = open_index(index)
        self.register_modules(retriever=None if mc3 is None else ClipRetriever(mc3, index))
        return self

    def set_avs(self, avs=None) -> FoleyPipeline:
        """Attach (or detach, with None) the AVS model that ``return_masks`` uses.

        Registers it as a component, so that ``save_pretrained`` writes it to ``avs/``.
        """
        self.register_modules(avs=avs)
        return self

    def set_denseav(self, denseav=None) -> FoleyPipeline:
        """Attach (or detach, with None) the DenseAV model that ``return_heatmaps`` and
        :meth:`sound_heatmaps` use. Saved to ``denseav/``."""
        self.register_modules(denseav=denseav)
        return self

    def set_sync(self, sync=None) -> FoleyPipeline:
        """Attach (or detach, with None) a :class:`~foley.models.sync.SyncModel` whose curves
        drive sync shaping when the video encoder is not itself a SyncModel (a denoiser
        conditioned on other video features), and, when it is, replace the encoder's curves
        (shaping's and the denoiser's; the features stay the encoder's): a better-timed sync
        model plugs in without retraining the denoiser. Saved to ``sync/``."""
        self.register_modules(sync=sync)
        return self

    # ---- save / load ----------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike | None = None, **kwargs
    ):
        """Load the components model_index.json lists (diffusers' loading: the optional
        ``retriever``, ``avs`` and ``sync`` are loaded when listed; pass ``avs=None`` to leave
        one out, ``avs=model`` to replace it); ``index`` (a ClipIndex or a folder) replaces the
        retriever's index. A folder saved before the retriever was a component (``mc3`` listed,
        ``mc3/``, ``index/`` and ``clips/`` beside it) gets its retriever from those. With no
        folder, the default model shipped inside the package (``DEFAULT_MODEL_DIR``). To add
        a component to a loaded pipeline, use ``FoleyPipeline.from_pipe(pipe, avs=model)``.
        """
        if pretrained_model_name_or_path is None:
            if not (DEFAULT_MODEL_DIR / "model_index.json").is_file():
                raise InputError(f"the default model is not installed ({DEFAULT_MODEL_DIR})")
            pretrained_model_name_or_path = DEFAULT_MODEL_DIR
        root = Path(pretrained_model_name_or_path)
        index = kwargs.pop("index", None)
        legacy = "retriever" not in kwargs and _lists_legacy_mc3(root)
        # (diffusers only loads components from modules already imported: this module imports
        # every component class for the typed arguments above)
        if legacy:  # its "mc3" entry is expected to go unused: no warning about it
            from diffusers.utils import logging as diffusers_logging

            verbosity = diffusers_logging.get_verbosity()
            diffusers_logging.set_verbosity_error()
        try:
            pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        finally:
            if legacy:
                diffusers_logging.set_verbosity(verbosity)
        if legacy:  # mc3/, index/ and clips/ at the top level: a retriever folder in itself
            pipe.register_modules(retriever=ClipRetriever.from_pretrained(root).eval())
        if index is not None and pipe.retriever is not None:
            pipe.register_modules(retriever=pipe.retriever.with_index(index))
        return pipe

    @classmethod
    def from_pipe(cls, pipeline: FoleyPipeline, **kwargs) -> FoleyPipeline:
        """diffusers' ``from_pipe`` (a pipeline sharing ``pipeline``'s components, with those in
        ``kwargs`` added or replaced); ``index=`` gives the retriever another index."""
        index = kwargs.pop("index", None)
        if index is not None and kwargs.get("retriever", pipeline.retriever) is not None:
            kwargs["retriever"] = kwargs.get("retriever", pipeline.retriever).with_index(index)
        return super().from_pipe(pipeline, **kwargs)

    # ---- inputs ---------------------------------------------------------------------------
    def check_inputs(
        self,
        videos: list,
        mode: str,
        conditions: list | None,
        num_inference_steps: int,
        guidance_scale: float,
        overlap_seconds: float,
        crossfade: str,
        output_type: str = "np",
    ) -> None:
        cfg = self.av_config
        if not videos:
            raise InputError("no video given")
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if int(num_inference_steps) < 1:
            raise InputError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if not np.isfinite(guidance_scale) or guidance_scale < 0:
            raise InputError(f"guidance_scale must be >= 0, got {guidance_scale}")
        if not 0 <= overlap_seconds <= cfg.clip_seconds / 3:
            raise InputError(
                f"overlap_seconds must be between 0 and {cfg.clip_seconds / 3:g} "
                "(a third of a clip)"
            )
        if output_type not in ("np", "latent"):
            raise InputError(f"output_type must be 'np' or 'latent', not {output_type!r}")
        if crossfade not in CROSSFADES:
            raise InputError(f"crossfade must be one of {', '.join(CROSSFADES)}")
        if conditions is not None and len(conditions) not in (1, len(videos)):
            raise InputError(
                f"give one condition_audio or one per video ({len(videos)}), not {len(conditions)}"
            )
        if (
            mode != "no_condition"
            and conditions is None
            and (self.mc3 is None or self.index is None)
        ):
            raise InputError(
                f"mode {mode!r} retrieves its conditioning clip: pass condition_audio, or load "
                "the pipeline with an MC3 model and an index"
            )

    def _prepare_video(self, video: VideoLike) -> _Prepared:
        """Any accepted video form -> frames (T, 3, S, S) in [0, 1] and its length in samples."""
        from foley.io import Video, frames_to_tensor, load_video

        cfg = self.av_config
        if isinstance(video, (str, os.PathLike)):
            video = load_video(video, cfg, with_audio=False)
        if isinstance(video, Video):
            frames, num_samples = frames_to_tensor(video.frames), cfg.num_samples(video.duration)
        elif isinstance(video, np.ndarray):
            if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
                raise InputError(f"frame arrays must be uint8 (T, H, W, 3), got {video.shape}")
            frames = frames_to_tensor(video)
            num_samples = round(frames.shape[0] * cfg.samples_per_frame)
        elif isinstance(video, torch.Tensor):
            if video.ndim != 4 or video.shape[1] != 3:
                raise InputError(f"frame tensors must be (T, 3, H, W), got {tuple(video.shape)}")
            frames = video.float()
            if not torch.isfinite(frames).all():
                raise InputError("frame tensors contain NaN or infinite values")
            num_samples = round(frames.shape[0] * cfg.samples_per_frame)
        else:
            raise InputError(f"unsupported video input of type {type(video).__name__}")
        size = cfg.frame_size
        if frames.shape[0] == 0:
            raise InputError("the video has no frames")
        num_frames = frames.shape[0]
        if tuple(frames.shape[-2:]) != (size, size):
            raise InputError(
                f"frames must be {size}x{size} (got {frames.shape[-1]}x{frames.shape[-2]}): "
                "decode them with foley.io.load_video"
            )
        # pad (repeat the last frame) so the frames cover every output sample and a full clip
        need = max(cfg.frames_per_clip, int(np.ceil(num_samples / cfg.samples_per_frame)))
        if frames.shape[0] < need:
            frames = torch.cat([frames, frames[-1:].expand(need - frames.shape[0], -1, -1, -1)])
        return _Prepared(frames=frames, num_samples=num_samples, num_frames=num_frames)

    def _prepare_condition(self, audio: AudioLike) -> np.ndarray:
        """Condition audio -> exactly one clip (clip_seconds) of float32 (tiled if shorter)."""
        from foley.io import load_audio

        cfg = self.av_config
        if isinstance(audio, (str, os.PathLike)):
            audio = load_audio(audio, cfg.sample_rate)
        wave = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else audio
        wave = np.asarray(wave, dtype=np.float32)
        if sum(d > 1 for d in wave.shape) > 1:  # reshape(-1) would interleave the channels
            raise InputError(
                f"condition_audio arrays must be mono (N,), got shape {wave.shape}: "
                "load files with foley.io.load_audio"
            )
        wave = wave.reshape(-1)
        if wave.size == 0 or not np.all(np.isfinite(wave)):
            raise InputError("condition_audio is empty or has NaN/infinite samples")
        n = cfg.samples_per_clip
        if wave.size < n:
            wave = np.tile(wave, int(np.ceil(n / wave.size)))
        return np.clip(wave[:n], -1.0, 1.0)

    # ---- retrieval ------------------------------------------------------------------------
    @torch.no_grad()
    def retrieve(
        self,
        frames: list[torch.Tensor],
        mode: str,
        ambient_db_max: float = -45.0,
        where: dict | None = None,
    ) -> list[Retrieved]:
        """Conditioning clip per video (:class:`~foley.retrieval.Retrieved`; its audio made
        clip-length by :meth:`_prepare_condition`).

        frames: per video (T, 3, S, S) float, or any form ``__call__`` accepts. The query is
        the mean MC3 video embedding of its clip-length windows; ``action_focused`` only
        considers clips with an action-only track (and returns that track) or with
        ``ambient_db`` at or below ``ambient_db_max`` (dBFS).
        """
        cfg = self.av_config
        frames = [
            f
            if isinstance(f, torch.Tensor) and f.ndim == 4 and f.shape[1] == 3
            else self._prepare_video(f).frames
            for f in frames
        ]
        found = self.retriever.retrieve(
            frames, mode, ambient_db_max=ambient_db_max, where=where, cfg=cfg
        )
        for r in found:
            r.audio = self._prepare_condition(r.audio)
        return found

    # ---- generation -----------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        video: VideoLike | list[VideoLike],
        mode: str = "ambient_joint",
        condition_audio: AudioLike | list[AudioLike] | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        overlap_seconds: float | None = None,
        crossfade: str = "adaptive",
        ambient_db_max: float = -45.0,
        retrieval_where: dict | None = None,
        max_batch_windows: int = 32,
        output_type: str = "np",
        return_dict: bool = True,
        return_masks: bool = False,
        mask_shuffles: int = 8,
        sync_shaping: float | None = None,
        return_heatmaps: bool = False,
        solver: str | None = None,
        shift: float | None = None,
        return_unshaped: bool = False,
        match_action_level: bool = True,
    ) -> FoleyPipelineOutput | tuple:
        """Generate audio for one video or a batch.

        Args:
            video: a path, a ``foley.io.Video``, uint8 frames (T, S, S, 3) or float frames
                (T, 3, S, S) in [0, 1] at ``av_config.fps``, or a list of those.
            mode: ``"ambient_joint"``, ``"action_focused"`` or ``"no_condition"``.
            condition_audio: overrides retrieval: a path or a (N,) wave at 16 kHz, one for all
                videos or one per video. Only its first clip_seconds are used.
            num_inference_steps, guidance_scale: sampler steps (None: the pipeline's saved
                ``default_steps``, see :attr:`default_num_inference_steps`); classifier-free
                guidance on the video (1 disables the unconditional pass; None: the mode's
                saved ``default_guidance``, see :meth:`default_guidance_scale`).
            generator: torch.Generator for the initial noise (same seed, same audio).
            overlap_seconds, crossfade: windowing of videos longer than one clip (default
                overlap: a sixth of a clip, 0.5 s for 3 s clips).
            ambient_db_max: ambient threshold (dBFS) of ``action_focused`` retrieval.
            retrieval_where: extra index filter, e.g. ``{"split": "train"}``.
            max_batch_windows: windows denoised together (memory bound).
            output_type: ``"np"`` (audio) or ``"latent"`` (window latents, no decoding).
            return_masks: also return, per video, the AVS model's sounding-object masks of
                the generated audio on every input frame and its alignment score
                (``masks``, ``alignment_scores``; see :meth:`sounding_masks`). Needs an AVS
                model (``avs/`` in the pipeline folder, or :meth:`set_avs`).
            mask_shuffles: mistimed references of the alignment score (its ``num_shuffles``).
            sync_shaping: how strongly each decoded window's loudness is made to follow the
                sync encoder's onset/level curves (:mod:`foley.pipelines.shaping`; per-mode
                settings times this factor, 0 = the denoiser's audio as it is). Default: 1
                when the video encoder is a :class:`~foley.models.sync.SyncModel`, else 0.
            return_heatmaps: also return, per video, DenseAV's heatmaps of the generated audio
                and their alignment score (``heatmaps``, ``heatmap_scores``; see
                :meth:`sound_heatmaps`). Needs a DenseAV model (``denseav/``, or
                :meth:`set_denseav`).
            solver, shift: the ODE solver (``"euler"``, ``"heun"``, ``"dpm"``, ``"unipc"``;
                :mod:`foley.pipelines.solvers`) and the schedule's time shift; None: the
                pipeline's own scheduler as saved (Heun makes about two denoiser calls per
                step, the others one).
            return_unshaped: also return the audio before sync shaping (``unshaped_audios``),
                from the same denoised latents.
            match_action_level: in ``action_focused`` mode, gain each soundtrack so that its
                contacts sit at the level of the training data's actions (the saved
                ``action_level_db``, :mod:`foley.pipelines.level`; nothing without it). The
                unshaped audio is levelled the same way, on its own measurement.
        """
        videos = list(video) if isinstance(video, (list, tuple)) else [video]
        conditions = None
        if condition_audio is not None:
            conditions = (
                list(condition_audio)
                if isinstance(condition_audio, (list, tuple))
                else [condition_audio]
            )
        if overlap_seconds is None:
            overlap_seconds = self.av_config.clip_seconds / 6
        if num_inference_steps is None:
            num_inference_steps = self.default_num_inference_steps
        if guidance_scale is None:
            guidance_scale = self.default_guidance_scale(mode)
        self.check_inputs(
            videos,
            mode,
            conditions,
            num_inference_steps,
            guidance_scale,
            overlap_seconds,
            crossfade,
            output_type,
        )
        if int(max_batch_windows) < 1:
            raise InputError(f"max_batch_windows must be >= 1, got {max_batch_windows}")
        if return_masks:
            self._check_analysis_inputs("return_masks", mask_shuffles, output_type)
        if return_heatmaps:
            self._check_analysis_inputs("return_heatmaps", mask_shuffles, output_type)
        sync_shaping = self.resolve_sync_shaping(sync_shaping)
        check_solver(solver, shift)
        scheduler = (
            self.scheduler
            if solver is None and shift is None
            else flow_scheduler(self.scheduler, solver, shift)
        )
        cfg = self.av_config
        device = self.denoiser.device
        prepared = [self._prepare_video(v) for v in videos]
        found: list[Retrieved | None] = [None] * len(videos)

        # conditioning clip per video
        if mode == "no_condition":
            cond = [(None, None, None)] * len(videos)
        elif conditions is not None:
            waves = [self._prepare_condition(c) for c in conditions]
            waves = waves * len(videos) if len(waves) == 1 else waves
            cond = [(w, "user", None) for w in waves]
        else:
            found = self.retrieve(
                [p.frames for p in prepared], mode, ambient_db_max, retrieval_where
            )
            cond = [(r.audio, r.id, r.score) for r in found]

        # windows of every video, denoised in batches
        overlap_frames = round(overlap_seconds * cfg.fps)
        plans = [
            plan_windows(
                p.frames.shape[0],
                cfg.frames_per_clip,
                overlap_frames,
                cfg.samples_per_frame,
                p.num_samples,
            )
            for p in prepared
        ]
        jobs = [(v, s) for v, plan in enumerate(plans) for s in plan.start_frames]
        latent_shape = (len(jobs), cfg.latents_per_clip, self.denoiser.config.latent_dim)
        noise = randn_tensor(latent_shape, generator=generator, device=torch.device("cpu"))
        cond_latents = self._encode_conditions([c[0] for c in cond], device)

        waves: list[np.ndarray] = []
        raw_waves: list[np.ndarray] = []  # before shaping (return_unshaped)
        nfe = model_evaluations(scheduler, num_inference_steps)
        steps_total = nfe * int(np.ceil(len(jobs) / max_batch_windows))
        with self.progress_bar(total=steps_total) as bar:
            for lo in range(0, len(jobs), max_batch_windows):
                chunk = jobs[lo : lo + max_batch_windows]
                frames = torch.stack(
                    [prepared[v].frames[s : s + cfg.frames_per_clip] for v, s in chunk]
                ).to(device, self.video_encoder.dtype)
                video_feats, curves = self._encode_video(
                    frames, cfg.latents_per_clip, with_curves=sync_shaping > 0
                )
                denoiser_curves = curves if self.denoiser.config.curve_dim else None
                idx = torch.tensor([v for v, _ in chunk])
                c_lat, c_keep = cond_latents[0][idx].to(device), cond_latents[1][idx].to(device)
                latents = self._denoise(
                    scheduler,
                    noise[lo : lo + len(chunk)].to(device),
                    video_feats,
                    c_lat,
                    c_keep,
                    int(num_inference_steps),
                    float(guidance_scale),
                    generator,
                    bar,
                    denoiser_curves,
                )
                if output_type == "latent":
                    waves.extend(latents.float().cpu())
                    continue
                audio = self.codec.decode(latents.to(self.codec.dtype), cfg.samples_per_clip)
                audio = audio.float().cpu().numpy()
                if not np.isfinite(audio).all():  # never written out as silence
                    raise FoleyError(
                        f"the model produced NaN or infinite audio (guidance {guidance_scale:g}, "
                        f"{num_inference_steps} steps): lower the guidance scale"
                    )
                if return_unshaped:
                    raw_waves.extend(audio)
                if sync_shaping > 0:
                    audio = np.stack(
                        [
                            shape_to_curves(a, c, cfg=cfg, **shaping_settings(mode, sync_shaping))
                            for a, c in zip(audio, curves.float().cpu().numpy())
                        ]
                    )
                waves.extend(audio)

        audios, window_latents, unshaped, k = [], [], [], 0
        for plan in plans:
            n = len(plan.start_frames)
            if output_type == "latent":
                window_latents.append(torch.stack(waves[k : k + n]))
            else:
                audios.append(stitch(np.stack(waves[k : k + n]), plan, crossfade))
            if raw_waves:
                unshaped.append(stitch(np.stack(raw_waves[k : k + n]), plan, crossfade))
            k += n
        level = self.config.get("action_level_db")
        if mode == "action_focused" and match_action_level and level is not None:
            from foley.pipelines.level import match_level

            audios = [match_level(a, level, cfg.sample_rate) for a in audios]
            unshaped = [match_level(a, level, cfg.sample_rate) for a in unshaped]
        masks, scores = None, None
        if return_masks:
            masks, scores = self._masks_of(prepared, audios, mask_shuffles, max_batch_windows)
        heat = (
            [
                self.sound_heatmaps(p, a, num_shuffles=mask_shuffles)
                for p, a in zip(prepared, audios)
            ]
            if return_heatmaps
            else None
        )
        out = FoleyPipelineOutput(
            audios=audios if output_type != "latent" else None,
            latents=window_latents if output_type == "latent" else None,
            sample_rate=cfg.sample_rate,
            mode=mode,
            condition_audios=[c[0] for c in cond],
            condition_ids=[c[1] for c in cond],
            condition_scores=[c[2] for c in cond],
            retrieved=found,
            masks=masks,
            alignment_scores=scores,
            heatmaps=[h[0] for h in heat] if heat is not None else None,
            heatmap_scores=[h[1] for h in heat] if heat is not None else None,
            unshaped_audios=unshaped if raw_waves else None,
        )
        self.maybe_free_model_hooks()
        return out if return_dict else out.to_tuple()

    # ---- sounding-object masks (AVS) ------------------------------------------------------
    def _check_analysis_inputs(self, flag: str, mask_shuffles: int, output_type: str) -> None:
        """``flag``: ``"return_masks"`` (needs ``avs``) or ``"return_heatmaps"`` (``denseav``)."""
        model, name, what = {
            "return_masks": (self.avs, "avs", "an AVS model"),
            "return_heatmaps": (self.denseav, "denseav", "a DenseAV model"),
        }[flag]
        if model is None:
            raise InputError(
                f"{flag} needs {what}: load a pipeline folder that has {name}/, "
                f"or attach one with pipe.set_{name}(model)"
            )
        if output_type != "np":
            raise InputError(f"{flag} needs the audio: use output_type='np'")
        if int(mask_shuffles) < 1:
            raise InputError(f"mask_shuffles must be >= 1, got {mask_shuffles}")

    def _masks_of(
        self,
        prepared: list[_Prepared],
        audios: list[np.ndarray],
        mask_shuffles: int,
        max_batch_windows: int,
    ) -> tuple[list[np.ndarray], list[float]]:
        """Masks (T, S, S) and alignment score of each generated audio, on its video's frames."""
        masks, scores = [], []
        for p, audio in zip(prepared, audios):
            m, s = self.sounding_masks(
                p, audio, num_shuffles=mask_shuffles, max_batch_windows=max_batch_windows
            )
            masks.append(m)
            scores.append(s)
        return masks, scores

    @torch.no_grad()
    def sounding_masks(
        self,
        video: VideoLike,
        audio: AudioLike,
        *,
        num_shuffles: int = 8,
        max_seconds: float | None = None,
        max_batch_windows: int = 32,
    ) -> tuple[np.ndarray, float]:
        """The AVS model's sounding-object masks of ``audio`` on ``video``, and its score.

        video: any form ``__call__`` accepts; audio: a path or a (N,) wave at
        ``av_config.sample_rate`` starting with the video (padded with silence or cut to it).
        Only the first ``max_seconds`` are segmented when given. The video is cut into windows
        of the AVS model's clip length (:func:`foley.analysis.masks.sounding_masks`).

        Returns masks (T, S, S) float32 in [0, 1] on the video's T frames at ``av_config.fps``
        and ``frame_size``, and the alignment score in [0, 1]
        (:func:`foley.metrics.avs.alignment_score`, the mean over windows).
        """
        from tqdm.auto import tqdm

        from foley.analysis import sounding_masks, window_frames

        self._check_analysis_inputs("return_masks", num_shuffles, "np")
        if int(max_batch_windows) < 1:
            raise InputError(f"max_batch_windows must be >= 1, got {max_batch_windows}")
        cfg = self.av_config
        frames, audio = self._analysis_inputs(video, audio, max_seconds)
        num_frames = frames.shape[0]
        windows = int(np.ceil(num_frames / window_frames(self.avs, cfg)))
        bar_config = {**getattr(self, "_progress_bar_config", {}), "desc": "AVS masks"}
        with tqdm(total=int(np.ceil(windows / max_batch_windows)), **bar_config) as bar:
            return sounding_masks(
                self.avs,
                frames,
                audio,
                cfg,
                num_shuffles=num_shuffles,
                max_batch_windows=max_batch_windows,
                bar=bar,
            )

    # ---- where the sound comes from (DenseAV) ------------------------------------------
    @torch.no_grad()
    def sound_heatmaps(
        self,
        video: VideoLike,
        audio: AudioLike,
        *,
        num_shuffles: int = 8,
        max_seconds: float | None = None,
        head: int | None = None,
    ) -> tuple[np.ndarray, float]:
        """DenseAV's heatmaps (T, S, S) float32 in [0, 1] of ``audio`` on ``video`` and its
        alignment score in [0, 1] (0.5: no better than the audio shuffled in time); video and
        audio as for :meth:`sounding_masks` (:func:`foley.analysis.sound_heatmaps`)."""
        from foley.analysis import sound_heatmaps

        self._check_analysis_inputs("return_heatmaps", num_shuffles, "np")
        frames, audio = self._analysis_inputs(video, audio, max_seconds)
        frames = frames.to(self.denseav.device, self.denseav.dtype)
        return sound_heatmaps(
            self.denseav, frames, audio, self.av_config, head=head, num_shuffles=num_shuffles
        )

    def _analysis_inputs(
        self, video: VideoLike, audio: AudioLike, max_seconds: float | None
    ) -> tuple[torch.Tensor, AudioLike]:
        """What masks and heatmaps analyse: the video's frames (T, 3, S, S), cut to its first
        ``max_seconds`` when given, and the audio (a path is decoded at the contract's rate)."""
        from foley.io import load_audio

        cfg = self.av_config
        p = video if isinstance(video, _Prepared) else self._prepare_video(video)
        num_frames = p.num_frames or p.frames.shape[0]
        if max_seconds is not None:
            num_frames = min(num_frames, max(1, cfg.num_frames(max_seconds)))
        if isinstance(audio, (str, os.PathLike)):
            audio = load_audio(audio, cfg.sample_rate)
        return p.frames[:num_frames], audio

    def _encode_conditions(
        self, waves: list[np.ndarray | None], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per video: condition latents (n, latents_per_clip, C) on CPU and keep flags (n,)."""
        cfg = self.av_config
        keep = torch.tensor([w is not None for w in waves])
        stacked = np.stack([w if w is not None else np.zeros(cfg.samples_per_clip) for w in waves])
        wave = torch.from_numpy(stacked.astype(np.float32)).to(device, self.codec.dtype)
        latents = self.codec.encode(wave).float().cpu()
        return latents, keep

    def _encode_video(
        self, frames: torch.Tensor, num_latents: int, with_curves: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frames (n, T, 3, S, S) -> per-frame features (n, T, video_dim) and, when the video
        encoder is a sync encoder, or ``with_curves`` and the pipeline has a ``sync`` model, the
        sync curves (n, L, 2) (else None)."""

        if isinstance(self.video_encoder, SyncModel) or self._encoder_has_sync:
            feats, curves = self.video_encoder.encode(frames, num_latents)
            if self.sync is not None and (with_curves or self.denoiser.config.curve_dim):
                # a separate sync model times the contacts: its curves replace the encoder's
                # (the denoiser still reads the encoder's features, the ones it was trained on)
                curves = self.sync.encode(frames.to(self.sync.dtype), num_latents)[1]
            return feats, curves
        if self.denoiser.config.curve_dim:
            raise ModelMismatchError(
                "this denoiser takes sync curves but the pipeline's video_encoder is not a "
                "SyncModel: load the video_encoder it was trained with"
            )
        feats = self.video_encoder(frames)
        if with_curves and self.sync is not None:  # only shaping uses them
            return feats, self.sync.encode(frames.to(self.sync.dtype), num_latents)[1]
        return feats, None

    @property
    def has_sync_curves(self) -> bool:
        """Whether the pipeline predicts onset/level curves: its video encoder is a SyncModel,
        or it has a ``sync`` model."""
        return (
            isinstance(self.video_encoder, SyncModel)
            or self._encoder_has_sync
            or self.sync is not None
        )

    @property
    def _encoder_has_sync(self) -> bool:
        """Whether the video encoder is a PretrainedVideoEncoder with a sync part."""
        encoder = self.video_encoder
        return isinstance(encoder, PretrainedVideoEncoder) and encoder.sync is not None

    @property
    def default_num_inference_steps(self) -> int:
        """The sampler steps of a call that does not choose them: the saved ``default_steps``
        (set with the solver the model was shipped for), else 25."""
        saved = self.config.get("default_steps")
        return DEFAULT_STEPS if saved is None else int(saved)

    def default_guidance_scale(self, mode: str) -> float:
        """The guidance scale of a call in ``mode`` that names none: the saved
        ``default_guidance`` of that mode, else ``DEFAULT_GUIDANCE`` (3)."""
        saved = self.config.get("default_guidance") or {}
        return float(saved.get(mode, DEFAULT_GUIDANCE))

    def resolve_sync_shaping(self, sync_shaping: float | None) -> float:
        """The shaping factor a call with ``sync_shaping`` uses (None: the pipeline's saved
        ``sync_shaping_default``, else 1 with a sync model and 0 without); a one-line InputError
        when it is out of range or there is no sync model."""
        if sync_shaping is None:
            if not self.has_sync_curves:
                return 0.0
            saved = self.config.get("sync_shaping_default")
            return 1.0 if saved is None else float(saved)
        value = float(sync_shaping)
        if not (np.isfinite(value) and 0 <= value <= MAX_SHAPING):
            raise InputError(
                f"sync_shaping must be between 0 and {MAX_SHAPING:g}, got {sync_shaping}"
            )
        if value > 0 and not self.has_sync_curves:
            raise InputError(
                "sync_shaping needs a sync model (a SyncModel video_encoder, or sync/ in the "
                "pipeline folder); this pipeline has none: pass sync_shaping=0"
            )
        return value

    def _denoise(
        self,
        scheduler: SchedulerMixin,
        latents: torch.Tensor,
        video_feats: torch.Tensor,
        cond_latents: torch.Tensor,
        cond_keep: torch.Tensor,
        num_inference_steps: int,
        guidance_scale: float,
        generator: torch.Generator | None,
        bar,
        curves: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The sampler loop for one batch of windows: (n, L, C) noise -> (n, L, C) latents."""
        n = latents.shape[0]
        # a guidance-distilled denoiser predicts the guided velocity in one call, for the scales
        # it was trained on; outside them its calls at 0 (unconditional) and 1 (conditional)
        # are mixed as the two branches
        config = self.denoiser.config
        distilled = bool(config.guidance_embed)
        one_call = distilled and config.guidance_min <= guidance_scale <= config.guidance_max
        use_cfg = guidance_scale != 1.0 and not one_call
        if use_cfg:  # one batch: [with video; null video], same condition
            video_feats = torch.cat([video_feats, video_feats])
            cond_latents = torch.cat([cond_latents, cond_latents])
            cond_keep = torch.cat([cond_keep, cond_keep])
            curves = None if curves is None else torch.cat([curves, curves])
        video_keep = torch.arange(video_feats.shape[0], device=latents.device) < n
        guidance = None
        if one_call:
            guidance = float(guidance_scale)
        elif distilled:  # both branches keep the video; the scale says which branch
            video_keep = torch.ones_like(video_keep)
            branch = torch.arange(video_keep.shape[0], device=latents.device) < n
            guidance = branch.float() if use_cfg else 1.0  # 1: with video, 0: without
        dtype = self.denoiser.dtype
        # everything but the noisy latents and the timestep, computed once for all the steps
        with torch.no_grad():
            invariants = self.denoiser.invariants(
                video_keep.shape[0], latents.shape[1], video_feats.to(dtype),
                cond_latents.to(dtype), video_keep, cond_keep,
                None if curves is None else curves.to(dtype), guidance,
                device=latents.device, dtype=dtype,
            )  # fmt: skip

        def velocity(model_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if use_cfg:
                model_in = torch.cat([model_in, model_in])
            pred = self.denoiser(model_in.to(dtype), t, invariants=invariants).float()
            if use_cfg:
                p_cond, p_uncond = pred.chunk(2)
                pred = p_uncond + guidance_scale * (p_cond - p_uncond)
            return pred

        return sample(
            scheduler,
            velocity,
            latents,
            num_inference_steps,
            generator=generator,
            on_step=bar.update,
        )


def _lists_legacy_mc3(root: Path) -> bool:
    """Whether ``root`` is a pipeline folder saved before the retriever was a component:
    its model_index.json lists ``mc3`` (and no ``retriever``) and ``mc3/`` is beside it."""
    import json

    try:
        listed = json.loads((root / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    mc3 = listed.get("mc3") or [None]
    return "retriever" not in listed and mc3[0] is not None and (root / MC3_SUBFOLDER).is_dir()
