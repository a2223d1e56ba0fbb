"""``foley app``: serve the Gradio app (binds 127.0.0.1 unless told otherwise).

foley app [--model DIR] [--index DIR] [--avs DIR] [--host 127.0.0.1] [--port N] [--share]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from foley.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    from app.service import Limits

    d = Limits()
    parser = subparsers.add_parser(
        "app",
        help="serve the web app (upload a video, hear and see the result, rebuild the index)",
    )
    parser.add_argument(
        "--model", help="saved pipeline folder (default: the weights shipped in the package)"
    )
    parser.add_argument(
        "--index", help="retrieval index to serve and rebuild (default: MODEL/index)"
    )
    parser.add_argument("--avs", help="AVS model folder (default: MODEL/avs when present)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: 7860 or the next free)"
    )
    parser.add_argument(
        "--share",
        action="store_true",
        help="also open a public gradio.live link (off by default; needs internet)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: cuda if any)")
    parser.add_argument("--examples", help="folder of example videos (*.mp4) to offer")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=d.max_video_seconds,
        help=f"longest video accepted (default {d.max_video_seconds:g} s)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=d.max_upload_mb,
        help=f"largest upload accepted (default {d.max_upload_mb:g} MB)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=d.concurrency,
        help=f"generations at once; the rest queue (default {d.concurrency})",
    )
    parser.set_defaults(func=run)


def default_model_dir() -> Path | None:
    """The weights shipped inside the package (``foley/assets/default``), if installed."""
    from foley.defaults import DEFAULT_MODEL_DIR

    path = DEFAULT_MODEL_DIR
    return path if (path / "model_index.json").is_file() else None


def run(args: argparse.Namespace) -> int:
    from foley.defaults import set_offline_env

    set_offline_env()
    from app.service import FoleyService, Limits, load_models
    from app.ui import build_ui, launch

    model = Path(args.model) if args.model else default_model_dir()
    if model is None:
        raise InputError("no --model given and no default weights are installed in the package")
    if args.port is not None and not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    if args.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    examples = None
    if args.examples:
        folder = Path(args.examples)
        if not folder.is_dir():
            raise InputError(f"{folder}: no such examples folder")
        examples = sorted(str(p) for p in folder.glob("*.mp4"))
    limits = Limits(
        max_video_seconds=args.max_seconds,
        max_upload_mb=args.max_upload_mb,
        concurrency=args.concurrency,
    )
    service = FoleyService(
        lambda: load_models(model, avs_dir=args.avs, device=args.device),
        args.index,
        limits=limits,
    )
    service.load()  # a bad folder is reported here, before serving
    demo = build_ui(service, examples=examples)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: reachable from other machines")
    launch(demo, host=args.host, port=args.port, share=args.share, block=True)
    return 0
