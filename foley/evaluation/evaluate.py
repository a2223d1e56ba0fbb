"""``evaluate``: every row of the quality table on one split, in one run.

For each clip of the split (FoleyWorld ground truth needed): the ground-truth mix and action-only
track, retrieval-only, the model in each asked mode, silence and a random clip are scored with
the same metrics (:mod:`foley.evaluation.rows`); FD is then taken per row over the whole split,
against the split's ground-truth mixes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from foley.data.ego4d import ClipDataset, load_ground_truth, split_path
from foley.errors import InputError
from foley.evaluation.events import audible_spans
from foley.evaluation.report import EvalReport, guidance_setting, summarise
from foley.evaluation.rows import (
    GRID_SKIPPED,
    MODEL_ROWS,
    RETRIEVAL_MODES,
    ROWS,
    ClipTruth,
    Scorers,
    audible_onsets,
    fit_masks,
    unshaped,
)
from foley.metrics.onsets import detect_onsets

DEFAULT_MODES = ("no_condition", "ambient_joint", "action_focused")


def _truth(dataset: ClipDataset, index: int) -> ClipTruth:
    from foley.io import frames_to_tensor

    cfg = dataset.cfg
    record = dataset.records[index]
    frames, mix = dataset.load_clip(index)
    gt = load_ground_truth(record.gt_path(dataset.root))
    action = np.zeros(cfg.samples_per_clip, np.float32)
    n = min(action.size, gt["action"].size)
    action[:n] = gt["action"][:n]
    return ClipTruth(
        clip_id=record.clip_id,
        video_uid=record.video_uid,
        text=record.clip_text,
        frames=frames_to_tensor(frames),
        mix=mix,
        action=action,
        masks=fit_masks(gt["masks"], cfg.frames_per_clip, cfg.frame_size),
        onsets=audible_onsets(gt["events"]),
        ambient_db=float(gt["ambient_db"]),
        spans=audible_spans(gt["events"]),
    )


def _decode(
    dataset: ClipDataset, indices: range, skipped: list[str]
) -> tuple[list[ClipTruth], list[int]]:
    """The clips of ``indices`` that decode, and their indices; each one that does not is
    skipped with one line on stderr and its file name appended to ``skipped``."""
    from foley.models.mc3_embed import failure

    truths, kept = [], []
    for i in indices:
        try:
            truths.append(_truth(dataset, i))
        except Exception as err:  # noqa: BLE001 - one line per clip, the evaluation goes on
            bad = failure(dataset, i, err)
            print(f"foley eval: skipped {bad['failed']}: {bad['error']}", file=sys.stderr)
            skipped.append(bad["failed"])
            continue
        kept.append(i)
    return truths, kept


def _partner_audio(dataset: ClipDataset, i: int, partner: int, total: int) -> np.ndarray:
    """``(N,)`` audio of clip ``i``'s random partner; if that clip does not decode, of the next
    one that does (silence if none does)."""
    for j in (partner + k for k in range(total)):
        if j % total == i and total > 1:
            continue
        try:
            return dataset.load_clip(j % total, with_frames=False)[1]
        except Exception:  # noqa: BLE001 - a corrupt partner: skipped already (one line)
            continue
    return np.zeros(dataset.cfg.samples_per_clip, np.float32)


def random_partners(video_uids: list[str], seed: int) -> list[int]:
    """For clip ``i``, another clip ``j != i``, of another video when the split has one."""
    rng = np.random.default_rng([seed, 7919])
    n = len(video_uids)
    out = []
    for i, uid in enumerate(video_uids):
        others = [j for j in range(n) if video_uids[j] != uid] or [j for j in range(n) if j != i]
        out.append(int(others[rng.integers(len(others))]) if others else i)
    return out


FLOOR_SPLITS = ("train", "val", "test", "test_shifted")


class UnseenPool:
    """Real clips of videos that are not among the evaluated ones: the ``unseen_videos`` row.

    The pool is every clip of ``root``'s splits (``FLOOR_SPLITS`` that exist, the evaluated
    split of the evaluated data left out) whose video is not evaluated; clip ``i`` of the
    evaluation gets pool clip ``order[i % len]`` (a seeded permutation). FoleyWorld draws each
    video's ambient bed and recordings once for all its clips, so the in-split random clip,
    drawn from the evaluated videos, shares them with the reference; these clips do not.
    """

    def __init__(self, root, data_dir, split: str, videos: set[str], cfg, seed: int) -> None:
        same = Path(root).resolve() == Path(data_dir).resolve()
        self.items: list[tuple[ClipDataset, int]] = []
        for name in FLOOR_SPLITS:
            if (same and name == split) or not split_path(Path(root), name).is_file():
                continue
            ds = ClipDataset(root, name, cfg)
            self.items += [(ds, j) for j, r in enumerate(ds.records) if r.video_uid not in videos]
        self.order = np.random.default_rng([seed, 104729]).permutation(len(self.items))

    def __len__(self) -> int:
        return len(self.items)

    def audio(self, i: int) -> np.ndarray:
        """``(N,)`` audio of clip ``i``'s pool clip (the next that decodes if it does not)."""
        n = len(self.items)
        for k in range(n):
            ds, j = self.items[int(self.order[(i + k) % n])]
            try:
                return ds.load_clip(j, with_frames=False)[1]
            except Exception:  # noqa: BLE001 - a corrupt pool clip: the next one
                continue
        raise InputError("the unseen-videos pool has no clip that decodes")


