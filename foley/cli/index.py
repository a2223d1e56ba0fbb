"""``foley index``: build, extend, query and describe the retrieval index of training clips.

    foley index build --data DATA [--split train] --out INDEX [--model MC3_DIR]
    foley index add   --index INDEX --data DATA --split val [--model MC3_DIR]
    foley index query --index INDEX --video clip.mp4 -k 5 [--model MC3_DIR] [--ambient-max -50]
    foley index query --index INDEX --text "footsteps on gravel" -k 5

``--model`` is an MC3 folder or a pipeline folder holding ``mc3/``; without it, the shipped
default model's MC3.
    foley index info  --index INDEX

The index stores each clip's MC3 *audio* embedding (queries are videos: video-to-audio
retrieval, how AV-LDM picks its conditioning clip) with the clip's path, video_uid, narration,
split and ambient level (dBFS of its quietest 0.5 s window).  ``build`` writes a complete new
version and switches to it atomically; on a ``foley prepare`` folder it also embeds the split's
audio-only entries (``<split>_audio.tsv``: your sound library), so video and text queries find
them. It switches to the new version atomically; a failed or killed build leaves the previous
one serving.
Under ``accelerate launch --num_processes N`` each process embeds its share of the clips and the
main process gathers them and writes the index once.
"""

from __future__ import annotations

import argparse
import json
import os

from foley.config import DEFAULT_CONFIG
from foley.defaults import default_device, mc3_dir_or_default
from foley.errors import InputError, ModelMismatchError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help="retrieval index of training clips (MC3)")
    sub = parser.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    build = sub.add_parser("build", help="embed a split with MC3 and (re)build the index")
    build.add_argument("--data", required=True, help="Ego4D-Sounds / FoleyWorld folder")
    build.add_argument("--split", default="train", help="split to index (default train)")
    build.add_argument("--out", required=True, help="index folder (rebuilt atomically)")
    _model_args(build)
    build.set_defaults(func=cmd_build)

    add = sub.add_parser("add", help="add the clips of a split to an existing index")
    add.add_argument("--index", required=True)
    add.add_argument("--data", required=True)
    add.add_argument("--split", required=True)
    _model_args(add)
    add.set_defaults(func=cmd_add)

    query = sub.add_parser("query", help="nearest clips (by audio) to a video or a text")
    query.add_argument("--index", required=True)
    what = query.add_mutually_exclusive_group(required=True)
    what.add_argument("--video", help="video file (its first --seconds are used)")
    what.add_argument("--text", help='a description, e.g. "footsteps on gravel" (MC3 text tower)')
    query.add_argument("-k", type=int, default=5, help="number of clips (default 5)")
    query.add_argument(
        "--model", help="the MC3 model the index was built with (default: the shipped one's)"
    )
    query.add_argument("--start", type=float, default=0.0, help="window start, seconds")
    query.add_argument("--seconds", type=float, default=DEFAULT_CONFIG.clip_seconds)
    query.add_argument("--split", help="only clips of this split")
    query.add_argument("--ambient-max", type=float, help="only clips at most this ambient dBFS")
    query.add_argument("--exclude-video", help="skip clips of this video_uid")
    query.add_argument("--json", action="store_true", help="print JSON instead of a table")
    query.add_argument("--device", default=None)
    query.set_defaults(func=cmd_query)

    info = sub.add_parser("info", help="model, dimension, count, version of an index")
    info.add_argument("--index", required=True)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        help="saved MC3 folder, or a pipeline folder with mc3/ (default: the shipped one)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="decoding worker processes")
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: cuda if any)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _load(args: argparse.Namespace):
    from foley.models.mc3_embed import load_mc3, model_id

    args.model = str(mc3_dir_or_default(args.model))
    return load_mc3(args.model, default_device(args.device)), model_id(args.model)


def _sharded_parts(args: argparse.Namespace, state) -> list | None:
    """Under ``accelerate launch``: each process embeds its share of the clips; the main process
    gets every part, in clip order (the others get None)."""
    from accelerate.utils import gather_object
    from torch.utils.data import Subset

    from foley.models.mc3_embed import load_mc3
    from foley.retrieval import embedded_parts, open_dataset

    if args.device is None:
        args.device = str(state.device)
    model = load_mc3(args.model, default_device(args.device))
    dataset = open_dataset(args.data, args.split)
    with state.split_between_processes(list(range(len(dataset)))) as mine:
        parts = list(
            embedded_parts(
                model, args.data, args.split, Subset(dataset, mine),
                batch_size=args.batch_size, workers=args.workers,
                progress=not args.quiet and state.is_main_process,
            )
        )  # fmt: skip
    span = f" (clips {mine[0]}-{mine[-1]})" if mine else ""
    print(f"process {state.process_index}: embedded {len(mine)} clips{span}", flush=True)
    gathered = gather_object([(state.process_index, parts)])  # every process, in rank order
    return [p for _, rank_parts in sorted(gathered) for p in rank_parts]


