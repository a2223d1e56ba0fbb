"""``foley app``: serve the Gradio app (binds 127.0.0.1 unless told otherwise).

foley app [--model DIR] [--index DIR] [--avs DIR] [--audioscope DIR] [--host 127.0.0.1] [--port N]
          [--share] [--auth USER:PASS] [--allow-rebuild DATA_ROOT]

Serving on an address other than loopback needs ``--auth``; rebuilding the index from the app is
off unless ``--allow-rebuild DATA_ROOT`` is given, and then reads only under DATA_ROOT.
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
    parser.add_argument(
        "--audioscope",
        help="AudioScope model folder: the Separate tab (foley separate; default: "
        "MODEL/audioscope when present)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: 7860 or the next free)"
    )
    parser.add_argument(
        "--share",
        action="store_true",
        help="also open a public gradio.live link (off by default; needs internet)",
    )
    parser.add_argument(
        "--auth",
        metavar="USER:PASS",
        help="require this login (needed with a --host other than loopback, and with --share)",
    )
    parser.add_argument(
        "--allow-rebuild",
        metavar="DATA_ROOT",
        help="let users rebuild the index from data folders under DATA_ROOT (off by default)",
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
    from foley.defaults import default_device

    model = Path(args.model) if args.model else default_model_dir()
    if model is None:
        raise InputError("no --model given and no default weights are installed in the package")
    if args.port is not None and not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    if args.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    auth = _auth(args)
    rebuild_root = None
    if args.allow_rebuild:
        rebuild_root = Path(args.allow_rebuild).expanduser()
        if not rebuild_root.is_dir():
            raise InputError(f"--allow-rebuild {rebuild_root}: no such folder")
    default_device(args.device)  # cuda without a GPU: one line, before loading anything
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
        rebuild_root=rebuild_root,
    )
    service.load()  # a bad folder is reported here, before serving
    audioscope = None
    scope = args.audioscope
    if scope is None and (model / "audioscope" / "config.json").is_file():
        scope = str(model / "audioscope")  # the shipped one
    if scope:
        from foley.cli.separate import load_audioscope

        audioscope = load_audioscope(scope, args.device)
    demo = build_ui(service, examples=examples, audioscope=audioscope)
    if not _loopback(args.host):
        print(f"warning: serving on {args.host}: reachable from other machines (login required)")
    try:
        launch(demo, host=args.host, port=args.port, share=args.share, block=True, auth=auth)
    except OSError as err:  # a busy port, an address this machine does not have
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise InputError(f"cannot serve on {args.host}:{args.port or 'auto'}: {first}") from None
    return 0


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def _auth(args: argparse.Namespace) -> tuple[str, str] | None:
    """``--auth USER:PASS`` as a pair; required off loopback and with ``--share``."""
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise InputError("--auth must be USER:PASS, both non-empty")
        return user, password
    if not _loopback(args.host) or args.share:
        where = "--share" if args.share else f"--host {args.host}"
        raise InputError(
            f"refusing to serve with {where} without a login: add --auth USER:PASS "
            "(anyone who can reach the address could use the app)"
        )
    return None