def _check(pipeline, modes: tuple[str, ...], n_clips: int) -> None:
    unknown = [m for m in modes if m not in MODEL_ROWS]
    if unknown:
        raise InputError(
            f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODEL_ROWS)}"
        )
    if n_clips < 2:
        raise InputError("the evaluation needs at least 2 clips (FD compares sets); raise --n")
    wants_retrieval = any(m in RETRIEVAL_MODES for m in modes)
    if wants_retrieval and (pipeline.mc3 is None or pipeline.index is None):
        raise InputError(
            "ambient-joint and action-focused retrieve their condition: the model folder needs an "
            "mc3/ component and an index/ (or evaluate with --modes no_condition)"
        )


def evaluate(
    data_dir: str | os.PathLike,
    split: str,
    pipeline,
    *,
    avs=None,
    mc3=None,
    judges=None,
    n: int | None = None,
    modes: tuple[str, ...] = DEFAULT_MODES,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    ambient_db_max: float = -45.0,
    batch_size: int = 8,
    num_examples: int = 4,
    progress: bool = True,
    sync_shaping: float | None = None,
    floor_data: str | os.PathLike | None = None,
) -> EvalReport:
    """Score every row of the quality table on ``split`` of ``data_dir``.

    Args:
        pipeline: a :class:`~foley.pipelines.FoleyPipeline`; its ``av_config`` sets the clip
            length, frame rate and size the clips are decoded at.
        avs: an :class:`~foley.models.avs.AVSModel` for the alignment J (skipped if None).
        mc3: the MC3 judge of AV/AT similarity and the second FD; default ``pipeline.mc3``
            (those metrics are NaN when neither is given).
        judges: :class:`~foley.metrics.pretrained.PretrainedJudges` for FD aisfx, KL SoundNet
            (against each clip's ground-truth mix) and AV-agree (NaN when None).
        n: evaluate the first ``n`` clips of the split (all by default).
        modes: model rows to generate (``no_condition``, ``ambient_joint``, ``action_focused``).
        seed: the initial noise of the batch starting at clip ``i`` is drawn with ``seed + i``;
            the seed also picks the random-clip partners.
        out_dir: if given, the report is written there (:meth:`EvalReport.save`).
        ambient_db_max: the action-focused retrieval threshold (dBFS).
        batch_size: clips generated together.
        num_inference_steps: sampler steps (None: the pipeline's default).
        num_examples: clips drawn in the spectrogram grid.
        sync_shaping: the pipeline's ``sync_shaping`` (None: its default, on with a sync
            model; 0: the denoiser's audio as it is). When it is on, each model row has an
            ``_unshaped`` twin: the same denoised audio before shaping (what ``sync_shaping=0``
            gives), and the report compares the two (:func:`~foley.evaluation.report.shaping`).
        floor_data: the data folder whose clips (videos not evaluated, every split) give the
            ``unseen_videos`` row; None: the other splits of ``data_dir``. The row is left out
            when there are fewer such clips than evaluated clips.
    """
    modes = tuple(dict.fromkeys(modes))
    cfg = pipeline.av_config
    dataset = ClipDataset(data_dir, split, cfg)
    total = len(dataset) if n is None else min(int(n), len(dataset))
    _check(pipeline, modes, total)
    scorers = Scorers(cfg, mc3 if mc3 is not None else pipeline.mc3, avs, judges)
    can_retrieve = pipeline.mc3 is not None and pipeline.index is not None
    shaping = pipeline.resolve_sync_shaping(sync_shaping)
    if num_inference_steps is None:
        num_inference_steps = pipeline.default_num_inference_steps
    row_names = []
    for r in ROWS:
        if (r == "retrieval" and not can_retrieve) or (
            r.startswith("model_") and r.removeprefix("model_") not in modes
        ):
            continue
        row_names += [r, unshaped(r)] if r.startswith("model_") and shaping > 0 else [r]
    partners = random_partners([r.video_uid for r in dataset.records[:total]], seed)
    if floor_data is not None and not Path(floor_data).is_dir():
        raise InputError(f"--floor-data {floor_data}: no such folder")
    pool = UnseenPool(
        floor_data or data_dir, data_dir, split, {r.video_uid for r in dataset.records}, cfg, seed
    )
    if len(pool) < total:
        row_names = [r for r in row_names if r != "unseen_videos"]

    per_clip: list[dict] = []
    skipped: list[str] = []  # file names of clips that could not be decoded
    embeddings: dict[str, dict[str, list[np.ndarray]]] = {r: {} for r in row_names}
    examples: list[dict] = []
    bar_config = dict(getattr(pipeline, "_progress_bar_config", {}))
    pipeline.set_progress_bar_config(disable=True)
    bar = tqdm(total=total, desc=f"foley eval {split}", unit="clip", disable=not progress)
    try:
        for lo in range(0, total, batch_size):
            truths, idx = _decode(dataset, range(lo, min(lo + batch_size, total)), skipped)
            if not truths:
                bar.update(min(lo + batch_size, total) - lo)
                continue
            audios, retrieved = _rows_for_batch(
                pipeline,
                dataset,
                truths,
                idx,
                partners,
                modes,
                row_names,
                pool,
                seed=seed,
                steps=num_inference_steps,
                guidance=guidance_scale,
                ambient_db_max=ambient_db_max,
                sync_shaping=sync_shaping,
            )
            for k, truth in enumerate(truths):
                ctx = scorers.clip_context(truth)
                clip_rows, emb = scorers.score({r: audios[r][k] for r in row_names}, truth, ctx)
                for row in row_names:
                    for key, vec in emb[row].items():
                        embeddings[row].setdefault(key, []).append(vec)
                per_clip.append(
                    {
                        "clip_id": truth.clip_id,
                        "video_uid": truth.video_uid,
                        "text": truth.text,
                        "gt_ambient_db": truth.ambient_db,
                        "loud_scene": truth.loud,
                        "gt_onsets": [round(float(t), 4) for t in truth.onsets],
                        "retrieved": retrieved[k],
                        "rows": clip_rows,
                    }
                )
                if len(examples) < num_examples:
                    examples.append(
                        {
                            "clip_id": truth.clip_id,
                            "video_uid": truth.video_uid,
                            "waves": {r: audios[r][k] for r in row_names if r not in GRID_SKIPPED},
                            "onsets": {
                                r: detect_onsets(audios[r][k], cfg)
                                for r in row_names
                                if r not in GRID_SKIPPED
                            },
                        }
                    )
            bar.update(min(lo + batch_size, total) - lo)
    finally:
        bar.close()
        pipeline.set_progress_bar_config(**bar_config)

    if len(per_clip) < 2:
        raise InputError(
            f"{data_dir} ({split}): only {len(per_clip)} of {total} clips could be decoded; "
            "the evaluation needs at least 2"
        )
    if skipped:
        print(
            f"foley eval: evaluated {len(per_clip)} clips, skipped {len(skipped)}", file=sys.stderr
        )
    settings = {
        "data": str(Path(data_dir)),
        "split": split,
        "clips": len(per_clip),
        "skipped": skipped,
        "modes": list(modes),
        "num_inference_steps": int(num_inference_steps),
        "guidance_scale": guidance_setting(pipeline, guidance_scale, modes),
        "sync_shaping": shaping,
        "ambient_db_max": float(ambient_db_max),
        "seed": int(seed),
        "floor_data": str(Path(floor_data or data_dir)),
        "unseen_pool": len(pool),
        "mc3": scorers.mc3 is not None,
        "avs": avs is not None,
        "pretrained": judges is not None,
        "av_config": cfg.to_dict(),
    }
    report = summarise(row_names, per_clip, embeddings, settings, examples)
    if out_dir is not None:
        report.save(out_dir, sample_rate=cfg.sample_rate)
    return report


