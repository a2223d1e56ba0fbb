"""ClipRetriever: MC3 plus the index of training clips and their audio, the one way to build,
extend and query a retrieval index (by video, by audio, or by text:
:meth:`ClipRetriever.retrieve_text`). Audio-only entries of a ``foley prepare`` folder are
indexed beside its video clips (:func:`library_parts`).

A pipeline component: ``model_index.json`` lists it as ``retriever`` and diffusers loads and
saves it through :meth:`ClipRetriever.from_pretrained` / :meth:`ClipRetriever.save_pretrained`.
A retriever folder (``PIPELINE/retriever``; pipelines saved before it was a component hold the
same three folders at their top level, and still load)::

    DIR/mc3/       MC3Model (save_pretrained)
    DIR/index/     retrieval_index.ClipIndex (versioned, atomic rebuilds)
    DIR/clips/     the indexed clips' audio when packed (``build(..., pack_clips=True)``); the
                   index stores their paths relative to DIR, so the folder can move

Index errors become the library's one-line errors in one place (:func:`index_errors`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import ModelMixin  # diffusers finds a component's loader by its base class here

from foley.config import DEFAULT_CONFIG, AVConfig
from foley.errors import InputError, ModelMismatchError

MC3_SUBFOLDER = "mc3"
INDEX_SUBFOLDER = "index"
CLIPS_SUBFOLDER = "clips"
#: metadata key of a clip's action-only track (an audio file, or a FoleyWorld ``.gt.npz``
#: whose ``action`` array it is): action-focused retrieval conditions on it, ambience-free
ACTION_KEY = "action_clip_path"
ProgressFn = Callable[[int, int], None]  # (clips embedded so far, clips in total)


@dataclass
class Retrieved:
    """One retrieved clip: index id, MC3 video-to-audio cosine score, its index metadata,
    (when asked for) its audio, (N,) float32 at the config's sample rate, and which audio that
    is: ``track`` "mix" (the clip's own) or "action" (its action-only track, action-focused)."""

    id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    audio: np.ndarray | None = None
    track: str = "mix"


@contextmanager
def index_errors() -> Iterator[None]:
    """retrieval_index errors become one-line user errors: a model/dimension mismatch is a
    :class:`ModelMismatchError`, anything else wrong with an index an :class:`InputError`."""
    from retrieval_index import IndexMismatchError, RetrievalIndexError

    try:
        yield
    except IndexMismatchError as err:
        raise ModelMismatchError(str(err)) from None
    except RetrievalIndexError as err:
        raise InputError(str(err)) from None
    except PermissionError as err:  # a read-only index folder
        raise InputError(
            f"{Path(err.filename or '').name or 'the index folder'}: permission denied; "
            "the index folder is read-only"
        ) from None


def clip_metadata(embeddings, data_root: Path, split: str) -> list[dict[str, Any]]:
    """Index metadata rows for a batch of :class:`~foley.models.mc3_embed.ClipEmbeddings`."""
    from foley.data.ego4d import ClipRecord

    rows = []
    for meta, level in zip(embeddings.meta, embeddings.ambient_db):
        record = ClipRecord(**{k: meta[k] for k in ClipRecord.__dataclass_fields__})
        rows.append(
            {
                "clip_path": str(record.clip_path(data_root).resolve()),
                "video_uid": record.video_uid,
                "narration": record.clip_text,
                "ambient_db": float(level),
                "split": split,
                "positive": float(record.positive),
                "tag_verb": record.tag_verb,
                "tag_noun": record.tag_noun,
                "clip_start": float(record.clip_start),
                "clip_end": float(record.clip_end),
            }
        )
        gt = record.gt_path(data_root)
        if gt.is_file():  # FoleyWorld: the clip's action-only track (action-focused retrieval)
            rows[-1][ACTION_KEY] = str(gt.resolve())
    return rows


def open_dataset(data: str | os.PathLike, split: str, cfg: AVConfig | None = None):
    """The ``split`` of a dataset folder, with one-line errors for a missing or empty one."""
    from foley.data.ego4d import ClipDataset

    root = Path(data).expanduser()
    if not str(data).strip():
        raise InputError("give the data folder to index (it holds <split>.tsv and the clips)")
    if not root.is_dir():
        raise InputError(f"{root}: no such data folder")
    dataset = ClipDataset(root, split, cfg) if cfg is not None else ClipDataset(root, split)
    if len(dataset) == 0:
        raise InputError(f"{dataset.metadata_path}: no clips to index")
    return dataset


def embedded_parts(
    mc3,
    data: str | os.PathLike,
    split: str,
    dataset=None,
    *,
    batch_size: int = 16,
    workers: int = 0,
    progress: bool = True,
    on_progress: ProgressFn | None = None,
) -> Iterator[tuple[list[str], np.ndarray, list[dict]]]:
    """(ids, audio embeddings (n, D), metadata rows) per batch of a split (or of ``dataset``,
    a subset of it), in clip order.

    A clip that fails to load is skipped with one line naming its file (see
    :func:`~foley.models.mc3_embed.iter_embeddings`), and a summary line ends the run; if no
    clip loads, an :class:`InputError` (raised inside a build, it leaves the previous index)."""
    from foley.models.mc3_embed import iter_embeddings

    dataset = dataset if dataset is not None else open_dataset(data, split)
    split_name = Path(str(split)).stem
    total, done, skipped = len(dataset), 0, []
    if on_progress:
        on_progress(0, total)
    for part in iter_embeddings(
        mc3, dataset, batch_size=batch_size, workers=workers, with_text=False, progress=progress
    ):
        skipped += part.skipped
        if len(part):
            yield part.ids, part.audio, clip_metadata(part, Path(data).expanduser(), split_name)
        done += len(part) + len(part.skipped)
        if on_progress:
            on_progress(done, total)
    if skipped and len(skipped) == total:
        raise InputError(
            f"{data} ({split_name}): none of its {total} clips could be read "
            f"({_names(skipped)}); nothing was indexed"
        )
    if skipped:
        print(
            f"foley: indexed {total - len(skipped)} clips, skipped {len(skipped)}: "
            f"{_names(skipped)}",
            file=sys.stderr,
            flush=True,
        )


def _names(names: list[str], most: int = 5) -> str:
    """``a.mp4, b.mp4, ... (+3 more)``: a list of file names that stays one line."""
    more = f" (+{len(names) - most} more)" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def audio_only_parts(
    mc3,
    data: str | os.PathLike,
    split: str,
    *,
    batch_size: int = 16,
    workers: int = 0,
    progress: bool = True,
) -> Iterator[tuple[list[str], np.ndarray, list[dict]]]:
    """(ids, audio embeddings (n, D), metadata rows) per batch of the audio-only entries of
    ``split`` (``<split>_audio.tsv`` of a ``foley prepare`` folder; none if it has none): the
    MC3 audio tower only, rows marked ``audio_only`` and listed under ``split``."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from foley.data.prepare import AudioClipDataset, audio_split
    from foley.metrics.audio import ambient_level_db
    from foley.models.mc3_embed import ClipEmbeddings

    root = Path(data).expanduser()
    if not (root / f"{audio_split(split)}.tsv").is_file():
        return
    dataset = AudioClipDataset(root, audio_split(split))
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=AudioClipDataset.collate
    )
    bar = tqdm(total=len(dataset), desc="embedding sounds", unit="clip", disable=not progress)
    for audio, meta in loader:  # audio (b, N) float32 at the MC3 rate
        for warning in (line for m in meta for line in m.pop("warnings", [])):
            print(f"foley: warning: {warning}", file=sys.stderr, flush=True)
        with torch.no_grad():
            vectors = mc3.encode_audio(audio.to(mc3.device)).float().cpu().numpy()
        levels = [ambient_level_db(np.trim_zeros(w.numpy(), "b")) for w in audio]
        emb = ClipEmbeddings([m["clip_id"] for m in meta], vectors, vectors[:0], None,
                             np.array(levels), meta)  # fmt: skip
        rows = [{**r, "audio_only": True} for r in clip_metadata(emb, root, split)]
        yield emb.ids, vectors, rows
        bar.update(len(meta))
    bar.close()


def library_parts(
    mc3, data: str | os.PathLike, split: str, **kwargs
) -> Iterator[tuple[list[str], np.ndarray, list[dict]]]:
    """The parts of ``split``'s clips with video (when it has any) and then of its audio-only
    entries: everything a ``foley prepare`` folder holds for ``split`` (kwargs: batch_size,
    workers, progress)."""
    from foley.data.ego4d import read_metadata, split_path

    video_tsv = split_path(Path(data).expanduser(), split)
    has_video = video_tsv.is_file() and bool(read_metadata(video_tsv))
    if has_video:
        yield from embedded_parts(mc3, data, split, **kwargs)
    found = has_video
    for part in audio_only_parts(mc3, data, split, **kwargs):
        found = True
        yield part
    if not found:
        open_dataset(data, split)  # the one-line error for a missing / empty split


class ClipRetriever(ModelMixin):
    """MC3 + a ClipIndex (+ the folder its relative clip paths resolve against).

    mc3: an :class:`~foley.models.mc3.MC3Model` (its video and audio towers embed queries; a
    submodule, so ``pipe.to(device)`` moves it); index: a :class:`retrieval_index.ClipIndex` of
    MC3 audio embeddings, or None (nothing to retrieve from yet); root: the folder relative
    ``clip_path`` metadata is resolved against (default: the index folder's parent).
    """

    def __init__(self, mc3, index=None, root: str | os.PathLike | None = None) -> None:
        super().__init__()
        if index is not None and mc3 is not None and index.dim != mc3.config.embed_dim:
            raise ModelMismatchError(
                f"the index holds {index.dim}-d vectors, the MC3 model gives "
                f"{mc3.config.embed_dim}-d: rebuild the index with this model"
            )
        self.mc3 = mc3
        self.index = index
        self.root = Path(root) if root is not None else None

    # ---- save / load ----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, index=None, **mc3_kwargs) -> ClipRetriever:
        """``path/mc3`` and ``path/index`` (the index may be absent); ``index``: another index
        (a ClipIndex or its folder) instead. ``mc3_kwargs`` (diffusers' loading arguments, such
        as ``torch_dtype``) go to ``MC3Model.from_pretrained``."""
        from foley.models.mc3 import MC3Model

        path = Path(path)
        mc3 = MC3Model.from_pretrained(path / MC3_SUBFOLDER, **mc3_kwargs).eval()
        if index is not None:
            index = open_index(index) if isinstance(index, (str, os.PathLike)) else index
            return cls(mc3, index)
        index = open_index(path / INDEX_SUBFOLDER) if (path / INDEX_SUBFOLDER).is_dir() else None
        return cls(mc3, index, root=path)

    def save_pretrained(self, path: str | os.PathLike, **_: Any) -> None:
        """Write ``path/mc3`` and copy the index (with packed clips) to ``path/index``.
        (diffusers' saving arguments, such as ``safe_serialization``, are not needed.)"""
        path = Path(path)
        self.mc3.save_pretrained(path / MC3_SUBFOLDER)
        self.save_index(path)

    def with_index(self, index) -> ClipRetriever:
        """A retriever sharing this MC3 over another index (a ClipIndex, its folder or None)."""
        if isinstance(index, (str, os.PathLike)):
            index = open_index(index)
        return ClipRetriever(self.mc3, index, root=self.root if index is self.index else None)

    def save_index(self, path: str | os.PathLike) -> None:
        """Copy the index to ``path/index`` and packed clips to ``path/clips``."""
        if self.index is None:
            return
        path = Path(path)
        src, dst = Path(self.index.path).resolve(), path / INDEX_SUBFOLDER
        if src == dst.resolve():
            return
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)
        clips = self._clip_root() / CLIPS_SUBFOLDER
        if clips.is_dir() and clips.resolve() != (path / CLIPS_SUBFOLDER).resolve():
            shutil.copytree(clips, path / CLIPS_SUBFOLDER, dirs_exist_ok=True)

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        mc3,
        model_id: str,
        data: str | os.PathLike,
        split: str,
        target: str | os.PathLike,
        *,
        parts: Iterable[tuple[list[str], np.ndarray, list[dict]]] | None = None,
        subset: list[int] | None = None,
        pack_clips: bool = False,
        cfg: AVConfig | None = None,
        batch_size: int = 16,
        workers: int = 0,
        progress: bool = True,
        on_progress: ProgressFn | None = None,
    ) -> ClipRetriever:
        """Embed ``split`` of ``data`` with MC3's audio tower and rebuild the index ``target``
        (a complete new version, switched to atomically: a failure leaves the previous one
        serving). ``parts``: embeddings computed elsewhere (sharded runs); ``subset``: only
        these clips; ``pack_clips``: copy each clip's audio to ``<target>/../clips/<id>.ogg``
        and store that relative path (a folder that can move and ship)."""
        from retrieval_index import ClipIndex

        target = Path(target)
        dim = int(mc3.config.embed_dim)
        if parts is None:
            dataset = open_dataset(data, split, cfg)
            if subset is not None:
                from torch.utils.data import Subset

                dataset = Subset(dataset, subset)
            parts = embedded_parts(
                mc3, data, split, dataset, batch_size=batch_size, workers=workers,
                progress=progress, on_progress=on_progress,
            )  # fmt: skip
        root = target.parent
        with index_errors():
            with ClipIndex.rebuild(target, model_id, dim, progress=progress) as builder:
                for ids, vectors, rows in parts:
                    if pack_clips:
                        rows = _pack(ids, rows, root, cfg or DEFAULT_CONFIG)
                    builder.add(ids, vectors, rows)
        return cls(mc3, builder.index, root=root)

    def add(
        self,
        data: str | os.PathLike,
        split: str,
        model_id: str,
        *,
        batch_size: int = 16,
        workers: int = 0,
        progress: bool = True,
    ) -> int:
        """Add the clips of ``split`` to the index, with the split's audio-only entries of a
        ``foley prepare`` folder (as :meth:`build`); returns how many."""
        ids, vectors, rows = [], [], []
        for part_ids, part_vectors, part_rows in library_parts(
            self.mc3, data, split, batch_size=batch_size, workers=workers, progress=progress
        ):
            ids += part_ids
            vectors.append(part_vectors)
            rows += part_rows
        with index_errors():
            self.index.add(ids, np.concatenate(vectors), rows, model_id=model_id)
        return len(ids)

    # ---- querying -------------------------------------------------------------------------
    @torch.no_grad()
    def embed_videos(self, frames: list[torch.Tensor], frames_per_clip: int) -> np.ndarray:
        """Per video (T, 3, S, S) float frames in [0, 1] -> (videos, D) float32 queries: the
        normalised mean MC3 video embedding of its clip-length windows."""
        return self._embed_windows(frames, frames_per_clip, self.mc3.encode_video)

    @torch.no_grad()
    def embed_audios(self, waves: list, samples_per_clip: int) -> np.ndarray:
        """Per sound (N,) float wave at the config's sample rate -> (sounds, D) float32 queries:
        the normalised mean MC3 audio embedding of its clip-length windows."""
        waves = [torch.as_tensor(np.asarray(w, dtype=np.float32)).reshape(-1) for w in waves]
        return self._embed_windows(waves, samples_per_clip, self.mc3.encode_audio)

    def _embed_windows(self, items: list[torch.Tensor], size: int, encode) -> np.ndarray:
        """(items, D): per item (time, ...) the normalised mean of ``encode`` over its windows
        of ``size`` steps along time (one shorter window when the item is shorter)."""
        device = self.mc3.device
        queries = []
        for x in items:
            starts = range(0, max(1, x.shape[0] - size + 1), size)
            wins = torch.stack([x[s : s + size] for s in starts]).to(device)
            emb = encode(wins).mean(0)
            queries.append(torch.nn.functional.normalize(emb, dim=-1))
        return torch.stack(queries).float().cpu().numpy()

    def retrieve(
        self,
        frames: list[torch.Tensor] | None = None,
        mode: str = "ambient_joint",
        *,
        audio: list | None = None,
        ambient_db_max: float = -45.0,
        where: dict | None = None,
        cfg: AVConfig = DEFAULT_CONFIG,
        with_audio: bool = True,
    ) -> list[Retrieved]:
        """The conditioning clip of each video (``frames``: per video (T, 3, S, S) float in
        [0, 1]) or each sound (``audio``: per sound an (N,) wave at ``cfg.sample_rate``):
        ``ambient_joint`` the nearest clip by MC3 cosine similarity to the clips' audio,
        ``action_focused`` the nearest among clips with an action-only track (``ACTION_KEY``;
        its audio is then that track) and clips whose ambient level is at most
        ``ambient_db_max`` dBFS; ``where``: extra index filters. Give one of frames or audio.
        Each hit's ``track`` says which audio came back: "action" or "mix"."""
        if (frames is None) == (audio is None):
            raise InputError("retrieve by video (frames) or by audio: give exactly one")
        if self.index is None:
            raise InputError("this retriever has no index: build one (foley index build)")
        if frames is not None:
            queries = self.embed_videos(frames, cfg.frames_per_clip)
        else:
            queries = self.embed_audios(audio, cfg.samples_per_clip)
        return self.search(queries, mode, ambient_db_max, where, cfg, with_audio)

    def search(
        self,
        queries: np.ndarray,
        mode: str = "ambient_joint",
        ambient_db_max: float = -45.0,
        where: dict | None = None,
        cfg: AVConfig = DEFAULT_CONFIG,
        with_audio: bool = True,
    ) -> list[Retrieved]:
        """The nearest clip to each MC3 query (queries, D), with its metadata and audio: what
        every kind of query (video, audio, and text beside them) ends in."""
        flt = dict(where or {})
        if mode == "action_focused":
            # the nearest clip among those with an action-only track (conditioned on that
            # track) and those whose own ambience is quiet enough, whichever scores higher
            quiet = {**flt, "ambient_db_max": ambient_db_max}
            with index_errors():
                tracks = self.index.search(queries, k=1, where={**flt, "has": ACTION_KEY})
                results = self.index.search(queries, k=1, where=quiet)
            results = [
                [max(a + b, key=lambda h: h.score)] if a + b else []
                for a, b in zip(tracks, results)
            ]
            missing = (
                f"no clip in the index (filters {flt or 'none'}) has an action-only track or "
                f"an ambient level at most {ambient_db_max:g} dBFS: raise ambient_db_max"
            )
        else:
            missing = f"no clip in the index matches {flt}: check the index"
            with index_errors():
                results = self.index.search(queries, k=1, where=flt or None)
        out = []
        for hits in results:
            if not hits:
                raise InputError(missing)
            hit = hits[0]
            meta = dict(hit.metadata)
            track = mode == "action_focused" and meta.get(ACTION_KEY) is not None
            wave = None
            if with_audio:
                rate = cfg.sample_rate
                wave = self.action_audio(meta, rate) if track else self.clip_audio(meta, rate)
            out.append(
                Retrieved(str(hit.id), float(hit.score), meta, wave, "action" if track else "mix")
            )
        return out

    @torch.no_grad()
    def retrieve_text(
        self,
        texts: list[str],
        k: int = 5,
        *,
        where: dict | None = None,
        with_audio: bool = False,
        cfg: AVConfig = DEFAULT_CONFIG,
    ) -> list[list[Retrieved]]:
        """The ``k`` clips nearest each text by MC3 text-to-audio similarity (best first), e.g.
        ``retrieve_text(["footsteps on gravel"])``; ``where``: index filters (``split``,
        ``ambient_db_max``, ``exclude_video_uid``...)."""
        if self.index is None:
            raise InputError("this retriever has no index: build one (foley index build)")
        texts = [" ".join(str(t).split()) for t in texts]
        if not texts or not all(texts):
            raise InputError("give a non-empty text to search for")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        queries = self.mc3.encode_text(texts).float().cpu().numpy()  # (len(texts), D)
        with index_errors():
            results = self.index.search(queries, k, where=where or None)
        return [
            [
                Retrieved(
                    str(h.id),
                    float(h.score),
                    dict(h.metadata),
                    self.clip_audio(h.metadata, cfg.sample_rate) if with_audio else None,
                )
                for h in hits
            ]
            for hits in results
        ]

    def has_quiet_clip(self, ambient_db_max: float) -> bool:
        """Whether any indexed clip has an ambient level at most ``ambient_db_max`` dBFS or an
        action-only track (action-focused retrieval needs one); metadata counts, no query."""
        if self.index is None:
            return False
        with index_errors():
            return (
                self.index.count({"ambient_db_max": ambient_db_max}) > 0
                or self.index.count({"has": ACTION_KEY}) > 0
            )

    def clip_path(self, metadata: dict, key: str = "clip_path") -> Path:
        """A clip's file (or, with ``key=ACTION_KEY``, its action-only track's) from its index
        metadata: absolute, or relative to the retriever's root (or the index folder)."""
        p = Path(metadata[key])
        if p.is_absolute() or p.exists():
            return p
        bases = [self._clip_root()]
        if self.index is not None:
            bases.append(Path(self.index.path))
        for base in bases:
            if (base / p).exists():
                return base / p
        raise InputError(f"conditioning clip {p} from the index was not found")

    def clip_audio(self, metadata: dict, sample_rate: int) -> np.ndarray:
        from foley.io import load_audio

        return load_audio(self.clip_path(metadata), sample_rate)

    def action_audio(self, metadata: dict, sample_rate: int) -> np.ndarray:
        """A clip's action-only track (metadata ``ACTION_KEY``), (N,) float32."""
        return load_track(self.clip_path(metadata, ACTION_KEY), sample_rate)

    def _clip_root(self) -> Path:
        if self.root is not None:
            return self.root
        return Path(self.index.path).parent if self.index is not None else Path(".")


def open_index(path: str | os.PathLike, **kwargs):
    """``ClipIndex.open`` with one-line errors."""
    from retrieval_index import ClipIndex

    with index_errors():
        return ClipIndex.open(path, **kwargs)


def load_track(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """An audio file, or the ``action`` array of a FoleyWorld ``.gt.npz`` (stored at the
    dataset's rate, which must be ``sample_rate``), as (N,) float32."""
    from foley.io import load_audio

    path = Path(path)
    if path.name.endswith(".npz"):
        try:
            with np.load(path) as gt:
                return np.asarray(gt["action"], np.float32).reshape(-1)
        except (OSError, KeyError, ValueError) as err:
            raise InputError(f"{path.name}: no readable action track ({err})") from None
    return load_audio(path, sample_rate)


def _pack(ids: list[str], rows: list[dict], root: Path, cfg: AVConfig) -> list[dict]:
    """Copy each clip's audio to ``root/clips/<id>.ogg`` (and its action-only track, when it
    has one, to ``<id>.action.ogg``); rows point there (relative)."""
    from foley.io import load_audio, save_audio

    (root / CLIPS_SUBFOLDER).mkdir(parents=True, exist_ok=True)
    packed = []
    rate = cfg.sample_rate
    for clip_id, row in zip(ids, rows):
        name = f"{CLIPS_SUBFOLDER}/{clip_id}.ogg"
        save_audio(root / name, load_audio(row["clip_path"], rate), rate)
        row = {**row, "clip_path": name}
        if row.get(ACTION_KEY) is not None:
            action = f"{CLIPS_SUBFOLDER}/{clip_id}.action.ogg"
            save_audio(root / action, load_track(row[ACTION_KEY], rate), rate)
            row[ACTION_KEY] = action
        packed.append(row)
    return packed