def cmd_build(args: argparse.Namespace) -> int:
    from foley.retrieval import ClipRetriever

    args.model = str(mc3_dir_or_default(args.model))
    state, parts = None, None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # accelerate launch / torchrun
        import torch
        from accelerate import PartialState

        # without a GPU (or with --device cpu) the processes join a gloo group on the CPU
        state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
        parts = _sharded_parts(args, state)
        if not state.is_main_process:  # the main process writes the index, once
            return 0
    from foley.models.mc3 import MC3Model
    from foley.models.mc3_embed import model_id

    if state is None:
        from foley.retrieval import library_parts

        model, mid = _load(args)
        parts = library_parts(
            model, args.data, args.split, batch_size=args.batch_size, workers=args.workers,
            progress=not args.quiet,
        )  # fmt: skip
    else:  # the embeddings are done: the index only needs the model's config
        model, mid = MC3Model.from_config(MC3Model.load_config(args.model)), model_id(args.model)
    retriever = ClipRetriever.build(
        model, mid, args.data, args.split, args.out, parts=parts,
        batch_size=args.batch_size, workers=args.workers, progress=not args.quiet,
    )  # fmt: skip
    index = retriever.index
    print(f"indexed {len(index)} clips of {args.data} ({args.split}) -> {args.out}")
    print(f"version {index.version}, model {mid}, {index.dim}-d, {index.kind}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from foley.retrieval import ClipRetriever, open_index

    model, mid = _load(args)
    index = open_index(args.index, model_id=mid, dim=model.config.embed_dim)
    added = ClipRetriever(model, index).add(
        args.data, args.split, mid, batch_size=args.batch_size, workers=args.workers,
        progress=not args.quiet,
    )  # fmt: skip
    print(f"added {added} clips ({args.split}); {len(index)} in {args.index}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    import torch

    from foley.io import frames_to_tensor, load_video
    from foley.retrieval import index_errors, open_index

    if args.k < 1:
        raise InputError(f"-k must be at least 1, got {args.k}")
    if args.seconds <= 0 or args.start < 0:
        raise InputError("--seconds must be positive and --start not negative")
    index = open_index(args.index)
    model, mid = _load(args)
    if mid != index.model_id:
        raise ModelMismatchError(
            f"{args.index} was built with model {index.model_id}, --model {args.model} is {mid}; "
            "query with the same model or rebuild the index"
        )
    where = {}
    if args.split:
        where["split"] = args.split
    if args.ambient_max is not None:
        where["ambient_db_max"] = args.ambient_max
    if args.exclude_video:
        where["exclude_video_uid"] = args.exclude_video
    if args.text is not None:
        from foley.retrieval import ClipRetriever

        hits = ClipRetriever(model, index).retrieve_text([args.text], args.k, where=where)[0]
        return _print_hits(hits, args.json)
    cfg = DEFAULT_CONFIG
    video = load_video(args.video, cfg, with_audio=False, until=args.start + args.seconds)
    first = cfg.num_frames(args.start)
    frames = video.frames[first : first + cfg.num_frames(args.seconds)]
    if len(frames) == 0:
        raise InputError(f"{args.video}: no frames after --start {args.start} s")
    with torch.no_grad():
        query = model.encode_video(frames_to_tensor(frames)[None]).float().cpu().numpy()
    with index_errors():
        hits = index.search(query, args.k, where=where or None, model_id=mid)[0]
    return _print_hits(hits, args.json)


def _print_hits(hits, as_json: bool) -> int:
    """A table (or JSON) of search hits (``retrieval_index`` hits or ``Retrieved``)."""
    if as_json:
        print(json.dumps([{"id": h.id, "score": h.score, **h.metadata} for h in hits], indent=2))
        return 0
    print(f"{'rank':>4}  {'score':>6}  {'ambient':>8}  {'clip':<28}  narration")
    for rank, hit in enumerate(hits, 1):
        m = hit.metadata
        kind = " (audio only)" if m.get("audio_only") else ""
        print(
            f"{rank:>4}  {hit.score:6.3f}  {m['ambient_db']:7.1f}dB  {hit.id:<28}  "
            f"{m['narration']}{kind}"
        )
    if not hits:
        print("no clip passes the filters")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from foley.retrieval import open_index

    info = open_index(args.index).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return 0