def _rows_for_batch(
    pipeline,
    dataset: ClipDataset,
    truths: list[ClipTruth],
    idx: list[int],
    partners: list[int],
    modes: tuple[str, ...],
    row_names: list[str],
    pool: UnseenPool,
    *,
    seed: int,
    steps: int,
    guidance: float | None,
    ambient_db_max: float,
    sync_shaping: float | None = None,
) -> tuple[dict[str, list[np.ndarray]], list[dict]]:
    """Soundtrack ``(N,)`` of every row for a batch of clips, and what was retrieved per clip."""
    cfg = pipeline.av_config
    n = cfg.samples_per_clip
    audios: dict[str, list[np.ndarray]] = {
        "gt_mix": [t.mix for t in truths],
        "gt_action": [t.action for t in truths],
        "silence": [np.zeros(n, np.float32) for _ in truths],
        "random_clip": [_partner_audio(dataset, i, partners[i], len(partners)) for i in idx],
    }
    if "unseen_videos" in row_names:
        audios["unseen_videos"] = [pool.audio(i) for i in idx]
    retrieved: list[dict] = [{} for _ in truths]
    conditions: dict[str, list[np.ndarray]] = {}
    wanted = [
        m
        for m in RETRIEVAL_MODES
        if m in modes or (m == "ambient_joint" and "retrieval" in row_names)
    ]
    for mode in wanted:
        conditions[mode] = []
        for k, truth in enumerate(truths):
            # never the clip's own video: its ambience (and maybe the clip itself) would leak
            hit = pipeline.retrieve(
                [truth.frames], mode, ambient_db_max, where={"exclude_video_uid": truth.video_uid}
            )[0]
            conditions[mode].append(hit.audio)
            retrieved[k][mode] = {"id": hit.id, "score": hit.score}
    if "retrieval" in row_names:
        audios["retrieval"] = conditions["ambient_joint"]
    frames = [t.frames for t in truths]
    for mode in modes:
        row = MODEL_ROWS[mode]
        gen = torch.Generator().manual_seed(int(seed) + idx[0])
        out = pipeline(
            frames,
            mode=mode,
            condition_audio=conditions.get(mode),
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gen,
            sync_shaping=sync_shaping,
            return_unshaped=unshaped(row) in row_names,
        )
        audios[row] = [np.asarray(a[:n], np.float32) for a in out.audios]
        if unshaped(row) in row_names:  # the same denoising, before shaping
            audios[unshaped(row)] = [np.asarray(a[:n], np.float32) for a in out.unshaped_audios]
    return audios, retrieved
