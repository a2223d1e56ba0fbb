"""The app's request handlers as plain Python: validation, generation, index info and rebuilds.

:class:`FoleyService` owns the loaded models and the serving index; the Gradio layer
(:mod:`app.ui`) only converts its results and errors.  Every request gets its own pipeline
object (shared weights, its own scheduler and index snapshot) and its own output folder, so
requests never see each other's settings.  User errors are :class:`foley.errors.FoleyError` with
a one-line message.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.rebuild import RebuildJob, build_index
from app.results import (
    GenerateResult,
    avs_overlay,
    condition_clip,
    heatmap_overlay,
    mux_result,
    write_candidate,
)
from foley.defaults import mc3_dir_or_default
from foley.errors import InputError
from foley.paths import confined, is_within, resolved
from foley.pipelines.solvers import check_solver

MODES = ("action_focused", "ambient_joint")
TEXT_HITS = 5  # players of the Index tab's text search
MAX_TEXT_CHARS = 200
ProgressFn = Callable[[float, str], None]  # (fraction in [0, 1], what is happening)


@dataclass(frozen=True)
class Limits:
    """What the app accepts; stated in the UI."""

    max_upload_mb: float = 100.0
    max_video_seconds: float = 30.0
    max_condition_seconds: float = 60.0
    max_steps: int = 100
    max_guidance: float = 15.0
    max_candidates: int = 4
    avs_max_seconds: float = 9.0  # the mask overlay and score cover at most this much
    avs_shuffles: int = 8  # references of the alignment score (time-shuffled audio)
    concurrency: int = 1  # generations running at once (the rest wait in the queue)
    queue_size: int = 16

    def describe(self) -> str:
        return (
            f"Videos up to {self.max_upload_mb:g} MB and {self.max_video_seconds:g} s; "
            f"ambient clips up to {self.max_condition_seconds:g} s; "
            f"up to {self.max_candidates} candidates and {self.max_steps} steps."
        )


@dataclass(frozen=True)
class Models:
    """What the app serves: the pipeline, the optional AVS model, and where they came from."""

    pipeline: object  # foley.pipelines.foley_pipeline.FoleyPipeline
    avs: object | None = None  # foley.models.avs.AVSModel
    model_dir: Path | None = None


def load_models(
    model_dir: str | os.PathLike,
    *,
    avs_dir: str | os.PathLike | None = None,
    device: str | None = None,
) -> Models:
    """``FoleyPipeline.from_pretrained(model_dir)``: with its ``avs/`` if present, or the AVS
    model in ``avs_dir`` instead."""
    from foley.pipelines.loading import load_pipeline

    root = Path(model_dir).expanduser()
    pipeline = load_pipeline(root, device, avs=avs_dir)  # root/avs, or the one in avs_dir
    return Models(pipeline=pipeline, avs=pipeline.avs, model_dir=root)


# ---- the service ----------------------------------------------------------------------------
class FoleyService:
    """Request handlers over one set of models and one serving index.

    ``models``: a :class:`Models`, a ``FoleyPipeline``, or a zero-argument callable returning
    either (called once, on first use). ``index_path``: the retrieval index to serve and rebuild
    (default: the pipeline's own ``index/``).  ``avs``: an AVS model when ``models`` is a bare
    pipeline (default: the pipeline's own).  The AVS model of :class:`Models` is the one
    requests use (None: no mask overlay).

    Safety: ``input_roots`` (the UI sets Gradio's upload folder and the example files): when
    given, files are accepted only from there.  ``rebuild_root``: rebuilds are off unless given,
    and then read only under it.  The installed package is never written: a rebuild of an index
    inside it writes ``user_index_dir`` instead (default ``$FOLEY_HOME/index``, ``FOLEY_HOME``
    defaulting to ``~/.cache/foley``).
    """

    def __init__(
        self,
        models,
        index_path: str | os.PathLike | None = None,
        *,
        limits: Limits = Limits(),
        avs=None,
        work_dir: str | os.PathLike | None = None,
        max_age_s: float = 3600.0,
        rebuild_root: str | os.PathLike | None = None,
        input_roots: list[str | os.PathLike] | None = None,
        user_index_dir: str | os.PathLike | None = None,
    ) -> None:
        self.limits = limits
        self.rebuild_root = resolved(rebuild_root) if rebuild_root else None
        self.input_roots = None if input_roots is None else [resolved(p) for p in input_roots]
        home = Path(os.environ.get("FOLEY_HOME") or "~/.cache/foley").expanduser()
        self.user_index_dir = Path(user_index_dir) if user_index_dir else home / "index"
        self._source, self._avs = models, avs
        self._models: Models | None = None
        self._index_path = Path(index_path).expanduser() if index_path else None
        self._index = None
        self._lock = threading.Lock()  # loading, the index swap, the rebuild slot
        self._plot_lock = threading.Lock()  # matplotlib's pyplot is not thread-safe
        self._job: RebuildJob | None = None
        self._model_id: str | None = None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="foley-app-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if work_dir is None:  # its own scratch folder goes when the service does (or at exit)
            weakref.finalize(self, shutil.rmtree, self.work_dir, ignore_errors=True)
        self.max_age_s = max_age_s

    # ---- models and index ---------------------------------------------------------------
    @property
    def models(self) -> Models:
        """The models, loaded on first use (thread-safe)."""
        if self._models is None:
            with self._lock:
                if self._models is None:
                    self._models = self._load()
        return self._models

    def _load(self) -> Models:
        from foley.retrieval import index_errors
        from retrieval_index import IndexNotFoundError

        src = (
            self._source()
            if callable(self._source) and not _is_pipeline(self._source)
            else (self._source)
        )
        if not isinstance(src, Models):  # a bare pipeline: its own AVS model unless avs= given
            own = getattr(src, "avs", None)
            src = Models(pipeline=src, avs=self._avs if self._avs is not None else own)
        models = src
        if self._avs is not None and models.avs is None:
            models = Models(models.pipeline, self._avs, models.model_dir)
        self._index = getattr(models.pipeline, "index", None)
        if self._index_path is not None:
            from retrieval_index import ClipIndex

            with index_errors():
                try:
                    self._index = ClipIndex.open(self._index_path)
                except IndexNotFoundError:
                    self._index = None  # nothing there yet: a rebuild will create it
        elif self._index is not None:
            self._index_path = Path(self._index.path)
        return models

    def load(self) -> Models:
        """Load now (the CLI does, so a bad model folder is reported before serving)."""
        return self.models

    @property
    def index(self):
        """The index serving queries now (a ClipIndex, or None)."""
        self.models  # noqa: B018 - the index is opened with the models
        return self._index

    def mc3_model_id(self) -> str | None:
        """Identity of the pipeline's MC3 weights (what an index built with them records)."""
        from foley.models.mc3_embed import WEIGHTS_NAME, model_id

        mc3 = self.models.pipeline.mc3
        if mc3 is None:
            return None
        if self._model_id is None:
            saved = mc3_dir_or_default(self.models.model_dir) if self.models.model_dir else None
            if saved is not None and (saved / WEIGHTS_NAME).is_file():
                self._model_id = model_id(saved)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    mc3.save_pretrained(tmp)
                    self._model_id = model_id(tmp)
        return self._model_id

    def index_info(self) -> dict:
        """What the serving index holds, the rebuild state, and a warning on a model mismatch."""
        index = self.index
        # "folder", not "path": gradio_client takes any dict with a "path" key for a file
        # only the folder's name: no server path in anything a client sees
        info: dict = {"folder": self._index_path.name if self._index_path else None}
        if index is None:
            info["status"] = "no index loaded: retrieval needs one (rebuild it from a data folder)"
        else:
            info.update({k: v for k, v in index.info().items() if k != "path"})
            mid = self.mc3_model_id()
            if mid and mid != info["model_id"]:
                info["warning"] = f"built with {info['model_id']}, the loaded MC3 is {mid}"
        if self.models.pipeline.mc3 is None:
            info["warning"] = "the loaded pipeline has no MC3 model: retrieval is unavailable"
        job = self._job
        if job is not None:
            info["rebuild"] = {"state": job.state, "message": job.describe()}
        return info

    # ---- rebuilds -----------------------------------------------------------------------
    def start_rebuild(
        self,
        data_dir: str | os.PathLike,
        split: str = "train",
        *,
        batch_size: int = 8,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> RebuildJob:
        """Rebuild the index from ``data_dir`` (under ``rebuild_root``) in a background thread;
        queries keep being served by the current version until the new one is complete."""
        if self.rebuild_root is None:
            raise InputError(
                "index rebuilds are off: start the app with --allow-rebuild DATA_ROOT to allow "
                "rebuilding from folders under DATA_ROOT"
            )
        shown = str(data_dir or "").strip() or "."
        data = confined(shown, self.rebuild_root, "data folder")
        pipe = self.models.pipeline
        if pipe.mc3 is None:
            raise InputError("the loaded pipeline has no MC3 model, so it cannot build an index")
        if self._index_path is None:
            raise InputError("no index folder: start the app with --index DIR to build one there")
        split = (split or "train").strip()
        if Path(split).name != split or split.startswith("."):
            raise InputError("the split is a name (train, val, test...), not a path")
        mid, cfg, target = self.mc3_model_id(), pipe.av_config, self._rebuild_target()
        with self._lock:
            if self._job is not None and self._job.running:
                raise InputError("an index rebuild is already running; wait for it to finish")
            job = RebuildJob(shown, split, target.name)
            self._job = job
        root = self.rebuild_root

        def work(progress):
            return build_index(
                data,
                split,
                target,
                pipe.mc3,
                mid,
                cfg,
                batch_size=batch_size,
                on_progress=progress,
                confine_to=root,
            )

        def swap(new_index) -> None:
            with self._lock:
                self._index = new_index  # in-flight requests keep their snapshot
                self._index_path = target

        return job.start(work, swap, on_progress)

    def _rebuild_target(self) -> Path:
        """The serving index's folder, or the user copy when it lies in the installed package."""
        import foley

        package = Path(foley.__file__).resolve().parent
        return self.user_index_dir if is_within(self._index_path, package) else self._index_path

    @property
    def rebuild_job(self) -> RebuildJob | None:
        return self._job

    # ---- validation ---------------------------------------------------------------------
    def check_video(self, path: str | os.PathLike | None):
        """A one-line InputError for a missing, oversized, unreadable or too long video."""
        from foley.io import probe_video

        p = self._check_file(path, "video")
        info = probe_video(p)
        if info.duration > self.limits.max_video_seconds:
            raise InputError(
                f"{p.name}: {info.duration:.1f} s long, the app takes videos up to "
                f"{self.limits.max_video_seconds:g} s"
            )
        if info.width <= 0 or info.height <= 0:
            raise InputError(f"{p.name}: the video stream has no picture size")
        return info

    def _check_file(self, path, what: str) -> Path:
        if not path:
            raise InputError(f"no {what} given: upload one (or pick an example)")
        p = Path(path)
        if self.input_roots is not None and not any(
            is_within(p, root) for root in self.input_roots
        ):  # one message whatever the path: no file-existence oracle
            raise InputError(f"the {what} was not uploaded through the app: upload it")
        if not p.is_file():
            raise InputError(f"{p.name}: the uploaded {what} is missing, upload it again")
        size_mb = p.stat().st_size / 1e6
        if size_mb > self.limits.max_upload_mb:
            raise InputError(
                f"{p.name}: {size_mb:.1f} MB, the app takes files up to "
                f"{self.limits.max_upload_mb:g} MB"
            )
        return p

    def _check_settings(self, mode: str, steps, guidance, seed, candidates) -> tuple:
        lim = self.limits
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        steps, candidates, seed = int(steps), int(candidates), int(seed)
        if not 1 <= steps <= lim.max_steps:
            raise InputError(f"steps must be between 1 and {lim.max_steps}, got {steps}")
        if not 1 <= candidates <= lim.max_candidates:
            raise InputError(f"candidates must be between 1 and {lim.max_candidates}")
        # None: the model's guidance for the mode
        guidance = self.default_guidance(mode) if guidance is None else float(guidance)
        if not (np.isfinite(guidance) and 0 <= guidance <= lim.max_guidance):
            raise InputError(f"guidance must be between 0 and {lim.max_guidance:g}")
        if not 0 <= seed < 2**63:
            raise InputError("seed must be a non-negative integer")
        return steps, guidance, seed, candidates

    # ---- generation ---------------------------------------------------------------------
    def generate(
        self,
        video: str | os.PathLike | None,
        mode: str = "ambient_joint",
        *,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        candidates: int = 1,
        condition_audio: str | os.PathLike | None = None,
        ambient_db_max: float = -45.0,
        sync_shaping: float | None = None,
        progress: ProgressFn | None = None,
        solver: str | None = None,
    ) -> GenerateResult:
        """Generate ``candidates`` soundtracks (seeds ``seed``, ``seed + 1``...) for ``video``.

        ``steps``: sampler steps (None: the model's default, :attr:`default_steps`);
        ``sync_shaping``: the pipeline's (None: its default, on when the model has a sync
        model); ``solver``: the sampler (:data:`foley.pipelines.solvers.SOLVERS`; None or
        ``"model"``: the model folder's scheduler)."""
        import torch

        from foley.io import load_video, read_audio

        start = time.time()
        report = progress or (lambda fraction, desc: None)
        steps = self.default_steps if steps is None else steps
        steps, guidance, seed, candidates = self._check_settings(
            mode, steps, guidance, seed, candidates
        )
        self.check_video(video)
        cond_wave, cond_warnings = None, []
        if condition_audio:
            p = self._check_file(condition_audio, "ambient clip")
            cond = read_audio(p, max_seconds=self.limits.max_condition_seconds)
            cond_wave, cond_warnings = cond.wave, cond.warnings  # (N,) at 16 kHz
        index = self.index
        pipe = self._request_pipeline(index)
        cfg = pipe.av_config
        if cond_wave is None and (pipe.mc3 is None or index is None):
            raise InputError(
                "no retrieval index is loaded: upload an ambient clip under Advanced, "
                "or start the app with a model that has an index (--index DIR)"
            )
        if cond_wave is None and mode == "action_focused":
            self._check_quiet_clips(pipe.retriever, float(ambient_db_max))
        shaping = pipe.resolve_sync_shaping(sync_shaping)
        solver = None if solver in (None, "", "model") else solver
        check_solver(solver, None)
        report(0.02, "decoding the video")
        decoded = load_video(
            video, cfg, with_audio=False, max_seconds=self.limits.max_video_seconds
        )
        out_dir = self._request_dir()
        audios, first = [], None
        for k in range(candidates):
            report(0.05 + 0.75 * k / candidates, f"generating candidate {k + 1} of {candidates}")
            out = pipe(
                decoded,
                mode=mode,
                condition_audio=cond_wave
                if cond_wave is not None
                else (None if first is None else first.condition_audios[0]),
                num_inference_steps=steps,
                guidance_scale=guidance,
                ambient_db_max=float(ambient_db_max),
                generator=torch.Generator().manual_seed(seed + k),
                sync_shaping=shaping,
                solver=solver,
            )
            first = first or out
            audios.append(out.audios[0])
        report(0.82, "drawing spectrograms")
        sr = pipe.av_config.sample_rate
        cands = [
            write_candidate(out_dir, k, seed + k, a, sr, cfg, self._plot_lock)
            for k, a in enumerate(audios)
        ]
        muxed = mux_result(video, decoded, audios[0], sr, out_dir / "generated.mp4")
        condition = condition_clip(out_dir, first, cond_wave, condition_audio, sr)
        report(0.9, "segmenting the sounding object (AVS)")
        avs, note = avs_overlay(pipe, decoded, audios[0], sr, out_dir, self.limits)
        heat = own = None
        if getattr(pipe, "denseav", None) is not None:
            report(0.95, "where the sound comes from (DenseAV)")
            heat = heatmap_overlay(pipe, decoded, audios[0], out_dir, self.limits, "denseav")
            own_audio = _own_audio(video, cfg, self.limits.max_video_seconds)
            own = heatmap_overlay(pipe, decoded, own_audio, out_dir, self.limits, "denseav_own")
        report(1.0, "done")
        return GenerateResult(
            video_path=str(muxed),
            candidates=cands,
            mode=mode,
            seconds=audios[0].size / sr,
            condition=condition,
            avs=avs,
            avs_note=note,
            elapsed=time.time() - start,
            index_version=None if index is None else index.version,
            sync_shaping=shaping,
            warnings=list(decoded.warnings) + cond_warnings,
            heatmap=heat,
            own_heatmap=own,
        )

    @staticmethod
    def _check_quiet_clips(retriever, ambient_db_max: float) -> None:
        """Action-focused retrieval needs at least one clip at or below the threshold."""
        if not retriever.has_quiet_clip(ambient_db_max):
            raise InputError(
                f"no clip in the index has an ambient level at or below {ambient_db_max:g} dBFS: "
                "raise the action-focused threshold under Advanced"
            )

    def search_text(self, text: str, k: int = TEXT_HITS) -> list[dict]:
        """The ``k`` indexed clips nearest a text by MC3 text-to-audio similarity: one dict per
        hit (``rank``, ``id``, ``score``, ``narration``, ``ambient_db``, ``audio_only``, and
        ``audio``: a wav of the clip in this request's folder, or None if its file is gone).
        No server path is in anything returned but the request's own audio files."""
        from foley.io import save_audio
        from foley.retrieval import ClipRetriever

        text = " ".join(str(text or "").split())
        if not text:
            raise InputError("type what to search for, e.g. footsteps on gravel")
        if len(text) > MAX_TEXT_CHARS:
            raise InputError(f"the search text is limited to {MAX_TEXT_CHARS} characters")
        if not 1 <= int(k) <= TEXT_HITS:
            raise InputError(f"the number of results must be 1 to {TEXT_HITS}")
        index, mc3 = self.index, self.models.pipeline.mc3
        if mc3 is None:
            raise InputError("the loaded pipeline has no MC3 model: text search is unavailable")
        if index is None:
            raise InputError("no index loaded: text search needs one (rebuild it)")
        if self.mc3_model_id() not in (None, index.model_id):
            raise InputError("the index was built with another MC3 model: rebuild it")
        retriever = ClipRetriever(mc3, index)
        sr = int(mc3.config.sample_rate)
        out_dir = self._request_dir()
        rows = []
        for rank, hit in enumerate(retriever.retrieve_text([text], int(k))[0], 1):
            try:
                audio = save_audio(
                    out_dir / f"hit-{rank}.wav", retriever.clip_audio(hit.metadata, sr), sr
                )
            except (InputError, OSError):
                audio = None  # the clip's file moved: the row stays, without a player
            meta = hit.metadata
            rows.append(
                {
                    "rank": rank,
                    "id": hit.id,
                    "score": round(hit.score, 4),
                    "narration": str(meta.get("narration", "")),
                    "ambient_db": meta.get("ambient_db"),
                    "audio_only": bool(meta.get("audio_only", False)),
                    "audio": str(audio) if audio else None,
                }
            )
        return rows

    @property
    def has_sync_model(self) -> bool:
        """Whether the loaded model predicts contact timing (sync shaping is available)."""
        return bool(getattr(self.models.pipeline, "has_sync_curves", False))

    @property
    def default_steps(self) -> int:
        """The sampler steps the loaded model was shipped for (its saved default)."""
        return int(self.models.pipeline.default_num_inference_steps)

    def default_guidance(self, mode: str) -> float:
        """The guidance scale the loaded model uses in ``mode`` when a request names none."""
        return float(self.models.pipeline.default_guidance_scale(mode))

    @property
    def default_shaping(self) -> float:
        """The sync-shaping factor the loaded model uses when a request names none."""
        return float(self.models.pipeline.resolve_sync_shaping(None))

    def _request_pipeline(self, index):
        """A pipeline object for one request: shared weights, its own scheduler and index."""
        p = self.models.pipeline
        pipe = type(p)(
            codec=p.codec,
            video_encoder=p.video_encoder,
            denoiser=p.denoiser,
            scheduler=type(p.scheduler).from_config(p.scheduler.config),
            retriever=None if p.retriever is None else p.retriever.with_index(index),
            av_config=dict(p.config.av_config),
            avs=self.models.avs,
            sync=getattr(p, "sync", None),
            denseav=getattr(p, "denseav", None),
            sync_shaping_default=p.config.get("sync_shaping_default"),
            default_steps=p.config.get("default_steps"),
            action_level_db=p.config.get("action_level_db"),
            default_guidance=p.config.get("default_guidance"),
        )
        pipe.set_progress_bar_config(desc="denoising", leave=False)
        return pipe

    def _request_dir(self) -> Path:
        now = time.time()
        for old in self.work_dir.glob("req-*"):
            try:
                if now - old.stat().st_mtime > self.max_age_s:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.work_dir))


def _own_audio(video, cfg, max_seconds: float) -> np.ndarray | None:
    """The upload's own soundtrack (N,) at ``cfg.sample_rate``, None when it has none."""
    from foley.io import load_audio

    try:
        return load_audio(video, cfg.sample_rate, max_seconds=max_seconds)
    except InputError:  # a silent upload (no audio stream)
        return None


def _is_pipeline(obj) -> bool:
    from diffusers import DiffusionPipeline

    return isinstance(obj, DiffusionPipeline)
